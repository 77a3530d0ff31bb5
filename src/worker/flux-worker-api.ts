/**
 * The API the web worker exposes over Comlink. Built from injected parts (ORT module, GPU, storage), so it can be
 * tested without a worker; workers/flux.worker.ts only wires the real ones in.
 */
import * as Comlink from 'comlink';
import { FluxEngine, type FluxEngineResult, type GenerateProgressEvent, type GenerationShape, type LoadedModelInfo, type LoadProgressEvent } from '../engine/flux-engine.js';
import { FluxError, toFluxError } from '../errors.js';
import { canvasJpegEncoder, type JpegEncoder } from '../image/encode.js';
import { resolveModelConfig } from '../pipeline/config.js';
import { validateRequest, type FluxSchnellInput } from '../pipeline/request.js';
import type { ExecutionTarget, OrtApi } from '../runtime/ort-api.js';
import type { OrtBuild } from './load-ort.js';
import { ExternalDataStaging } from '../runtime/external-data-staging.js';
import type { BackendStats, GpuTimingSync, RuntimeEnv } from '../runtime/ort-backend.js';
import { packActivationArchs, type ActivationArchs } from '../runtime/activation-memory.js';
import { gpuReadbackCount } from './gpu-readback-counter.js';
import { GpuHealth } from './gpu-health.js';
import {
  activationError,
  activationMemoryNeed,
  checkManifestForDevice,
  decideActivations,
  decideCapacity,
  measureAllocatable,
  memoryOptions,
  packNeeds,
  planBytes,
  weightsDuring,
  type ActivationDecision,
  type CapacityDecision,
} from '../runtime/capacity.js';
import { createFluxGpu, type FluxGpu, type WebGpuReport } from '../runtime/webgpu-device.js';
import type { PackManifest } from '../pack/manifest.js';
import { deletePack, listPacks, openInstalledPack, verifyInstalledPack, type PackInfo } from '../storage/indexeddb-pack-store.js';
import { installPack, type InstallProgress, type InstallResult, type InstallStats } from '../storage/pack-installer.js';
import { installPackFromFiles, type LocalPackFile } from '../storage/file-installer.js';
import { storageStatus, type StorageStatus } from '../storage/storage-status.js';
import type { FileCheck } from '../storage/sha256.js';
import type { PackStore } from '../storage/indexeddb-pack-store.js';

export interface RuntimeInfo {
  /** null until the first call that needs the GPU; `error` if WebGPU could not start. */
  webgpu: WebGpuReport | null;
  webgpuError: string | null;
  ortVersion: string;
  crossOriginIsolated: boolean;
  loaded: LoadedModelInfo | null;
  /** The capacity decision for the loaded pack (null when nothing is loaded). */
  capacity: CapacityDecision | null;
  /** The user's cap on GPU memory for models, or null. */
  gpuMemoryLimitBytes: number | null;
  /** The onnxruntime-web build in use. */
  ortBuild: OrtBuild | null;
}

/** `replace`: replace a stored pack of the same id from another source (the UI asks first; docs/storage.md). */
export interface PackInstallCallOptions {
  replace?: boolean;
  /**
   * URL installs: refuse, before any download, a pack this GPU cannot run (features, adapter limits, the memory
   * cap), with the capacity check's reason. Without it such a pack installs and loading says why it cannot run.
   */
  requireRunnable?: boolean;
}

