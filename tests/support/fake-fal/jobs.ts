/**
 * The queue job state machine. Jobs advance on status calls (and SSE ticks), never on wall time, so tests are
 * deterministic: `queuePolls` ticks IN_QUEUE (position counting down to 0), `progressPolls` ticks IN_PROGRESS
 * (revealing "step k/N" logs), then COMPLETED. A held job does not advance until released or cancelled;
 * a cancel completes the job at once (its result becomes a 499).
 */
import { randomUUID } from 'node:crypto';
import type { ModelReply } from './model.js';
import type { JobView, QueuePhase, RequestLog } from './types.js';
import type { FluxEndpoint } from './validate.js';

export interface NewJob {
  endpoint: FluxEndpoint;
  /** The original host (x-fal-test-host), used for the URLs in status bodies. */
  host: string;
  bodyText: string;
  priority: string | null;
  webhook: string | null;
  held: boolean;
  queuePolls: number;
  progressPolls: number;
  /** Steps to log while in progress (0 when the input will fail validation: the model never runs). */
  steps: number;
  /** Reported in `metrics` on completion; null when the model failed. */
  inferenceTime: number | null;
}

export interface Job extends NewJob {
  readonly id: string;
  readonly createdAt: number;
  ticks: number;
  statusPolls: number;
  cancelled: boolean;
  logs: RequestLog[];
  /** Filled by the HTTP layer on the first result call, so repeated results are identical. */
  result?: ModelReply;
}

/** A status body as fal sends it (docs/fal-protocol.md §1.4). */
export type StatusBody = Record<string, unknown> & { status: QueuePhase; request_id: string };

export class JobStore {
  private readonly jobs = new Map<string, Job>();

  create(init: NewJob): Job {
    const job: Job = { ...init, id: randomUUID(), createdAt: Date.now(), ticks: 0, statusPolls: 0, cancelled: false, logs: [] };
    this.jobs.set(job.id, job);
    return job;
  }

  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  clear(): void {
    this.jobs.clear();
  }

  /** One status poll's worth of progress. */
  advance(job: Job): void {
    job.statusPolls++;
    if (job.held || phaseOf(job) === 'COMPLETED') return;
    job.ticks++;
    revealLogs(job);
  }

  /** Queued or in progress: cancels and completes the job. Completed (or already cancelled): refuses. */
  cancel(job: Job): 'CANCELLATION_REQUESTED' | 'ALREADY_COMPLETED' {
    if (phaseOf(job) === 'COMPLETED') return 'ALREADY_COMPLETED';
    job.cancelled = true;
    job.held = false;
    return 'CANCELLATION_REQUESTED';
  }

  /** Releases one held job, or all of them; returns the ids released. */
  release(id?: string): string[] {
    const released: string[] = [];
    for (const job of this.jobs.values()) {
      if (job.held && (id === undefined || job.id === id)) {
        job.held = false;
        released.push(job.id);
      }
    }
    return released;
  }

  views(): JobView[] {
    return [...this.jobs.values()].map((job) => ({
      id: job.id,
      endpoint: job.endpoint,
      status: phaseOf(job),
      queuePosition: phaseOf(job) === 'IN_QUEUE' ? queuePosition(job) : null,
      held: job.held,
      cancelled: job.cancelled,
      statusPolls: job.statusPolls,
      priority: job.priority,
      webhook: job.webhook,
      input: parseOrUndefined(job.bodyText),
      createdAt: job.createdAt,
    }));
  }
}

export function phaseOf(job: Job): QueuePhase {
  if (job.cancelled) return 'COMPLETED';
  if (job.held || job.ticks <= job.queuePolls) return 'IN_QUEUE';
  if (job.ticks <= job.queuePolls + job.progressPolls) return 'IN_PROGRESS';
  return 'COMPLETED';
}

/** A held job never reaches the front of the queue. */
export function queuePosition(job: Job): number {
  const left = Math.max(0, job.queuePolls - job.ticks);
  return job.held ? Math.max(1, left) : left;
}

export function requestUrls(job: Job): { response_url: string; status_url: string; cancel_url: string } {
  // Owner/alias form, like fal; the client rebuilds these itself and ignores them.
  const base = `https://${job.host}/fal-ai/flux/requests/${job.id}`;
  return { response_url: base, status_url: `${base}/status`, cancel_url: `${base}/cancel` };
}

/**
 * The status body for the job's current state. `logs` is what to report: all logs for polling, only the
 * new ones for an SSE event (the client accumulates those itself), null when the caller asked for logs=0.
 */
export function statusBody(job: Job, logs: RequestLog[] | null): StatusBody {
  const phase = phaseOf(job);
  const head = { status: phase, request_id: job.id, ...requestUrls(job) };
  if (phase === 'IN_QUEUE') return { ...head, queue_position: queuePosition(job) };
  if (phase === 'IN_PROGRESS') return { ...head, logs };
  if (job.cancelled) return { ...head, logs, error: 'Request cancelled', error_type: 'client_cancelled' };
  return { ...head, logs, metrics: { inference_time: job.inferenceTime } };
}

/** Spreads the "step k/N" logs over the progress ticks; all of them are out by COMPLETED. */
function revealLogs(job: Job): void {
  const n = job.steps;
  const phase = phaseOf(job);
  let visible = 0;
  if (phase === 'COMPLETED') visible = n;
  else if (phase === 'IN_PROGRESS') {
    const tick = job.ticks - job.queuePolls;
    visible = Math.min(n, Math.max(1, Math.floor((tick * n) / (job.progressPolls + 1))));
  }
  const timestamp = new Date().toISOString();
  while (job.logs.length < visible) {
    job.logs.push({ message: `step ${job.logs.length + 1}/${n}`, level: 'INFO', source: 'USER', timestamp });
  }
}

function parseOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
