/**
 * Strict numeric flags for both CLIs. `Number()` alone accepts "0x2", "0b1", " 8", "1e3" and "" (→ 0), so a typo
 * would silently run with another value; only plain decimal numbers are taken here.
 */
import { invalidInput } from '../errors.js';

const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

export interface NumberRule {
  integer?: boolean;
  min?: number;
  max?: number;
}

function describe(rule: NumberRule): string {
  const kind = rule.integer ? 'an integer' : 'a number';
  if (rule.min !== undefined && rule.max !== undefined) return `${kind} between ${rule.min} and ${rule.max}`;
  if (rule.min !== undefined) return `${kind} ≥ ${rule.min}`;
  if (rule.max !== undefined) return `${kind} ≤ ${rule.max}`;
  return kind;
}

/** Parse a flag's value as a decimal number within `rule`; undefined stays undefined. */
export function parseNumberFlag(value: string | undefined, flag: string, rule: NumberRule = {}): number | undefined {
  if (value === undefined) return undefined;
  const n = DECIMAL.test(value) ? Number(value) : NaN;
  const ok = Number.isFinite(n) && (!rule.integer || Number.isSafeInteger(n)) && (rule.min === undefined || n >= rule.min) && (rule.max === undefined || n <= rule.max);
  if (!ok) throw invalidInput(flag, `must be ${describe(rule)} (plain decimal), got ${JSON.stringify(value)}`);
  return n;
}
