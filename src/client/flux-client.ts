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
import { cancelledError, FluxError, isFluxError, toFluxError } from '../errors.js';
import { toDataUri } from '../image/encode.js';
import { resolveModelConfig } from '../pipeline/config.js';
import { validateRequest, type FluxSchnellInput } from '../pipeline/request.js';
import type { PackInfo } from '../storage/indexeddb-pack-store.js';
import type { LocalPackFile } from '../storage/file-installer.js';
import type { InstallProgress } from '../storage/pack-installer.js';
import { requestPersistence, type StorageStatus } from '../storage/storage-status.js';
import type { FileCheck } from '../storage/sha256.js';
import type { ActivationDecision, CapacityDecision } from '../runtime/capacity.js';
import type { GpuTimingSync } from '../runtime/ort-backend.js';
import { registerErrorTransfer } from '../worker/error-transfer.js';
import { createDefaultWorker } from './default-worker.js';
import { DEFAULT_WORKER_START_TIMEOUT_MS, waitForWorkerStart } from './worker-start.js';
import type { FluxWorkerApi, InstalledPackInfo, PackInstallCallOptions, RuntimeInfo } from '../worker/flux-worker-api.js';

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

/** Something the client did on its own that the app may want to show. */
export type ClientEvent =
  | { type: 'recovering'; reason: 'device_lost' | 'out_of_memory' | 'gpu_error'; message: string }
  | { type: 'recovered'; reason: 'device_lost' | 'out_of_memory' | 'gpu_error'; packId: string | null; gpuMemoryLimitBytes: number | null };

export interface FluxClientOptions {
  /**
   * The worker: a script that calls `exposeFluxWorker()` from 'flux-webgpu/worker' (docs/library.md). A function is
   * called again to replace the worker after a GPU failure; a Worker instance cannot be replaced, so such a failure
   * is reported instead of recovered. Default: the app's bundled worker (none in the npm package: pass one there).
   */
  worker?: Worker | (() => Worker);
  /** Same as a `worker` function (kept for existing callers). */
  createWorker?: () => Worker;
  /** How long the worker may take to start before calls reject (a 404 or a broken script rejects at once). @defaultValue 30000 */
  startTimeoutMs?: number;
  /** The onnxruntime-web build for the bundled worker (default asyncify; JSPI loads with less memory, see load-ort.ts). */
  ortBuild?: 'jspi' | 'asyncify';
  onEvent?: (e: ClientEvent) => void;
}

/** Failures after which the worker's GPU state is gone or suspect: replace the worker, reload, retry once. */
const RECOVERABLE = new Set(['device_lost', 'out_of_memory', 'gpu_error']);

export class FluxClient {
  private loaded: LoadedModelInfo | null = null;
  private readonly urls = new Set<string>();
  private worker: Worker;
  private api: Comlink.Remote<FluxWorkerApi>;
  private gpuMemoryLimitBytes: number | null = null;
  /** Settles when the worker has answered the start-up handshake; every call waits for it (worker-start.ts). */
  private started!: Promise<void>;

  private constructor(
    private readonly options: Required<Pick<FluxClientOptions, 'createWorker'>> & FluxClientOptions,
    /** False for a caller's Worker instance: there is no second one to recover with. */
    private readonly replaceable: boolean,
  ) {
    this.worker = options.createWorker();
    this.api = Comlink.wrap<FluxWorkerApi>(this.worker);
    this.watchStart();
  }

  private watchStart(): void {
    this.started = waitForWorkerStart(this.worker, this.options.startTimeoutMs ?? DEFAULT_WORKER_START_TIMEOUT_MS);
    this.started.catch(() => undefined); // reported by the calls that wait for it, not as an unhandled rejection
  }

  /** Start the worker (see FluxClientOptions to host it yourself or to hear about recoveries). */
  static async create(options: FluxClientOptions = {}): Promise<FluxClient> {
    registerErrorTransfer();
    const name = options.ortBuild ? `flux:${options.ortBuild}` : 'flux';
    const given = options.worker;
    // Duck-typed: a Worker, or anything that talks like one (a polyfill, a test's MessagePort).
    const workerLike = (w: object) => ['postMessage', 'addEventListener', 'terminate'].every((k) => typeof (w as Record<string, unknown>)[k] === 'function');
    if (given !== undefined && typeof given !== 'function' && !(given && typeof given === 'object' && workerLike(given))) {
      throw new FluxError('invalid_input', 'worker: must be a Worker or a function returning one, e.g. () => new Worker(new URL("./flux.worker.ts", import.meta.url), { type: "module" })', { field: 'worker' });
    }
    const createWorker = typeof given === 'function' ? given : given ? () => given : (options.createWorker ?? (() => createDefaultWorker(name)));
    return new FluxClient({ ...options, createWorker }, !given || typeof given === 'function');
  }

