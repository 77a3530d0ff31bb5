/**
 * The streaming reader and graph rewrites on hand-made models: embedded weights are located by offset (not loaded),
 * weights behind Cast/Transpose and in large Constant nodes are quantized, and left-over nodes are pruned.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { convertPack } from '../../../src/convert/index.js';
import { main as packMain } from '../../../src/convert/main.js';
import { readModel, readTensorBytes } from '../../../src/convert/model-reader.js';
import { DT, inlineTensorBytes, onnx, valueInfo } from '../../../src/convert/onnx.js';
import { randomNormals } from '../../../src/convert/quantize.js';
import { TEST_PACK_DIR } from '../../support/fixtures.js';
import { captureCliOutput } from '../../support/cli-output.js';

const tmp = mkdtempSync(join(tmpdir(), 'flux-reader-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function bf16(values: Float32Array): Uint8Array {
  const u = new Uint32Array(values.buffer);
  return new Uint8Array(Uint16Array.from(u, (x) => (x + 0x7fff + ((x >>> 16) & 1)) >>> 16).buffer);
}

describe('model reader', () => {
  it('locates embedded raw_data and float_data payloads by offset and reads them back exactly', () => {
    let fileBacked = 0;
    for (const c of ['clip', 't5', 'vae_decoder']) {
      const path = join(TEST_PACK_DIR, c, 'model.onnx');
      const full = onnx.ModelProto.decode(readFileSync(path));
      const m = readModel(path);
      expect(m.initializers.size).toBe(full.graph!.initializer!.length);
      for (const t of full.graph!.initializer!) {
        const ref = m.initializers.get(t.name!)!;
        if (ref.source.kind === 'file') fileBacked++;
        expect(Buffer.from(readTensorBytes(ref)).equals(Buffer.from(inlineTensorBytes(t))), `${c}: ${t.name}`).toBe(true);
      }
      expect(m.graph.initializer ?? []).toHaveLength(0);
    }
    expect(fileBacked).toBeGreaterThan(0); // large tensors (CLIP/T5 embeddings) are referenced, not decoded
  });

  it('quantizes weights behind Cast(bf16→float) and Transpose and in large Constants; prunes what is left', async () => {
    const K = 128;
    const N = 192; // 96 KiB per weight: the Constant is large enough to become an initializer
    const w1 = randomNormals(K * N, 1).map((v) => v * 0.1);
    const w2 = randomNormals(K * N, 2).map((v) => v * 0.1);
    const w3 = randomNormals(N * K, 3).map((v) => v * 0.1);
    const model = {
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      graph: {
        name: 'g',
        node: [
          { opType: 'Cast', input: ['w1_bf16'], output: ['w1'], attribute: [{ name: 'to', type: 2, i: DT.FLOAT }], name: 'cast_w1' },
          { opType: 'MatMul', input: ['x', 'w1'], output: ['y1'], name: 'mm1' },
          { opType: 'Constant', input: [], output: ['w2'], attribute: [{ name: 'value', type: 4, t: { dims: [K, N], dataType: DT.FLOAT, rawData: new Uint8Array(w2.buffer) } }], name: 'const_w2' },
          { opType: 'MatMul', input: ['x', 'w2'], output: ['y2'], name: 'mm2' },
          { opType: 'Transpose', input: ['w3'], output: ['w3t'], attribute: [{ name: 'perm', type: 7, ints: [1, 0] }], name: 'tr_w3' },
          { opType: 'MatMul', input: ['x', 'w3t'], output: ['y3'], name: 'mm3' },
          { opType: 'Add', input: ['y1', 'y2'], output: ['y12'], name: 'add1' },
          { opType: 'Add', input: ['y12', 'y3'], output: ['y'], name: 'add2' },
        ],
        initializer: [
          { name: 'w1_bf16', dims: [K, N], dataType: DT.BFLOAT16, rawData: bf16(w1) },
          { name: 'w3', dims: [N, K], dataType: DT.FLOAT, rawData: new Uint8Array(w3.buffer) },
        ],
        input: [valueInfo('x', DT.FLOAT, ['B', 'S', K])],
        output: [valueInfo('y', DT.FLOAT, ['B', 'S', N])],
      },
    };
    const path = join(tmp, 'mm.onnx');
    writeFileSync(path, onnx.ModelProto.encode(onnx.ModelProto.fromObject(model)).finish());
    // One input and one output: it passes the converter's input check as a VAE decoder (not as a transformer).
    const r = await convertPack({ transformer: join(TEST_PACK_DIR, 'transformer/model.onnx'), vaeDecoder: path, quant: 'fp32', vaeQuant: 'int8', out: join(tmp, 'pack') });
    const t = r.report.components[1]!;
    expect(t.quantized.map((q) => q.weight).sort()).toEqual(['w1_bf16', 'w2', 'w3']);
    const out = readModel(join(tmp, 'pack/vae_decoder/model.onnx'));
    expect(out.graph.node!.map((n) => n.opType).sort()).toEqual(['Add', 'Add', 'MatMulNBits', 'MatMulNBits', 'MatMulNBits']);
    expect([...out.initializers.values()].every((i) => i.dataType !== DT.FLOAT || i.dims.length === 1)).toBe(true);
    const v = (t.verify as { outputs: { cosine: number }[] }).outputs[0]!;
    expect(v.cosine).toBeGreaterThan(0.9999);
  });
});

/**
 * A graph y = x + w whose w lives in external data at `location` (as written into the ONNX file, unresolved).
 * One input and one output, so it passes as a VAE decoder: the converter would copy w's bytes into the pack.
 */
