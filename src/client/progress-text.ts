/** One line of text per progress event, for status lines and for the log lines of local "queue" updates. */
import type { GenerateProgressEvent } from '../engine/flux-engine.js';
import type { RemoteProgressEvent } from '../remote/fal-remote.js';

/** "850 ms", "3.25 s", "12.5 s". */
export function formatMs(ms: number): string {
  return ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

export function describeProgress(e: GenerateProgressEvent): string {
  const t = formatMs(e.elapsedMs);
  switch (e.stage) {
    case 'load':
      return `Loading ${e.component ?? 'model'}… ${t}`;
    case 'encode_text':
      return `Encoding text… ${t}`;
    case 'denoise':
      return `Step ${e.step} of ${e.totalSteps} — ${t}`;
    case 'decode':
      return `Decoding… ${t}`;
    case 'postprocess':
    case 'encode_image':
      return `Finishing… ${t}`;
  }
}

export function describeRemoteProgress(e: RemoteProgressEvent): string {
  const t = formatMs(e.elapsedMs);
  switch (e.stage) {
    case 'submitted':
      return `Sent to fal… ${t}`;
    case 'queued':
      return e.queuePosition > 0 ? `In fal's queue, position ${e.queuePosition} — ${t}` : `In fal's queue, next — ${t}`;
    case 'in_progress':
      return `Running on fal${e.logs.length ? `: ${e.logs[e.logs.length - 1]}` : '…'} ${t}`;
    case 'completed':
      return `Fetching the result from fal… ${t}`;
  }
}
