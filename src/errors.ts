/**
 * One error class for every failure a caller can act on. `code` is machine-readable and stable;
 * `field` names the offending input (fal-style dotted path, e.g. `image_size.width`) when there is one;
 * the message says what was wrong and what is allowed.
 *
 * Errors cross the worker boundary with their code and fields intact (see workers/error-transfer.ts),
 * unlike Comlink's default handler, which keeps only name/message/stack.
 *
 * For code written against `@fal-ai/client`, a FluxError also reads like fal's errors (docs/fal-compat.md): a
 * cancelled request has `name === 'AbortError'` (as fetch and fal's client reject), and `status`, `body`,
 * `requestId` and `fieldErrors` follow fal's `ApiError`/`ValidationError` (an input refused before sending is a
 * 422 with fal's `{loc, msg, type}` field errors, exactly as fal would have answered).
 */
export type FluxErrorCode =
  | 'invalid_input' // a request field is missing, of the wrong type, or out of range
  | 'invalid_manifest' // a pack manifest does not follow docs/model-pack.md
  | 'pack_not_installed' // asked to load a pack that is not (fully) in storage
  | 'pack_file_missing' // a file the manifest lists cannot be found / fetched
  | 'pack_file_corrupt' // size or sha256 mismatch
  | 'pack_install_failed' // download or storage write failed
  | 'storage_quota' // not enough browser storage (quota) for a pack install
  | 'model_io_mismatch' // a graph's inputs/outputs don't match what the pipeline needs
  | 'webgpu_unavailable' // no navigator.gpu / no adapter
  | 'missing_gpu_feature' // e.g. an fp16 graph on an adapter without shader-f16
  | 'device_lost' // the GPU device was lost (driver reset, other tab, sleep); the client recovers
  | 'out_of_memory' // a GPU allocation failed
  | 'gpu_error' // WebGPU reported an error during the operation, so its result cannot be trusted
  | 'insufficient_capacity' // the capacity probe says this device cannot run the pack
  | 'not_loaded' // generate() before a pack is loaded
  | 'cancelled' // the caller cancelled (name 'AbortError')
  | 'timeout' // the caller's `timeout` elapsed before the request completed (it was cancelled)
  | 'busy' // a second operation while one is running
  | 'runtime_error' // anything the runtime (ORT, WebGPU) threw
  | 'safety_checker_failed' // the safety checker was asked for but could not run: no images are returned (fail closed)
  | 'local_unavailable' // the request must run locally (forced, or offline) but cannot
  | 'remote_auth' // fal or the proxy refused the key (401/403, or no FAL_KEY on the proxy)
  | 'remote_rate_limited' // fal kept answering 429 after retries
  | 'remote_unavailable' // no proxy, no network, or fal 5xx after retries
  | 'remote_error'; // any other remote failure

export interface FluxErrorOptions {
  field?: string;
  cause?: unknown;
  details?: Record<string, unknown>;
}

/** One field error as fal's 422 body lists it (`@fal-ai/client`'s ValidationErrorInfo). */
export interface FieldErrorInfo {
  loc: (string | number)[];
  msg: string;
  type: string;
}

export class FluxError extends Error {
  /** 'AbortError' for a cancelled request (what fetch and `@fal-ai/client` reject with), else 'FluxError'. */
  override readonly name: 'FluxError' | 'AbortError';
  readonly code: FluxErrorCode;
  readonly field?: string;
  readonly details?: Record<string, unknown>;

  constructor(code: FluxErrorCode, message: string, options: FluxErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = code === 'cancelled' ? 'AbortError' : 'FluxError';
    this.code = code;
    if (options.field !== undefined) this.field = options.field;
    if (options.details !== undefined) this.details = options.details;
  }

  /** fal's HTTP status for the failure (`ApiError.status`): fal's own, or 422 for input refused before sending. */
  get status(): number | undefined {
    const s = this.details?.status;
    if (typeof s === 'number') return s;
    return this.code === 'invalid_input' ? 422 : undefined;
  }

  /** fal's field errors (`ValidationError.fieldErrors`): fal's own, or the one field this error names. */
  get fieldErrors(): FieldErrorInfo[] {
    const fromFal = this.details?.fieldErrors;
    if (Array.isArray(fromFal)) return fromFal as FieldErrorInfo[];
    if (this.code !== 'invalid_input' || this.field === undefined) return [];
    const prefix = `${this.field}: `;
    const msg = this.message.startsWith(prefix) ? this.message.slice(prefix.length) : this.message;
    return [{ loc: ['body', ...this.field.split('.')], msg, type: 'value_error' }];
  }

  /** The response body (`ApiError.body`): fal's, or fal's 422 shape for input refused before sending. */
  get body(): unknown {
    if (this.details?.body !== undefined) return this.details.body;
    const detail = this.fieldErrors;
    return detail.length > 0 ? { detail } : undefined;
  }

  /** The request this failure belongs to (`ApiError.requestId`), when one was created. */
  get requestId(): string | undefined {
    const id = this.details?.requestId;
    return typeof id === 'string' ? id : undefined;
  }

  /** Plain-object form for postMessage / JSON. */
  toJSON(): SerializedFluxError {
    return {
      name: 'FluxError',
      code: this.code,
      message: this.message,
      ...(this.field !== undefined ? { field: this.field } : {}),
      ...(this.details !== undefined ? { details: this.details } : {}),
      ...(this.stack !== undefined ? { stack: this.stack } : {}),
    };
  }

  static fromJSON(s: SerializedFluxError): FluxError {
    const e = new FluxError(s.code, s.message, {
      ...(s.field !== undefined ? { field: s.field } : {}),
      ...(s.details !== undefined ? { details: s.details } : {}),
    });
    if (s.stack) e.stack = s.stack;
    return e;
  }
}

export interface SerializedFluxError {
  name: 'FluxError';
  code: FluxErrorCode;
  message: string;
  field?: string;
  details?: Record<string, unknown>;
  stack?: string;
}

export function isFluxError(e: unknown): e is FluxError {
  return e instanceof FluxError;
}

/** Shorthand for input validation failures. */
export function invalidInput(field: string, message: string): FluxError {
  return new FluxError('invalid_input', `${field}: ${message}`, { field });
}

/** Wrap anything thrown by a lower layer so callers always receive a FluxError. */
export function toFluxError(e: unknown, code: FluxErrorCode = 'runtime_error'): FluxError {
  if (e instanceof FluxError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new FluxError(code, message, { cause: e });
}

/** Thrown at step boundaries when the caller cancelled. */
export function cancelledError(): FluxError {
  return new FluxError('cancelled', 'Generation was cancelled.');
}
