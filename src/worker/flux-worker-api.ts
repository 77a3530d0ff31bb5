/**
 * The API the web worker exposes over Comlink. Built from injected parts (ORT module, GPU, storage), so it can be
 * tested without a worker; workers/flux.worker.ts only wires the real ones in.
 */
import * as Comlink from 'comlink';
import { FluxEngine, type FluxEngineResult, type GenerateProgressEvent, type LoadedModelInfo, type LoadProgressEvent } from '../engine/flux-engine.js';
import { FluxError, toFluxError } from '../errors.js';
import { canvasJpegEncoder, type JpegEncoder } from '../image/encode.js';
import type { FluxSchnellInput } from '../pipeline/request.js';
import type { ExecutionTarget, OrtApi } from '../runtime/ort-api.js';
import type { OrtBuild } from './load-ort.js';
import { ExternalDataStaging } from '../runtime/external-data-staging.js';
import type { BackendStats, RuntimeEnv } from '../runtime/ort-backend.js';
import { gpuReadbackCount } from './gpu-readback-counter.js';
import { GpuHealth } from './gpu-health.js';
import { decideCapacity, measureAllocatable, memoryOptions, packNeeds, planBytes, type CapacityDecision } from '../runtime/capacity.js';
import { createFluxGpu, type FluxGpu, type WebGpuReport } from '../runtime/webgpu-device.js';
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
  /** Cap the GPU memory models may use (null: no cap). Takes effect at the next loadPack. */
  setGpuMemoryLimit(bytes: number | null): void;
  /** Destroy the GPU device, as a driver reset would (tests and the "simulate" button only). */
  loseDeviceForTesting(): Promise<void>;
  /** Make the next operation observe a GPU error of this kind (tests only). */
  injectGpuFailureForTesting(kind: 'out-of-memory' | 'validation'): Promise<void>;
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
          // ORT's WebGPU EP runs on our device, with the adapter's real limits.
          deps.ort.env.webgpu.device = g.device as never;
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

  async function getEngine(): Promise<FluxEngine> {
    if (!engine) {
      const target = deps.target ?? 'webgpu';
      const runtime: RuntimeEnv =
        target === 'webgpu'
          ? { ort: deps.ort, target, gpuFeatures: new Set((await gpu()).report.features), gpuReadCounter: gpuReadbackCount }
          : { ort: deps.ort, target };
      // The JSPI build reads Blob external data on demand; the others read it whole (external-data-staging.ts).
      if (deps.ortBuild !== 'jspi') runtime.externalDataStaging = new ExternalDataStaging();
      engine = new FluxEngine({ runtime, jpeg: deps.jpeg ?? canvasJpegEncoder });
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

  async function decideFor(packId: string): Promise<CapacityDecision> {
    const key = `${packId}:${gpuMemoryLimitBytes ?? 'none'}`;
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
      const allocatable = await guarded(() => measureAllocatable(g.device, gpuMemoryLimitBytes === null ? target : Math.min(target, gpuMemoryLimitBytes)));
      decision = decideCapacity(needs, { features: g.report.features, limits: g.report.limits, allocatableBytes: allocatable, userLimitBytes: gpuMemoryLimitBytes });
    }
    capacityCache.set(key, decision);
    return decision;
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

  return {
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
      runInstallCall((signal) => installPack(baseUrl, { ...storeOpt, signal, ...(onProgress ? { onProgress } : {}), ...(opts?.replace ? { replace: true } : {}) })),

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
        const result = await guarded(() => e.generate(input, { signal: controller.signal, ...(onProgress ? { onProgress } : {}) }));
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
  };
}
