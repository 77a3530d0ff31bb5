/** `wasmPaths` reaches onnxruntime-web's env, and a value ORT would misread is refused naming the field. */
import { describe, expect, it } from 'vitest';
import { checkWasmPaths, loadOrtWeb } from '../../../src/worker/load-ort.js';
import { rejection } from '../../support/errors.js';

describe('wasmPaths', () => {
  it('sets env.wasm.wasmPaths on the loaded onnxruntime-web module', async () => {
    const ort = await loadOrtWeb('asyncify', { wasmPaths: 'https://cdn.example/ort/1.30.0/' });
    expect(ort.env.wasm.wasmPaths).toBe('https://cdn.example/ort/1.30.0/');
    const files = { wasm: 'https://cdn.example/a.wasm', mjs: 'https://cdn.example/a.mjs' };
    expect((await loadOrtWeb('asyncify', { wasmPaths: files })).env.wasm.wasmPaths).toEqual(files);
  });

  it('leaves ORT to find its wasm next to its module when unset', async () => {
    const ort = await loadOrtWeb('asyncify', { wasmPaths: 'https://cdn.example/x/' });
    ort.env.wasm.wasmPaths = undefined as never;
    expect((await loadOrtWeb('asyncify')).env.wasm.wasmPaths).toBeUndefined();
  });

  it('accepts prefixes and file URLs', () => {
    expect(checkWasmPaths('/ort/')).toBe('/ort/');
    expect(checkWasmPaths({ wasm: '/ort/ort-wasm-simd-threaded.asyncify.wasm' })).toEqual({ wasm: '/ort/ort-wasm-simd-threaded.asyncify.wasm' });
  });

  it.each([
    ['https://cdn.example/ort', 'wasmPaths', 'ending in "/"'],
    ['', 'wasmPaths', 'URL prefix'],
    [42, 'wasmPaths', 'got 42'],
    [{}, 'wasmPaths', 'give "wasm" and/or "mjs"'],
    [{ wasm: 7 }, 'wasmPaths.wasm', 'must be a URL'],
    [{ js: '/x.js' }, 'wasmPaths.js', 'unknown key "js"'],
  ])('refuses %j', async (value, field, text) => {
    const e = await rejection(loadOrtWeb('asyncify', { wasmPaths: value as never }));
    expect(e).toMatchObject({ code: 'invalid_input', field });
    expect(e.message).toContain(text);
  });
});
