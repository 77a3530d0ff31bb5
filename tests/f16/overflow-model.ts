/**
 * A graph whose fp16 residual overflows: y = LayerNorm(x·300 + x·300); x = 120 gives 72000 > 65504. Written twice,
 * converted like --activations fp16 (clamped) and like plain fp16.ts conversion (unclamped), for the f16 adapter
 * test (tests/f16) and the CPU unit test.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertActivationsToFp16 } from '../../src/convert/fp16-activations.js';
import { convertToFp16 } from '../../src/convert/fp16.js';
import { topoSort } from '../../src/convert/graph.js';
import { readModel } from '../../src/convert/model-reader.js';
import { DT, onnx, valueInfo } from '../../src/convert/onnx.js';
import { buildComponentGraph } from '../../src/convert/passes.js';
import { makeJobContext, writeGraph } from '../../src/convert/writer.js';

export const OVERFLOW_INPUT = new Float32Array([120, 119, 118, 117, 1, 2, 3, 4]);

function writeSource(path: string): void {
  const scalar = (name: string, v: number) => ({ name, dims: [], dataType: DT.FLOAT, rawData: new Uint8Array(new Float32Array([v]).buffer) });
  const vec = (name: string, v: number) => ({ name, dims: [8], dataType: DT.FLOAT, rawData: new Uint8Array(new Float32Array(8).fill(v).buffer) });
  const model = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'overflow',
      node: [
        { opType: 'Mul', input: ['x', 'a'], output: ['xa'], name: 'mul_a' },
        { opType: 'Mul', input: ['x', 'b'], output: ['xb'], name: 'mul_b' },
        { opType: 'Add', input: ['xa', 'xb'], output: ['h'], name: 'residual' },
        { opType: 'LayerNormalization', input: ['h', 'gamma', 'beta'], output: ['y'], name: 'norm', attribute: [{ name: 'axis', type: 2, i: -1 }] },
      ],
      initializer: [scalar('a', 300), scalar('b', 300), vec('gamma', 1), vec('beta', 0)],
      input: [valueInfo('x', DT.FLOAT, [1, 8])],
      output: [valueInfo('y', DT.FLOAT, [1, 8])],
    },
  };
  writeFileSync(path, onnx.ModelProto.encode(onnx.ModelProto.fromObject(model)).finish());
}

/** Returns the paths of the converted graphs (fp32 I/O, fp16 inside). */
export function writeOverflowModels(dir: string): { clamped: string; unclamped: string } {
  const src = join(dir, 'overflow-src.onnx');
  writeSource(src);
  const out = (clamp: boolean) => {
    const g = buildComponentGraph(readModel(src));
    if (clamp) convertActivationsToFp16(g, { component: 'transformer', ioTypes: new Map() });
    else convertToFp16(g, { component: 'transformer', ioTypes: new Map() });
    g.nodes = topoSort(g.nodes, new Set([...g.inputs.map((i) => i.name ?? ''), ...g.inits.keys()]));
    const name = clamp ? 'overflow-clamped.onnx' : 'overflow-unclamped.onnx';
    writeGraph({ name: 'overflow', nodes: g.nodes, inputs: g.inputs, outputs: g.outputs, inits: [...g.inits.values()], opsetImport: g.opsetImport, irVersion: 8 }, dir, '.', name, 1 << 20, makeJobContext(64, 0));
    return join(dir, name);
  };
  return { clamped: out(true), unclamped: out(false) };
}