function externalGraph(path: string, location: string, n = 1024): void {
  const model = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'g',
      node: [{ opType: 'Add', input: ['x', 'w'], output: ['y'], name: 'add' }],
      initializer: [
        {
          name: 'w',
          dims: [n],
          dataType: DT.FLOAT,
          dataLocation: 1,
          externalData: [
            { key: 'location', value: location },
            { key: 'offset', value: '0' },
            { key: 'length', value: String(n * 4) },
          ],
        },
      ],
      input: [valueInfo('x', DT.FLOAT, [n])],
      output: [valueInfo('y', DT.FLOAT, [n])],
    },
  };
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, onnx.ModelProto.encode(onnx.ModelProto.fromObject(model)).finish());
}

describe('external-data locations stay inside the graph folder', () => {
  const cli = captureCliOutput();
  const root = join(tmp, 'exfil');
  const secret = join(root, 'secret.bin');
  const secretBytes = Buffer.alloc(4096, 0x5a);
  mkdirSync(join(root, 'model', 'weights'), { recursive: true });
  writeFileSync(secret, secretBytes);
  // Legit: a nested relative location.
  writeFileSync(join(root, 'model', 'weights', 'w.bin'), new Uint8Array(new Float32Array(1024).fill(0.5).buffer));
  symlinkSync(secret, join(root, 'model', 'link.bin'));
  symlinkSync(root, join(root, 'model', 'up')); // a folder symlink: up/secret.bin has no ".." yet leaves the folder

  it.each([
    ['an absolute location', secret, /absolute/],
    ['a ../ location', '../secret.bin', /"\.\."/],
    ['a .. segment in the middle', 'weights/../../secret.bin', /"\.\."/],
    ['a Windows-style ..\\ location', '..\\secret.bin', /"\.\."/],
    ['a symlink to a file outside', 'link.bin', /resolves outside/],
    ['a path through a symlinked folder', 'up/secret.bin', /resolves outside/],
  ])('refuses %s, naming the graph file and the location', (_what, location, reason) => {
    const graph = join(root, 'model', 'evil.onnx');
    externalGraph(graph, location);
    expect(() => readModel(graph)).toThrowError(reason);
    try {
      readModel(graph);
    } catch (e) {
      expect((e as Error).message).toContain(graph);
      expect((e as Error).message).toContain(JSON.stringify(location));
      expect((e as { code?: string }).code).toBe('invalid_input');
    }
  });

  it('a nested relative location inside the folder still reads', () => {
    const graph = join(root, 'model', 'good.onnx');
    externalGraph(graph, 'weights/w.bin');
    const m = readModel(graph);
    const w = new Float32Array(new Uint8Array(readTensorBytes(m.initializers.get('w')!)).buffer);
    expect(w[0]).toBe(0.5);
    expect(w[1023]).toBe(0.5);
  });

  it('npm run pack refuses to copy a file outside the graph folder into a pack (exit 1, no pack written)', async () => {
    const graph = join(root, 'model', 'vae.onnx');
    externalGraph(graph, secret);
    const out = join(root, 'pack-abs');
    const code = await packMain(['--transformer', join(TEST_PACK_DIR, 'transformer/model.onnx'), '--vae-decoder', graph, '--quant', 'fp32', '--out', out, '--quiet']);
    expect(code).toBe(1);
    expect(cli.stderr).toMatch(/external data location .*secret\.bin.* is absolute/);
    expect(cli.stderr).toContain(graph);
    expect(existsSync(join(out, 'manifest.json'))).toBe(false);
    expect(existsSync(join(out, 'vae_decoder'))).toBe(false);
  });

  it('convertPack refuses ../ and symlink escapes the same way', async () => {
    for (const location of ['../secret.bin', 'link.bin']) {
      const graph = join(root, 'model', 'vae2.onnx');
      externalGraph(graph, location);
      await expect(convertPack({ transformer: join(TEST_PACK_DIR, 'transformer/model.onnx'), vaeDecoder: graph, quant: 'fp32', out: join(root, 'pack-rel') })).rejects.toThrow(
        /external data location/,
      );
      expect(existsSync(join(root, 'pack-rel', 'manifest.json'))).toBe(false);
    }
  });
});
