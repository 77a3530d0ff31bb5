/**
 * Watches the WebGPU device for the failures WebGPU reports out of band: device loss (driver reset, GPU removed,
 * the browser reclaiming memory) and uncaptured errors (out-of-memory on allocation, validation errors). An
 * operation during which any of these happened cannot be trusted, so it fails with a specific FluxError; the
 * client then replaces the worker (a new device and new sessions) and reloads the pack from IndexedDB.
 */
import { FluxError } from '../errors.js';

export type GpuFailureKind = 'out-of-memory' | 'validation' | 'internal' | 'lost';

export interface GpuFailure {
  kind: GpuFailureKind;
  message: string;
}

export class GpuHealth {
  private lostInfo: GpuFailure | null = null;
  private readonly failures: GpuFailure[] = [];
  private injected: GpuFailureKind | null = null;

  constructor(device: GPUDevice) {
    void device.lost.then((info) => {
      this.lostInfo = { kind: 'lost', message: `${info.reason}: ${info.message || 'no details'}` };
    });
    device.addEventListener('uncapturederror', (ev) => {
      const error = (ev as GPUUncapturedErrorEvent).error;
      const kind: GpuFailureKind =
        typeof GPUOutOfMemoryError !== 'undefined' && error instanceof GPUOutOfMemoryError
          ? 'out-of-memory'
          : typeof GPUValidationError !== 'undefined' && error instanceof GPUValidationError
            ? 'validation'
            : 'internal';
      this.failures.push({ kind, message: error.message });
    });
  }

  get lost(): GpuFailure | null {
    return this.lostInfo;
  }

  /** Position in the failure log; failures after it belong to the operation that took it. */
  mark(): number {
    if (this.injected) {
      this.failures.push({ kind: this.injected, message: 'injected for testing' });
      this.injected = null;
      return this.failures.length - 1;
    }
    return this.failures.length;
  }

  /** Make the next operation see a failure of this kind (tests only). */
  injectForTesting(kind: Exclude<GpuFailureKind, 'lost'>): void {
    this.injected = kind;
  }

  /** Throw if the device is gone (nothing can run on it any more). */
  assertUsable(): void {
    const lost = this.lostInfo;
    if (lost) throw lostError(lost);
  }

  /**
   * The error an operation that started at `mark` should report: device loss first, then a GPU failure logged
   * during it, else `cause` itself (or null when there was none).
   */
  failureSince(mark: number, cause?: unknown): FluxError | null {
    if (this.lostInfo) return lostError(this.lostInfo, cause);
    const f = this.failures.slice(mark);
    const oom = f.find((x) => x.kind === 'out-of-memory');
    if (oom) {
      return new FluxError('out_of_memory', `The GPU ran out of memory (${oom.message}). Try a smaller image size or fewer images, or close other GPU-heavy tabs.`, {
        cause,
        details: { failures: f },
      });
    }
    if (f.length) {
      return new FluxError('gpu_error', `WebGPU reported an error during this operation (${f[0]!.kind}: ${f[0]!.message}); its result was discarded.`, {
        cause,
        details: { failures: f },
      });
    }
    return null;
  }
}

function lostError(lost: GpuFailure, cause?: unknown): FluxError {
  return new FluxError('device_lost', `The GPU device was lost (${lost.message}). The model will be reloaded from this browser's storage.`, {
    ...(cause !== undefined ? { cause } : {}),
  });
}