export interface FluxWorkerApi {
  info(): Promise<RuntimeInfo>;
  listPacks(): Promise<PackInfo[]>;
  /** Download a pack (folder URL with manifest.json) into IndexedDB. */
  installPack(baseUrl: string, onProgress?: (e: InstallProgress) => void, options?: PackInstallCallOptions): Promise<InstalledPackInfo>;
  /**
   * Install from local files (a picked or dropped pack folder; File objects clone into the worker). Pass
   * `{ path, file }` where a File's `webkitRelativePath` may not survive the transfer.
   */
  installPackFromFiles(files: LocalPackFile[], onProgress?: (e: InstallProgress) => void, options?: PackInstallCallOptions): Promise<InstalledPackInfo>;
  cancelInstall(): void;
  /** Storage used and allowed for this origin, and whether it is persistent. */
  storageEstimate(): Promise<StorageStatus>;
  verifyPack(packId: string, onProgress?: (e: { file: string; loadedBytes: number; totalBytes: number }) => void): Promise<FileCheck[]>;
  deletePack(packId: string): Promise<void>;
  /** Load an installed pack from IndexedDB (no network). */
  loadPack(packId: string, onProgress?: (e: LoadProgressEvent) => void): Promise<LoadedModelInfo>;
  unload(): Promise<void>;
  /** Generate; images come back as transferred byte buffers. */
  generate(input: FluxSchnellInput, onProgress?: (e: GenerateProgressEvent) => void): Promise<FluxEngineResult>;
  /** Cancel the running and queued generations (they reject with code 'cancelled'). */
  cancel(): void;
  /** Counters of the last generation (time in session.run, read-backs) and GPU map-for-read calls so far. */
  stats(): Promise<(BackendStats & { gpuMapReads: number }) | null>;
  /**
   * Can this device run an installed pack locally, and how (which components stay resident)? Measures an
   * allocation test the first time per pack; `loadPack` uses the same decision.
   */
  probeCapacity(packId: string): Promise<CapacityDecision>;
  /**
   * Would this request's batch and image size fit this GPU with an installed pack (activation buffers against the
   * adapter's limits and the memory budget)? null when nothing is checked (no WebGPU target, or the pack cannot
   * run at all: see probeCapacity). generate runs the same check before any GPU work.
   */
  checkRequest(packId: string, input: FluxSchnellInput): Promise<ActivationDecision | null>;
  /** Cap the GPU memory models may use (null: no cap). Takes effect at the next loadPack. */
  setGpuMemoryLimit(bytes: number | null): void;
  /** Destroy the GPU device, as a driver reset would (tests and the "simulate" button only). */
  loseDeviceForTesting(): Promise<void>;
  /** Make the next operation observe a GPU error of this kind (tests only). */
  injectGpuFailureForTesting(kind: 'out-of-memory' | 'validation'): Promise<void>;
  /** Make the capacity checks read lower adapter limits than the device has (tests only; null restores). */
  capLimitsForTesting(limits: { maxBufferSize?: number; maxStorageBufferBindingSize?: number } | null): void;
  /** How step times wait for the GPU (tests only: 'readback' is a hard synchronising wait, 'none' none). */
  setTimingSyncForTesting(mode: GpuTimingSync): void;
}

/** What an install returns: the pack as listPacks shows it, plus persistence and what the install did. */
export interface InstalledPackInfo extends PackInfo {
  /** Whether the origin's storage is persistent (the page asks for it when an install starts); null if unknown. */
  persisted: boolean | null;
  stats: InstallStats;
}

export interface WorkerDeps {
  ort: OrtApi;
  /** 'webgpu' in the browser (default); tests run the same API on onnxruntime-node's 'cpu'. */
  target?: ExecutionTarget;
  /** Which onnxruntime-web build `ort` is (load-ort.ts); JSPI runs single-threaded. */
  ortBuild?: OrtBuild;
  /** Defaults to navigator.gpu. */
  gpu?: () => Promise<FluxGpu>;
  store?: PackStore;
  jpeg?: JpegEncoder;
}

