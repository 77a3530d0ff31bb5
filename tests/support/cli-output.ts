/** Capture what a CLI writes to stdout/stderr in each test (vitest spies, reset before and restored after each). */
import { afterEach, beforeEach, vi } from 'vitest';

export interface CliOutput {
  stdout: string;
  stderr: string;
}

/** Register the capture for the current file or describe block (tests may reset the text); `each` runs after the spies are set. */
export function captureCliOutput(each?: () => void): CliOutput {
  const out = { stdout: '', stderr: '' };
  beforeEach(() => {
    out.stdout = '';
    out.stderr = '';
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((out.stderr += String(s)), true));
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out.stdout += String(s)), true));
    each?.();
  });
  afterEach(() => vi.restoreAllMocks());
  return out;
}
