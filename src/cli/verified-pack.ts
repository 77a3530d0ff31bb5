/**
 * Opening a pack folder for the CLI with its files verified (size + sha256). Hashing a 10 GB pack takes a while,
 * so a file's verification is remembered by (path, size, mtime) in ~/.cache/flux-webgpu/verified.json and
 * repeated only when the file changes.
 */
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { FluxError } from '../errors.js';
import { openFsPack, verifyPack, type FsPackSource } from '../storage/fs-pack-source.js';

type Cache = Record<string, { size: number; mtimeMs: number; sha256: string }>;

function cachePath(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'flux-webgpu', 'verified.json');
}

async function readCache(): Promise<Cache> {
  try {
    return JSON.parse(await readFile(cachePath(), 'utf8')) as Cache;
  } catch {
    return {};
  }
}

async function writeCache(cache: Cache): Promise<void> {
  const p = cachePath();
  try {
    await mkdir(dirname(p), { recursive: true });
    await writeFile(`${p}.tmp`, JSON.stringify(cache));
    await rename(`${p}.tmp`, p); // atomic: concurrent runs never see a torn file
  } catch {
    // A read-only home only costs re-hashing next time.
  }
}

export async function openPackDir(dir: string, options: { verify: boolean; log?: (s: string) => void }): Promise<FsPackSource> {
  const pack = await openFsPack(dir);
  if (!options.verify) return pack;
  const cache = await readCache();
  const stats = new Map<string, { size: number; mtimeMs: number }>();
  for (const f of pack.manifest.files) {
    const s = await stat(pack.localPath(f.path)).catch(() => null);
    if (s) stats.set(f.path, { size: s.size, mtimeMs: s.mtimeMs });
  }
  const fresh = (path: string, sha256: string) => {
    const c = cache[pack.localPath(path)];
    const s = stats.get(path);
    return c && s && c.size === s.size && c.mtimeMs === s.mtimeMs && c.sha256 === sha256;
  };
  if (pack.manifest.files.every((f) => fresh(f.path, f.sha256))) return pack;

  options.log?.(`verifying ${pack.manifest.files.length} files of ${pack.dir} …`);
  const results = await verifyPack(pack);
  const bad = results.filter((r) => !r.ok);
  if (bad.length) {
    const r = bad[0]!;
    const what =
      r.problem === 'missing'
        ? 'is missing'
        : r.problem === 'size'
          ? `has ${r.actualSize} bytes, the manifest says ${r.expectedSize}`
          : `has sha256 ${r.actualSha256}, the manifest says ${r.expectedSha256}`;
    throw new FluxError(r.problem === 'missing' ? 'pack_file_missing' : 'pack_file_corrupt', `${pack.localPath(r.path)} ${what}${bad.length > 1 ? ` (and ${bad.length - 1} more file(s))` : ''}.`, {
      details: { files: bad.map((b) => b.path) },
    });
  }
  for (const f of pack.manifest.files) {
    const s = stats.get(f.path)!;
    cache[pack.localPath(f.path)] = { size: s.size, mtimeMs: s.mtimeMs, sha256: f.sha256 };
  }
  await writeCache(cache);
  return pack;
}
