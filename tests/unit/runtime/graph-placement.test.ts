import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeModel, OnnxDataType } from '../../../src/onnx/proto-writer.js';
import { readOnnxGraph } from '../../../src/onnx/proto-reader.js';
import { hostOnlyNodes, placementOptions } from '../../../src/runtime/graph-placement.js';
import { TEST_PACK_DIR } from '../../support/fixtures.js';

const graph = (c: string) => new Uint8Array(readFileSync(join(TEST_PACK_DIR, c, 'model.onnx')));

describe('readOnnxGraph', () => {
  it('reads inputs with types and symbolic dims, nodes and initializers without copying tensor data', () => {
    const g = readOnnxGraph(graph('t5'));
    expect(g.inputs).toEqual([{ name: 'input_ids', elemType: 6, dims: ['B', 'L'] }]);
    expect(g.outputs[0]).toMatchObject({ name: 'last_hidden_state', elemType: 1 });
    expect(g.nodes.some((n) => n.opType === 'Log')).toBe(true);
    expect(g.initializers.find((t) => t.name.includes('relative_attention_bias'))?.dims).toEqual([32, 4]);
  });
  it('round-trips what proto-writer encodes', () => {
    const bytes = encodeModel({
      name: 'g',
      inputs: [{ name: 'x', type: OnnxDataType.FLOAT, shape: ['B', 3] }],
      outputs: [{ name: 'y', type: OnnxDataType.FLOAT, shape: ['B', 3] }],
      nodes: [{ op: 'Mul', inputs: ['x', 'k'], outputs: ['y'] }],
      initializers: [{ name: 'k', type: OnnxDataType.FLOAT, values: [2], dims: [] }],
    });
    const g = readOnnxGraph(bytes);
    expect(g.inputs).toEqual([{ name: 'x', elemType: 1, dims: ['B', 3] }]);
    expect(g.nodes).toEqual([{ name: 'Mul_0', opType: 'Mul', domain: '', inputs: ['x', 'k'], outputs: ['y'] }]);
    expect(g.initializers).toEqual([{ name: 'k', dataType: 1, dims: [] }]);
  });
});

describe('hostOnlyNodes (what gets pinned to the CPU on WebGPU)', () => {
  it('CLIP: only the ids chain (Cast → ArgMax pooling index, position slice), never a weight Gather or a matmul', () => {
    const pinned = hostOnlyNodes(readOnnxGraph(graph('clip')));
    expect(pinned).toEqual(expect.arrayContaining(['/Cast', '/ArgMax', '/Cast_1']));
    expect(pinned).not.toContain('/token_embedding/Gather');
    expect(pinned.some((n) => n.includes('MatMul') || n.includes('layers.'))).toBe(false);
  });
  it('T5: the relative-position bucket chain, not the bias table lookup', () => {
    const pinned = hostOnlyNodes(readOnnxGraph(graph('t5')));
    expect(pinned).toEqual(expect.arrayContaining(['/Range', '/Log', '/Where', '/Add_1']));
    expect(pinned).not.toContain('/relative_attention_bias/Gather');
    expect(pinned).not.toContain('/shared/Gather');
  });
  it('graphs without integer inputs (transformer, VAE) pin nothing', () => {
    expect(hostOnlyNodes(readOnnxGraph(graph('transformer')))).toEqual([]);
    expect(hostOnlyNodes(readOnnxGraph(graph('vae_decoder')))).toEqual([]);
  });
  it('fixes symbolic input dims to the requested shape', () => {
    expect(placementOptions(graph('t5'), { fixedInputShape: [1, 256] })).toEqual({ freeDimensionOverrides: { B: 1, L: 256 } });
  });
});
