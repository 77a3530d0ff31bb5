/** Fault injection: outcomes queued per request kind, consumed in order (`times` each). */
import { DEFAULT_CONFIG, OUTCOME_TARGETS, type FakeFalConfig, type Outcome, type OutcomeTarget } from './types.js';

export class OutcomeQueue {
  private readonly pending: { outcome: Outcome; left: number }[] = [];

  push(outcome: Outcome): void {
    this.pending.push({ outcome, left: outcome.times ?? 1 });
  }

  /** Takes the next outcome for `on`, if any. */
  take(on: OutcomeTarget): Outcome | undefined {
    const i = this.pending.findIndex((p) => p.outcome.on === on);
    if (i < 0) return undefined;
    const entry = this.pending[i]!;
    if (--entry.left <= 0) this.pending.splice(i, 1);
    return entry.outcome;
  }

  get size(): number {
    return this.pending.reduce((n, p) => n + p.left, 0);
  }

  clear(): void {
    this.pending.length = 0;
  }
}

/** Checks an outcome from the control route; throws a message for a 400 otherwise. */
export function parseOutcome(value: unknown): Outcome {
  const o = asObject(value, 'outcome');
  allowKeys(o, ['on', 'status', 'body', 'headers', 'contentType', 'times', 'hold', 'drop', 'delayMs']);
  if (!OUTCOME_TARGETS.includes(o.on as OutcomeTarget)) throw new Error(`"on" must be one of ${OUTCOME_TARGETS.join(', ')}`);
  const out: Outcome = { on: o.on as OutcomeTarget };
  if (o.status !== undefined) {
    if (!Number.isInteger(o.status) || (o.status as number) < 200 || (o.status as number) > 599) throw new Error('"status" must be an HTTP status 200-599');
    out.status = o.status as number;
  }
  if (o.body !== undefined) out.body = o.body;
  if (o.headers !== undefined) {
    const h = asObject(o.headers, 'headers');
    if (!Object.values(h).every((v) => typeof v === 'string')) throw new Error('"headers" values must be strings');
    out.headers = h as Record<string, string>;
  }
  if (o.contentType !== undefined) {
    if (typeof o.contentType !== 'string') throw new Error('"contentType" must be a string');
    out.contentType = o.contentType;
  }
  if (o.times !== undefined) out.times = positiveInt(o.times, 'times', 1);
  if (o.delayMs !== undefined) out.delayMs = positiveInt(o.delayMs, 'delayMs', 0);
  if (o.hold !== undefined) {
    if (o.hold !== true || out.on !== 'submit') throw new Error('"hold" must be true and only applies to on:"submit"');
    out.hold = true;
  }
  if (o.drop !== undefined) {
    if (o.drop !== true || out.on !== 'stream') throw new Error('"drop" must be true and only applies to on:"stream"');
    out.drop = true;
  }
  if (out.status === undefined && !out.hold && !out.drop && out.delayMs === undefined) {
    throw new Error('an outcome needs "status" (a canned response) or one of "hold", "drop", "delayMs"');
  }
  return out;
}

/** Checks a partial config from the control route. */
export function parseConfig(value: unknown): Partial<FakeFalConfig> {
  const o = asObject(value, 'config');
  allowKeys(o, Object.keys(DEFAULT_CONFIG));
  const out: Partial<FakeFalConfig> = {};
  if (o.queuePolls !== undefined) out.queuePolls = positiveInt(o.queuePolls, 'queuePolls', 0);
  if (o.progressPolls !== undefined) out.progressPolls = positiveInt(o.progressPolls, 'progressPolls', 0);
  if (o.streamIntervalMs !== undefined) out.streamIntervalMs = positiveInt(o.streamIntervalMs, 'streamIntervalMs', 1);
  for (const key of ['hold', 'dropStream'] as const) {
    if (o[key] === undefined) continue;
    if (typeof o[key] !== 'boolean') throw new Error(`"${key}" must be a boolean`);
    out[key] = o[key] as boolean;
  }
  return out;
}

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${what} must be a JSON object`);
  return value as Record<string, unknown>;
}

function allowKeys(o: Record<string, unknown>, keys: string[]): void {
  const extra = Object.keys(o).filter((k) => !keys.includes(k));
  if (extra.length > 0) throw new Error(`unknown field(s): ${extra.join(', ')}`);
}

function positiveInt(value: unknown, name: string, min: number): number {
  if (!Number.isInteger(value) || (value as number) < min) throw new Error(`"${name}" must be an integer >= ${min}`);
  return value as number;
}
