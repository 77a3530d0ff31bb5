/**
 * Install a pack from local files: a folder the user downloaded and picked with
 * `<input type=file webkitdirectory>` or dropped on the page. The files go through the same engine as HTTP
 * installs (install-core.ts): same chunks, per-chunk and whole-file sha256, resume, quota check and progress
 * events. Works wherever File/Blob exist (Window, Worker, Node ≥ 20).
 */
import { FluxError } from '../errors.js';
import { parseManifest, type PackFile, type PackManifest } from '../pack/manifest.js';
import { installCancelled } from './http-pack-source.js';
import { runInstall, type BaseInstallOptions, type ByteSource, type InstallResult } from './install-core.js';

/** A local file and its path inside the chosen folder (or a File with `webkitRelativePath`). */
export type LocalPackFile = File | { path: string; file: Blob };

export type FileInstallOptions = BaseInstallOptions;

/** Bytes handed to the engine per read: big enough to keep the hasher busy, small enough for memory. */
const READ_SLICE_BYTES = 4 * 1024 * 1024;

function pathOf(f: LocalPackFile): { path: string; blob: Blob } {
  const raw = f instanceof Blob ? ((f as File).webkitRelativePath || (f as File).name) : f.path;
  const path = raw.replace(/\\/g, '/').replace(/^(\.\/)+/, '').replace(/^\/+/, '');
  return { path, blob: f instanceof Blob ? f : f.file };
}

export interface MatchedPack {
  manifest: PackManifest;
  /** Folder prefix in front of every manifest path ('' when the files were given relative to the pack). */
  prefix: string;
  /** Manifest path → local file. */
  files: Map<string, Blob>;
}

/**
 * Find `manifest.json` (the shallowest one), parse it, and map every manifest path to a file under the same
 * folder. Throws 'pack_file_missing' naming every file the folder lacks, before anything is written.
 */
export async function matchPackFiles(inputs: readonly LocalPackFile[]): Promise<MatchedPack> {
  const byPath = new Map<string, Blob>();
  for (const f of inputs) {
    const { path, blob } = pathOf(f);
    byPath.set(path, blob);
  }
  const depth = (p: string): number => p.split('/').length;
  const manifests = [...byPath.keys()].filter((p) => p === 'manifest.json' || p.endsWith('/manifest.json'));
  if (manifests.length === 0) {
    throw new FluxError('pack_file_missing', `No manifest.json among the ${byPath.size} chosen file(s). Choose the pack folder itself (the one that contains manifest.json).`, {
      details: { files: byPath.size },
    });
  }
  const top = Math.min(...manifests.map(depth));
  const candidates = manifests.filter((p) => depth(p) === top);
  if (candidates.length > 1) {
    throw new FluxError('invalid_input', `Found several packs (${candidates.join(', ')}). Choose one pack folder at a time.`, { field: 'files' });
  }
  const manifestPath = candidates[0]!;
  const prefix = manifestPath.slice(0, manifestPath.length - 'manifest.json'.length);
  let json: unknown;
  try {
    json = JSON.parse(await byPath.get(manifestPath)!.text());
  } catch (e) {
    throw new FluxError('invalid_manifest', `${manifestPath} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  const manifest = parseManifest(json);
  const files = new Map<string, Blob>();
  const missing: string[] = [];
  for (const f of manifest.files) {
    const blob = byPath.get(prefix + f.path);
    if (blob) files.set(f.path, blob);
    else missing.push(f.path);
  }
  if (missing.length) {
    const shown = missing.slice(0, 10).join(', ') + (missing.length > 10 ? ` and ${missing.length - 10} more` : '');
    throw new FluxError(
      'pack_file_missing',
      `The folder${prefix ? ` "${prefix.replace(/\/$/, '')}"` : ''} lacks ${missing.length} of the ${manifest.files.length} files its manifest.json lists: ${shown}. ` +
        'Choose the complete pack folder (finish downloading it first).',
      { details: { packId: manifest.id, missing } },
    );
  }
  return { manifest, prefix, files };
}

function filesByteSource(matched: MatchedPack): ByteSource {
  const blobOf = (f: PackFile): Blob => matched.files.get(f.path)!;
  const src: ByteSource = {
    kind: 'files',
    sourceUrl: null,
    // The chosen folder's name: installing a pack of the same id from another folder asks first.
    ...(matched.prefix ? { sourceFolder: matched.prefix.replace(/\/$/, '') } : {}),
    requests: 0,
    describe: (f) => `local file "${matched.prefix}${f.path}"`,
    async open(f, from) {
      const blob = blobOf(f);
      if (blob.size !== f.size) {
        throw new FluxError('pack_file_corrupt', `${src.describe(f)} has ${blob.size} bytes, the manifest says ${f.size}; re-download that file, then install again.`, {
          details: { file: f.path, expectedSize: f.size, actualSize: blob.size },
        });
      }
      src.requests++;
      let off = from;
      return {
        start: from,
        async read() {
          if (off >= blob.size) return null;
          const end = Math.min(blob.size, off + READ_SLICE_BYTES);
          const bytes = new Uint8Array(await blob.slice(off, end).arrayBuffer());
          off = end;
          return bytes;
        },
        cancel() {},
      };
    },
    async readSpan(f, start, end) {
      const blob = blobOf(f);
      if (blob.size !== f.size) return null;
      src.requests++;
      return new Uint8Array(await blob.slice(start, end).arrayBuffer());
    },
  };
  return src;
}

/**
 * Install a pack from local files (see LocalPackFile). Missing files fail before anything is written; a file
 * of the wrong size or hash is dropped and reported as 'pack_file_corrupt' after the others are installed.
 * Running it again with the same folder resumes an interrupted install.
 */
export async function installPackFromFiles(inputs: readonly LocalPackFile[], options: FileInstallOptions = {}): Promise<InstallResult> {
  if (options.signal?.aborted) throw installCancelled();
  const matched = await matchPackFiles(inputs);
  return runInstall(matched.manifest, filesByteSource(matched), options);
}
