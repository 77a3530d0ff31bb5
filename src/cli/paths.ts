/**
 * Checks the CLI runs on its output paths before loading a model, so that a typo in --out fails in a second with
 * a clear message instead of after the whole generation (or with a stack trace).
 */
import { closeSync, openSync, statSync, unlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { invalidInput } from '../errors.js';

/** The nearest existing path at or above `path`. */
function nearestExisting(path: string): { path: string; isDir: boolean } {
  let p = resolve(path);
  for (;;) {
    try {
      return { path: p, isDir: statSync(p).isDirectory() };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
      const up = dirname(p);
      if (up === p) return { path: p, isDir: true };
      p = up;
    }
  }
}

/** Create and remove a file in `dir`: the only reliable writability test (root, read-only mounts, ACLs). */
function probeDir(dir: string): string | undefined {
  const probe = join(dir, `.flux-write-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    closeSync(openSync(probe, 'wx'));
    unlinkSync(probe);
    return undefined;
  } catch (e) {
    return `${dir} is not writable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
}

/** Throw unless a file can be written at `path` (its missing parent folders can be created). */
export function checkWritableFile(path: string, flag: string): void {
  const fail = (why: string) => invalidInput(flag, `cannot write ${path}: ${why}`);
  let existing: ReturnType<typeof statSync> | undefined;
  try {
    existing = statSync(path);
  } catch {
    existing = undefined;
  }
  if (existing?.isDirectory()) throw fail('it is a folder');
  if (existing) {
    try {
      closeSync(openSync(path, 'r+')); // opened for writing, not truncated
      return;
    } catch (e) {
      throw fail(`${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  const at = nearestExisting(dirname(path));
  if (!at.isDir) throw fail(`${at.path} is a file, not a folder`);
  const problem = probeDir(at.path);
  if (problem) throw fail(problem);
}

/** Throw unless `path` is, or can be created as, a folder files can be written into. */
export function checkWritableFolder(path: string, flag: string): void {
  const at = nearestExisting(path);
  if (!at.isDir) throw invalidInput(flag, at.path === resolve(path) ? `cannot write into ${path}: it is a file, not a folder` : `cannot write into ${path}: ${at.path} is a file, not a folder`);
  const problem = probeDir(at.path);
  if (problem) throw invalidInput(flag, `cannot write into ${path}: ${problem}`);
}
