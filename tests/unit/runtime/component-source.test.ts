/** A pack's tokenizer that fails to parse is named by its file, in the browser/worker path as in the CLI. */
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { sourcesFromPack } from '../../../src/runtime/component-source.js';
import { openFsPack } from '../../../src/storage/fs-pack-source.js';
import { rejection } from '../../support/errors.js';
import { TEST_PACK_DIR } from '../../support/fixtures.js';

it.each([
  ['tokenizer', 'CLIP'],
  ['tokenizer_2', 'T5'],
])('a broken %s/tokenizer.json is named in the error', async (dir, what) => {
  const pack = join(mkdtempSync(join(tmpdir(), 'flux-tok-')), 'pack');
  cpSync(TEST_PACK_DIR, pack, { recursive: true });
  const broken = Buffer.from('{"model": {"type": "nonsense"}}');
  writeFileSync(join(pack, dir, 'tokenizer.json'), broken);
  // Keep the manifest honest about the file, so only parsing can fail.
  const manifest = JSON.parse(readFileSync(join(pack, 'manifest.json'), 'utf8')) as { files: { path: string; size: number; sha256: string }[] };
  const entry = manifest.files.find((f) => f.path === `${dir}/tokenizer.json`)!;
  Object.assign(entry, { size: broken.length, sha256: createHash('sha256').update(broken).digest('hex') });
  writeFileSync(join(pack, 'manifest.json'), JSON.stringify(manifest));
  const e = await rejection(openFsPack(pack).then((s) => sourcesFromPack(s)));
  expect(e.code).toBe('invalid_manifest');
  expect(e.message).toMatch(new RegExp(`^Could not load the ${what} tokenizer from ${dir}/tokenizer\\.json: `));
});