export function createFluxWorkerApi(deps: WorkerDeps): FluxWorkerApi {
  const storeOpt = deps.store ? { store: deps.store } : {};
  let gpuPromise: Promise<FluxGpu> | null = null;
  let gpuError: string | null = null;
  let engine: FluxEngine | null = null;
  let health: GpuHealth | null = null;
  let capacity: CapacityDecision | null = null;
  const capacityCache = new Map<string, CapacityDecision>();
  let gpuMemoryLimitBytes: number | null = null;
  let installAbort: AbortController | null = null;
  let limitCaps: { maxBufferSize?: number; maxStorageBufferBindingSize?: number } | null = null;
  let timingSync: GpuTimingSync = 'submitted';
  const archsCache = new Map<string, Promise<ActivationArchs>>();
  /** Bytes known to be allocatable per pack (the probe's measurement, raised by later ones). */
  const allocatableKnown = new Map<string, { bytes: number; reachedTarget: boolean }>();
  const generations = new Set<AbortController>();

  // ORT runs inside this worker already: no proxy worker. Threads need cross-origin isolation, and the JSPI
  // build's on-demand external-data loading stalls with them (load-ort.ts).
  if (deps.ort.env.wasm) {
    deps.ort.env.wasm.proxy = false;
    if (!globalThis.crossOriginIsolated || deps.ortBuild === 'jspi') deps.ort.env.wasm.numThreads = 1;
  }

  async function gpu(): Promise<FluxGpu> {
    if (!gpuPromise) {
      gpuPromise = (deps.gpu ?? (() => createFluxGpu()))().then(
        (g) => {
          // ORT's WebGPU EP runs on our device (RuntimeEnv.gpuDevice, an EP option), with the adapter's real limits.
          health = new GpuHealth(g.device);
          return g;
        },
        (e: unknown) => {
          gpuError = e instanceof Error ? e.message : String(e);
          throw toFluxError(e, 'webgpu_unavailable');
        },
      );
    }
    return gpuPromise;
  }

  let gpuNow: FluxGpu | null = null;

  async function getEngine(): Promise<FluxEngine> {
    if (!engine) {
      const target = deps.target ?? 'webgpu';
      if (target === 'webgpu') gpuNow = await gpu();
      const runtime: RuntimeEnv =
        target === 'webgpu'
          ? (() => {
              const g = gpuNow!;
              return {
                ort: deps.ort,
                target,
                gpuFeatures: new Set(g.report.features),
                gpuDevice: g.device,
                gpuReadCounter: gpuReadbackCount,
                // ORT's WebGPU EP submits a run's work when the run returns; this resolves when the GPU is done.
                gpuWorkDone: () => g.device.queue.onSubmittedWorkDone(),
              };
            })()
          : { ort: deps.ort, target };
      // The JSPI build reads Blob external data on demand; the others read it whole (external-data-staging.ts).
      if (deps.ortBuild !== 'jspi') runtime.externalDataStaging = new ExternalDataStaging();
      engine = new FluxEngine({ runtime, jpeg: deps.jpeg ?? canvasJpegEncoder });
      engine.setTimingSync(timingSync);
    }
    return engine;
  }

  /** Run a GPU operation; if the device was lost or reported an error meanwhile, fail with that instead. */
  async function guarded<T>(op: () => Promise<T>): Promise<T> {
    health?.assertUsable();
    const mark = health?.mark() ?? 0;
    let result: T;
    try {
      result = await op();
    } catch (e) {
      throw health?.failureSince(mark, e) ?? e;
    }
    const failure = health?.failureSince(mark);
    if (failure) throw failure;
    return result;
  }

  /** The adapter's limits as the capacity checks read them (lowered by capLimitsForTesting). */
  function limitsOf(g: FluxGpu): Record<string, number> {
    return { ...g.report.limits, ...(limitCaps ?? {}) };
  }

  async function decideFor(packId: string): Promise<CapacityDecision> {
    const key = `${packId}:${gpuMemoryLimitBytes ?? 'none'}:${JSON.stringify(limitCaps)}`;
    const cached = capacityCache.get(key);
    if (cached) return cached;
    const source = await openInstalledPack(packId, storeOpt);
    const needs = packNeeds(source.manifest);
    let decision: CapacityDecision;
    if ((deps.target ?? 'webgpu') !== 'webgpu') {
      decision = decideCapacity(needs, { features: [], limits: {}, allocatableBytes: null, userLimitBytes: gpuMemoryLimitBytes });
    } else {
      const g = await gpu();
      const target = planBytes(needs)['all-resident'];
      const asked = gpuMemoryLimitBytes === null ? target : Math.min(target, gpuMemoryLimitBytes);
      const allocatable = await guarded(() => measureAllocatable(g.device, asked));
      allocatableKnown.set(packId, { bytes: allocatable, reachedTarget: allocatable >= asked });
      decision = decideCapacity(needs, { features: g.report.features, limits: limitsOf(g), allocatableBytes: allocatable, userLimitBytes: gpuMemoryLimitBytes });
    }
    capacityCache.set(key, decision);
    return decision;
  }

  /**
   * The activation check for one request: peak buffers against the (possibly capped) adapter limits, and weights
   * plus activations against the budget. The probe measured only up to what the weights need; a larger need is
   * measured now, up to that need (never more), before it is judged.
   */
  async function checkActivations(packId: string, shape: { batch: number; width: number; height: number; textLength: number; clipLength: number; vaeScaleFactor: number }): Promise<ActivationDecision | null> {
    if ((deps.target ?? 'webgpu') !== 'webgpu') return null;
    const decision = await decideFor(packId);
    if (!decision.plan) return null;
    const g = await gpu();
    let archs = archsCache.get(packId);
    if (!archs) {
      archs = openInstalledPack(packId, storeOpt).then((s) => packActivationArchs(s));
      archsCache.set(packId, archs);
      archs.catch(() => archsCache.delete(packId));
    }
    const source = await openInstalledPack(packId, storeOpt);
    const weights = weightsDuring(decision.plan, packNeeds(source.manifest));
    const model = { archs: await archs, t5Length: shape.textLength, clipLength: shape.clipLength, vaeScaleFactor: shape.vaeScaleFactor };
    const r = { batch: shape.batch, width: shape.width, height: shape.height };
    let budget = decision.budgetBytes;
    const known = allocatableKnown.get(packId);
    const need = activationMemoryNeed(model, r, weights);
    if (budget !== null && need > budget && known?.reachedTarget) {
      const asked = gpuMemoryLimitBytes === null ? need : Math.min(need, gpuMemoryLimitBytes);
      if (asked > known.bytes) {
        const got = await guarded(() => measureAllocatable(g.device, asked));
        allocatableKnown.set(packId, { bytes: Math.max(got, known.bytes), reachedTarget: got >= asked });
      }
      budget = Math.min(allocatableKnown.get(packId)!.bytes, gpuMemoryLimitBytes ?? Infinity);
    }
    const limits = limitsOf(g);
    return decideActivations(model, r, { maxBufferSize: limits.maxBufferSize ?? Infinity, maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize ?? Infinity, budgetBytes: budget }, weights);
  }

  /** One install at a time per worker; cancelInstall aborts it. */
  async function runInstallCall(run: (signal: AbortSignal) => Promise<InstallResult>): Promise<InstalledPackInfo> {
    if (installAbort) throw new FluxError('busy', 'Another pack is being installed.');
    installAbort = new AbortController();
    try {
      const { manifest, persisted, stats } = await run(installAbort.signal);
      return { ...(await packInfo(manifest.id)), persisted, stats };
    } finally {
      installAbort = null;
    }
  }

  async function packInfo(id: string): Promise<PackInfo> {
    const p = (await listPacks(storeOpt)).find((x) => x.id === id);
    if (!p) throw new FluxError('pack_not_installed', `Pack "${id}" is not installed.`);
    return p;
  }

  const api: FluxWorkerApi = {
    async info() {
      let report: WebGpuReport | null = null;
      if ((deps.target ?? 'webgpu') === 'webgpu') {
        try {
          report = (await gpu()).report;
        } catch {
          // reported through webgpuError
        }
      }
      return {
        webgpu: report,
        webgpuError: gpuError,
        ortVersion: deps.ort.env.versions.web ?? deps.ort.env.versions.common,
        crossOriginIsolated: Boolean(globalThis.crossOriginIsolated),
        loaded: engine?.info ?? null,
        capacity: engine?.info ? capacity : null,
        gpuMemoryLimitBytes,
        ortBuild: deps.ortBuild ?? null,
      };
    },

    listPacks: () => listPacks(storeOpt),

    installPack: (baseUrl, onProgress, opts) =>
      runInstallCall((signal) =>
        installPack(baseUrl, {
          ...storeOpt,
          signal,
          ...(onProgress ? { onProgress } : {}),
          ...(opts?.replace ? { replace: true } : {}),
          ...(opts?.requireRunnable ? { checkManifest: async (m: PackManifest) => checkManifestForDevice(m, baseUrl, await api.info()) } : {}),
        }),
      ),

    installPackFromFiles: (files, onProgress, opts) =>
      runInstallCall((signal) => installPackFromFiles(files, { ...storeOpt, signal, ...(onProgress ? { onProgress } : {}), ...(opts?.replace ? { replace: true } : {}) })),

    storageEstimate: () => storageStatus(),

    cancelInstall() {
      installAbort?.abort();
    },

    verifyPack: (packId, onProgress) =>
      verifyInstalledPack(packId, { ...storeOpt, ...(onProgress ? { onProgress: (e) => onProgress({ file: e.file, loadedBytes: e.loadedBytes, totalBytes: e.totalBytes }) } : {}) }),

    async deletePack(packId) {
      if (engine?.info?.packId === packId) await engine.unload();
      await deletePack(packId, storeOpt);
    },

    async loadPack(packId, onProgress) {
      const source = await openInstalledPack(packId, storeOpt);
      const decision = await decideFor(packId);
      // A missing feature is reported by the runtime's own check below, which names the component and the
      // feature (missing_gpu_feature); every other refusal is about capacity.
      const onlyFeatures = decision.checks.every((c) => c.ok || c.name === 'features');
      if (!decision.canRunLocally && !onlyFeatures) throw new FluxError('insufficient_capacity', decision.reason, { details: { capacity: decision } });
      const e = await getEngine();
      const memory = memoryOptions(decision, packNeeds(source.manifest));
      const info = await guarded(() =>
        e.loadPack(source, { ...(onProgress ? { onProgress } : {}), resident: new Set(decision.resident), ...(memory ? { memory } : {}) }),
      );
      capacity = decision;
      return info;
    },

    async unload() {
      await engine?.unload();
    },

    async generate(input, onProgress) {
      if (!engine?.info) throw new FluxError('not_loaded', 'No model is loaded: install and load a pack first.');
      const controller = new AbortController();
      generations.add(controller);
      try {
        const e = engine;
        const packId = e.info?.packId ?? null;
        // Refuse a size that cannot fit before any GPU work, with the field and the numbers.
        const admit = async (s: GenerationShape) => {
          if (!packId) return;
          const d = await checkActivations(packId, { batch: s.batch, width: s.width, height: s.height, textLength: s.textLength, clipLength: s.config.clipMaxLength, vaeScaleFactor: s.config.vaeScaleFactor });
          if (d && !d.fits) throw activationError(d);
        };
        const result = await guarded(() => e.generate(input, { signal: controller.signal, admit, ...(onProgress ? { onProgress } : {}) }));
        return Comlink.transfer(result, result.images.map((i) => i.bytes.buffer as ArrayBuffer));
      } finally {
        generations.delete(controller);
      }
    },

    cancel() {
      for (const c of generations) c.abort();
    },

    async stats() {
      const s = engine?.stats;
      return s ? { ...s, gpuMapReads: gpuReadbackCount() } : null;
    },

    probeCapacity: (packId) => decideFor(packId),

    async checkRequest(packId, input) {
      const loaded = engine?.info?.packId === packId ? engine.info.config : null;
      const config = loaded ?? resolveModelConfig((await openInstalledPack(packId, storeOpt)).manifest.config);
      const r = validateRequest(input, config);
      return checkActivations(packId, {
        batch: r.numImages,
        width: r.width,
        height: r.height,
        textLength: r.promptEmbeds?.dims[1] ?? config.t5MaxLength,
        clipLength: config.clipMaxLength,
        vaeScaleFactor: config.vaeScaleFactor,
      });
    },

    setGpuMemoryLimit(bytes) {
      if (bytes !== null && !(Number.isFinite(bytes) && bytes > 0)) throw new FluxError('invalid_input', 'gpuMemoryLimit: must be a positive number of bytes or null', { field: 'gpuMemoryLimit' });
      gpuMemoryLimitBytes = bytes;
    },

    async loseDeviceForTesting() {
      (await gpu()).device.destroy();
      await new Promise((r) => setTimeout(r, 0)); // let device.lost settle
    },

    async injectGpuFailureForTesting(kind) {
      await gpu();
      health!.injectForTesting(kind);
    },

    capLimitsForTesting(limits) {
      limitCaps = limits ? { ...limits } : null;
    },

    setTimingSyncForTesting(mode) {
      if (mode !== 'submitted' && mode !== 'readback' && mode !== 'none') throw new FluxError('invalid_input', `timingSync: must be "submitted", "readback" or "none", got ${JSON.stringify(mode)}`, { field: 'timingSync' });
      timingSync = mode;
      engine?.setTimingSync(mode);
    },
  };
  return api;
}
