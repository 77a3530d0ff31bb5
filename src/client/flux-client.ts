/**
 * FluxClient: the main-thread API. It owns the worker, validates requests before sending them, and turns image
 * bytes into object URLs (or data: URIs with sync_mode), returning fal's output shape.
 *
 * @example
 * const flux = await FluxClient.create();
 * await flux.installPack('/packs/flux-test-tiny/');
 * await flux.loadPack('flux-test-tiny');
 * const { images, seed } = await flux.generate({ prompt: 'a lighthouse at dusk', image_size: 'square' });
 */
import * as Comlink from 'comlink';
import type { FluxTimings, GenerateProgressEvent, LoadedModelInfo, LoadProgressEvent, SafetyReport } from '../engine/flux-engine.js';
import { toFluxError } from '../errors.js';
import { toDataUri } from '../image/encode.js';
import { resolveModelConfig } from '../pipeline/config.js';
import { validateRequest, type FluxSchnellInput } from '../pipeline/request.js';
import type { PackInfo } from '../storage/indexeddb-pack-store.js';
import type { LocalPackFile } from '../storage/file-installer.js';
import type { InstallProgress } from '../storage/pack-installer.js';
import { requestPersistence, type StorageStatus } from '../storage/storage-status.js';
import type { FileCheck } from '../storage/sha256.js';
import { registerErrorTransfer } from '../worker/error-transfer.js';
import type { FluxWorkerApi, InstalledPackInfo, RuntimeInfo } from '../worker/flux-worker-api.js';

export interface FluxImage {
  url: string;
  width: number;
  height: number;
  content_type: string;
}

/** fal's FLUX output shape (plus `safety`, which says whether a checker actually ran). */
export interface FluxOutput {
  images: FluxImage[];
  seed: number;
  timings: FluxTimings;
  has_nsfw_concepts: boolean[];
  prompt: string;
  safety: SafetyReport;
}

export interface GenerateCallOptions {
  onProgress?: (e: GenerateProgressEvent) => void;
  /** Aborting cancels the generation at the next step boundary. */
  signal?: AbortSignal;
}

export type { GenerateProgressEvent, InstalledPackInfo, InstallProgress, LoadProgressEvent, LocalPackFile, PackInfo, RuntimeInfo, StorageStatus };

/**
 * Ask for persistent storage at install start. `persist()` exists only in a Window, so the page asks and the
 * worker reports the outcome. Firefox may prompt: don't hold the install up for more than a moment.
 */
function askPersistence(): Promise<unknown> {
  return Promise.race([requestPersistence(), new Promise((r) => setTimeout(r, 2000))]);
}

export class FluxClient {
  private loaded: LoadedModelInfo | null = null;
  private readonly urls = new Set<string>();

  private constructor(
    private readonly worker: Worker,
    private readonly api: Comlink.Remote<FluxWorkerApi>,
  ) {}

  /** Start the worker. Pass a Worker to host it yourself (e.g. a custom bundle). */
  static async create(worker?: Worker): Promise<FluxClient> {
    registerErrorTransfer();
    const w = worker ?? new Worker(new URL('../../workers/flux.worker.ts', import.meta.url), { type: 'module', name: 'flux' });
    return new FluxClient(w, Comlink.wrap<FluxWorkerApi>(w));
  }

  info(): Promise<RuntimeInfo> {
    return this.call(() => this.api.info());
  }
  listPacks(): Promise<PackInfo[]> {
    return this.call(() => this.api.listPacks());
  }
  /** Download a pack folder into IndexedDB; resumes an interrupted install of the same pack. */
  async installPack(baseUrl: string, onProgress?: (e: InstallProgress) => void): Promise<InstalledPackInfo> {
    const absolute = new URL(baseUrl, globalThis.location?.href).href;
    await askPersistence();
    return this.call(() => this.api.installPack(absolute, onProgress ? Comlink.proxy(onProgress) : undefined));
  }
  /**
   * Install from a local pack folder: the Files of `<input type=file webkitdirectory>` (their
   * `webkitRelativePath` is read here, before the transfer), or `{ path, file }` pairs (a dropped folder).
   */
  async installPackFromFiles(files: readonly LocalPackFile[], onProgress?: (e: InstallProgress) => void): Promise<InstalledPackInfo> {
    const entries = files.map((f) => (f instanceof Blob ? { path: (f as File).webkitRelativePath || (f as File).name, file: f } : f));
    await askPersistence();
    return this.call(() => this.api.installPackFromFiles(entries, onProgress ? Comlink.proxy(onProgress) : undefined));
  }
  /** Storage used and allowed for this origin, and whether it is persistent. */
  storageEstimate(): Promise<StorageStatus> {
    return this.call(() => this.api.storageEstimate());
  }
  cancelInstall(): Promise<void> {
    return this.call(() => this.api.cancelInstall());
  }
  verifyPack(packId: string): Promise<FileCheck[]> {
    return this.call(() => this.api.verifyPack(packId));
  }
  deletePack(packId: string): Promise<void> {
    if (this.loaded?.packId === packId) this.loaded = null;
    return this.call(() => this.api.deletePack(packId));
  }
  async loadPack(packId: string, onProgress?: (e: LoadProgressEvent) => void): Promise<LoadedModelInfo> {
    this.loaded = await this.call(() => this.api.loadPack(packId, onProgress ? Comlink.proxy(onProgress) : undefined));
    return this.loaded;
  }
  get loadedModel(): LoadedModelInfo | null {
    return this.loaded;
  }

  /** Validate (fal schema, local ranges) here, then generate in the worker. */
  async generate(input: FluxSchnellInput, options: GenerateCallOptions = {}): Promise<FluxOutput> {
    // Early, synchronous validation with the loaded model's config; the worker validates again.
    validateRequest(input, this.loaded?.config ?? resolveModelConfig(), () => 0);
    const { signal, onProgress } = options;
    if (signal?.aborted) await this.api.cancel();
    const onAbort = () => void this.api.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const r = await this.call(() => this.api.generate(input, onProgress ? Comlink.proxy(onProgress) : undefined));
      const sync = input.sync_mode ?? false;
      const images = r.images.map((img) => {
        let url: string;
        if (sync) url = toDataUri(img.bytes, img.contentType);
        else {
          url = URL.createObjectURL(new Blob([img.bytes as Uint8Array<ArrayBuffer>], { type: img.contentType }));
          this.urls.add(url);
        }
        return { url, width: img.width, height: img.height, content_type: img.contentType };
      });
      return { images, seed: r.seed, timings: r.timings, has_nsfw_concepts: r.has_nsfw_concepts, prompt: r.prompt, safety: r.safety };
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Cancel the running generation (it rejects with code 'cancelled'). */
  cancel(): Promise<void> {
    return this.call(() => this.api.cancel());
  }

  stats() {
    return this.call(() => this.api.stats());
  }

  /** Release the object URLs of a result once the images are no longer shown. */
  revoke(output: FluxOutput): void {
    for (const i of output.images) {
      if (this.urls.delete(i.url)) URL.revokeObjectURL(i.url);
    }
  }

  terminate(): void {
    for (const u of this.urls) URL.revokeObjectURL(u);
    this.urls.clear();
    this.api[Comlink.releaseProxy]();
    this.worker.terminate();
  }

  private async call<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw toFluxError(e);
    }
  }
}
