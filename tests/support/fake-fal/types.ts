/** Public types of the fake fal.ai upstream (see docs/fal-protocol.md §6 for the behaviour it imitates). */

export type QueuePhase = 'IN_QUEUE' | 'IN_PROGRESS' | 'COMPLETED';

export interface RequestLog {
  message: string;
  level: 'INFO';
  source: 'USER';
  timestamp: string;
}

/** Knobs for how new jobs progress; `POST /__fake/configure` merges a partial of this. */
export interface FakeFalConfig {
  /** Status polls (or stream ticks) a job spends IN_QUEUE; queue_position counts down to 0 over them. */
  queuePolls: number;
  /** Status polls (or stream ticks) a job spends IN_PROGRESS, revealing "step k/N" logs. */
  progressPolls: number;
  /** New jobs stay IN_QUEUE (position > 0) until cancelled or released. */
  hold: boolean;
  /** Time between SSE ticks; each tick advances the job like one status poll. */
  streamIntervalMs: number;
  /** Cut every status stream abruptly after its first IN_PROGRESS event (before COMPLETED in any case). */
  dropStream: boolean;
}

export const DEFAULT_CONFIG: Readonly<FakeFalConfig> = {
  queuePolls: 2,
  progressPolls: 2,
  hold: false,
  streamIntervalMs: 50,
  dropStream: false,
};

/** Which kind of request an injected outcome applies to. `run` is the fal.run sync host, `upload` the storage initiate. */
export type OutcomeTarget = 'submit' | 'status' | 'result' | 'cancel' | 'stream' | 'run' | 'upload';
export const OUTCOME_TARGETS: readonly OutcomeTarget[] = ['submit', 'status', 'result', 'cancel', 'stream', 'run', 'upload'];

/**
 * One injected outcome, consumed by the next `times` (default 1) matching requests.
 * With `status` the request gets this canned response instead of the normal one (the job is not touched).
 * Without it, the modifiers apply to normal handling: `hold` (submit only) holds the new job,
 * `drop` (stream only) cuts the stream, `delayMs` delays the response.
 */
export interface Outcome {
  on: OutcomeTarget;
  status?: number;
  /** JSON body (default `{"detail": <status text>}`), or the raw text when `contentType` is not JSON. */
  body?: unknown;
  headers?: Record<string, string>;
  /** Default `application/json`. */
  contentType?: string;
  times?: number;
  hold?: boolean;
  drop?: boolean;
  delayMs?: number;
}

export interface RecordedRequest {
  method: string;
  /** The `x-fal-test-host` header as received (null when absent, e.g. for /files and /__upload). */
  host: string | null;
  path: string;
  query: Record<string, string>;
  /** Lower-cased names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** UTF-8 text of the body ("" when none; `[<n> bytes]` for uploads). */
  body: string;
  /** Date.now() when the request arrived. */
  time: number;
  /** The status the fake answered with; null until it answered (or when the connection died first). */
  status: number | null;
}

export interface JobView {
  id: string;
  /** Full endpoint id it was submitted to, e.g. `fal-ai/flux/dev`. */
  endpoint: string;
  status: QueuePhase;
  /** Only while IN_QUEUE. */
  queuePosition: number | null;
  held: boolean;
  cancelled: boolean;
  /** Status polls and stream ticks seen (both advance the job). */
  statusPolls: number;
  /** `x-fal-queue-priority` as submitted (null when absent). */
  priority: string | null;
  /** `?fal_webhook=` as submitted (recorded, never called). */
  webhook: string | null;
  /** Parsed JSON input (undefined when the body was not JSON). */
  input: unknown;
  createdAt: number;
}