  info(): Promise<RuntimeInfo> {
    return this.call(() => this.api.info());
  }
  listPacks(): Promise<PackInfo[]> {
    return this.call(() => this.api.listPacks());
  }
  /** Download a pack folder into IndexedDB; resumes an interrupted install of the same pack. */
  async installPack(baseUrl: string, onProgress?: (e: InstallProgress) => void, options: PackInstallCallOptions = {}): Promise<InstalledPackInfo> {
    const absolute = new URL(baseUrl, globalThis.location?.href).href;
    await askPersistence();
    return this.call(() => this.api.installPack(absolute, onProgress ? Comlink.proxy(onProgress) : undefined, options));
  }
  /**
   * Install from a local pack folder: the Files of `<input type=file webkitdirectory>` (their
   * `webkitRelativePath` is read here, before the transfer), or `{ path, file }` pairs (a dropped folder).
   */
  async installPackFromFiles(files: readonly LocalPackFile[], onProgress?: (e: InstallProgress) => void, options: PackInstallCallOptions = {}): Promise<InstalledPackInfo> {
    const entries = files.map((f) => (f instanceof Blob ? { path: (f as File).webkitRelativePath || (f as File).name, file: f } : f));
    await askPersistence();
    return this.call(() => this.api.installPackFromFiles(entries, onProgress ? Comlink.proxy(onProgress) : undefined, options));
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
    const load = () => this.call(() => this.api.loadPack(packId, onProgress ? Comlink.proxy(onProgress) : undefined));
    this.loaded = await this.withRecovery(load, () => undefined);
    return this.loaded;
  }

  /** Can this device run an installed pack locally, and with which components resident? */
  probeCapacity(packId: string): Promise<CapacityDecision> {
    return this.call(() => this.api.probeCapacity(packId));
  }

  /** Would this request's batch and image size fit this GPU with that pack (null: not checked)? */
  checkRequest(packId: string, input: FluxSchnellInput): Promise<ActivationDecision | null> {
    return this.call(() => this.api.checkRequest(packId, input));
  }

  /** Cap the GPU memory models may use (null: none); applies from the next loadPack. */
  async setGpuMemoryLimit(bytes: number | null): Promise<void> {
    await this.call(() => this.api.setGpuMemoryLimit(bytes));
    this.gpuMemoryLimitBytes = bytes;
  }
  get loadedModel(): LoadedModelInfo | null {
    return this.loaded;
  }

  /** Validate (fal schema, local ranges) here, then generate in the worker. */
  async generate(input: FluxSchnellInput, options: GenerateCallOptions = {}): Promise<FluxOutput> {
    // Early, synchronous validation with the loaded model's config; the worker validates again.
    validateRequest(input, this.loaded?.config ?? resolveModelConfig(), () => 0);
    const { signal, onProgress } = options;
    if (signal?.aborted) throw cancelledError();
    const onAbort = () => void this.api.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const run = () => this.call(() => this.api.generate(input, onProgress ? Comlink.proxy(onProgress) : undefined));
      const r = await this.withRecovery(run, () => {
        if (signal?.aborted) throw new FluxError('cancelled', 'Generation was cancelled.');
      });
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

  /**
   * Run `op`; if the worker's GPU failed (device lost, out of memory, untrusted result), replace the worker,
   * reload the pack from IndexedDB — under a lower memory limit after out-of-memory — and run `op` once more.
   */
  private async withRecovery<T>(op: () => Promise<T>, beforeRetry: () => void): Promise<T> {
    try {
      return await op();
    } catch (e) {
      if (!isFluxError(e) || !RECOVERABLE.has(e.code) || !this.replaceable) throw e;
      const reason = e.code as 'device_lost' | 'out_of_memory' | 'gpu_error';
      this.options.onEvent?.({ type: 'recovering', reason, message: e.message });
      if (reason === 'out_of_memory') {
        // Ask for the next smaller residency plan: a limit just below what the current one needed.
        const info = await this.api.info().catch(() => null);
        const needed = info?.capacity?.neededBytes;
        if (info?.capacity?.plan === 'all-transient' || needed === undefined) throw e;
        this.gpuMemoryLimitBytes = needed - 1;
      }
      await this.restartWorker();
      this.options.onEvent?.({ type: 'recovered', reason, packId: this.loaded?.packId ?? null, gpuMemoryLimitBytes: this.gpuMemoryLimitBytes });
      beforeRetry();
      return op();
    }
  }

  /** A fresh worker (new GPU device, new sessions), with the same memory limit and pack as before. */
  private async restartWorker(): Promise<void> {
    this.api[Comlink.releaseProxy]();
    this.worker.terminate();
    this.worker = this.options.createWorker();
    this.api = Comlink.wrap<FluxWorkerApi>(this.worker);
    this.watchStart();
    if (this.gpuMemoryLimitBytes !== null) await this.call(() => this.api.setGpuMemoryLimit(this.gpuMemoryLimitBytes));
    if (this.loaded?.packId) this.loaded = await this.call(() => this.api.loadPack(this.loaded!.packId!));
  }

  /** Testing hooks: lose the GPU device / make the next operation see a GPU error. */
  loseDeviceForTesting(): Promise<void> {
    return this.call(() => this.api.loseDeviceForTesting());
  }
  injectGpuFailureForTesting(kind: 'out-of-memory' | 'validation'): Promise<void> {
    return this.call(() => this.api.injectGpuFailureForTesting(kind));
  }

  /** Make the worker's capacity checks read lower adapter limits (tests only; a new worker starts without). */
  capLimitsForTesting(limits: { maxBufferSize?: number; maxStorageBufferBindingSize?: number } | null): Promise<void> {
    return this.call(() => this.api.capLimitsForTesting(limits));
  }

  /** How step times wait for the GPU: 'submitted' (default), 'readback' (a hard sync) or 'none' (tests only). */
  setTimingSyncForTesting(mode: GpuTimingSync): Promise<void> {
    return this.call(() => this.api.setTimingSyncForTesting(mode));
  }

  terminate(): void {
    for (const u of this.urls) URL.revokeObjectURL(u);
    this.urls.clear();
    this.api[Comlink.releaseProxy]();
    this.worker.terminate();
  }

  private async call<T>(f: () => Promise<T>): Promise<T> {
    await this.started;
    try {
      return await f();
    } catch (e) {
      throw toFluxError(e);
    }
  }
}
