/** The dropped-folder walker (src/app/dropped-files.ts) over fake FileSystemEntry trees, then into matchPackFiles. */
import { describe, expect, it } from 'vitest';
import { dropEntries, walkEntries } from '../../../src/app/dropped-files.js';
import { matchPackFiles } from '../../../src/storage/file-installer.js';
import { manifestFor } from './pack-fixture.js';

type Tree = { [name: string]: Tree | Blob };

/** A FileSystemEntry tree like Chromium's: directory readers return entries in batches of at most `batch`. */
function entry(name: string, node: Tree | Blob, parent = '', batch = 2): FileSystemEntry {
  const fullPath = `${parent}/${name}`;
  if (node instanceof Blob) {
    return { isFile: true, isDirectory: false, name, fullPath, file: (ok: (f: File) => void) => ok(new File([node], name)) } as unknown as FileSystemEntry;
  }
  const children = Object.entries(node).map(([n, c]) => entry(n, c, fullPath, batch));
  return {
    isFile: false,
    isDirectory: true,
    name,
    fullPath,
    createReader: () => {
      let at = 0;
      return { readEntries: (ok: (e: FileSystemEntry[]) => void) => ok(children.slice(at, (at += batch))) };
    },
  } as unknown as FileSystemEntry;
}

describe('dropped folder', () => {
  it('walks nested directories in batches, keeps paths from the dropped folder, and feeds matchPackFiles', async () => {
    const bytes = new Map<string, Uint8Array>([
      ['transformer.onnx', new Uint8Array([1, 2, 3])],
      ['vae_decoder.onnx', new Uint8Array([4])],
      ['a/b/c.bin', new Uint8Array([5, 6])],
      ['a/d.bin', new Uint8Array([7])],
      ['a/e.bin', new Uint8Array([])],
    ]);
    const m = manifestFor('dropped', bytes);
    const blob = (p: string) => new Blob([bytes.get(p) as Uint8Array<ArrayBuffer>]);
    const tree: Tree = {
      'manifest.json': new Blob([JSON.stringify(m)]),
      'transformer.onnx': blob('transformer.onnx'),
      'vae_decoder.onnx': blob('vae_decoder.onnx'),
      a: { b: { 'c.bin': blob('a/b/c.bin') }, 'd.bin': blob('a/d.bin'), 'e.bin': blob('a/e.bin') },
    };
    const files = await walkEntries([entry('my-pack', tree)]);
    expect(files.map((f) => ('path' in f ? f.path : '')).sort()).toEqual(
      ['manifest.json', 'transformer.onnx', 'vae_decoder.onnx', 'a/b/c.bin', 'a/d.bin', 'a/e.bin'].map((p) => `my-pack/${p}`).sort(),
    );
    const matched = await matchPackFiles(files);
    expect(matched.prefix).toBe('my-pack/');
    expect(matched.manifest.id).toBe('dropped');
    expect(new Uint8Array(await matched.files.get('a/b/c.bin')!.arrayBuffer())).toEqual(new Uint8Array([5, 6]));
  });

  it('falls back to loose files when the drop has no entries', () => {
    const f = new File(['x'], 'manifest.json');
    const dt = { items: [{ kind: 'file', webkitGetAsEntry: () => null }], files: [f] } as unknown as DataTransfer;
    expect(dropEntries(dt)).toEqual({ entries: [], files: [f] });
  });
});
