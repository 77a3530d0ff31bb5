import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkFalTarget, FLUX_SUBMIT_PATHS } from '../../../server/fal-proxy.js';
import { TokenBuckets } from '../../../server/rate-limit.js';

describe('checkFalTarget', () => {
  it('classifies every call @fal-ai/client makes for FLUX', () => {
    const ok = (method: string, url: string) => {
      const r = checkFalTarget(method, url);
      if (!r.ok) throw new Error(`${method} ${url}: ${r.detail}`);
      return `${r.kind} ${r.host}${r.pathAndQuery}`;
    };
    for (const p of FLUX_SUBMIT_PATHS) expect(ok('POST', `https://queue.fal.run${p}`)).toBe(`submit queue.fal.run${p}`);
    expect(ok('POST', 'https://fal.run/fal-ai/flux/dev')).toBe('submit fal.run/fal-ai/flux/dev');
    expect(ok('GET', 'https://queue.fal.run/fal-ai/flux/requests/abc-123/status?logs=1')).toBe('status queue.fal.run/fal-ai/flux/requests/abc-123/status?logs=1');
    expect(ok('GET', 'https://queue.fal.run/fal-ai/flux/requests/abc-123/status')).toBe('status queue.fal.run/fal-ai/flux/requests/abc-123/status');
    expect(ok('GET', 'https://queue.fal.run/fal-ai/flux/requests/abc/status/stream?logs=0')).toBe('status_stream queue.fal.run/fal-ai/flux/requests/abc/status/stream?logs=0');
    expect(ok('GET', 'https://queue.fal.run/fal-ai/flux/requests/abc')).toBe('result queue.fal.run/fal-ai/flux/requests/abc');
    expect(ok('PUT', 'https://queue.fal.run/fal-ai/flux/requests/abc/cancel')).toBe('cancel queue.fal.run/fal-ai/flux/requests/abc/cancel');
    expect(ok('POST', 'https://rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3')).toBe('upload_initiate rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3');
    // An empty `?` is harmless and dropped from what is forwarded.
    expect(ok('GET', 'https://queue.fal.run/fal-ai/flux/requests/abc?')).toBe('result queue.fal.run/fal-ai/flux/requests/abc');
  });

  it('refuses missing, repeated and oversized headers without throwing', () => {
    expect(checkFalTarget('GET', undefined)).toMatchObject({ ok: false, status: 400 });
    expect(checkFalTarget('GET', '')).toMatchObject({ ok: false, status: 400 });
    expect(checkFalTarget('GET', ['https://queue.fal.run/fal-ai/flux/requests/a', 'https://queue.fal.run/fal-ai/flux/requests/b'])).toMatchObject({ ok: false, status: 400 });
    expect(checkFalTarget('GET', `https://queue.fal.run/fal-ai/flux/requests/a?${'x'.repeat(3000)}`)).toMatchObject({ ok: false, status: 400 });
    for (const weird of ['\u0000', 'https://queue.fal.run/\u2028', 'https://queue.fal.run/fal-ai/flux/dev\t', 'https://ｑueue.fal.run/fal-ai/flux/dev', 'https://xn--queue-fal-run/fal-ai/flux/dev']) {
      expect(checkFalTarget('POST', weird).ok, weird).toBe(false);
    }
  });

  it('explains the trailing-dot refusal', () => {
    const r = checkFalTarget('POST', 'https://queue.fal.run./fal-ai/flux/dev');
    expect(r).toMatchObject({ ok: false, status: 403 });
    expect(!r.ok && r.detail).toContain('trailing dot');
  });
});

describe('TokenBuckets', () => {
  it('allows the burst, then refills at the rate', () => {
    let now = 0;
    const b = new TokenBuckets({ ratePerSecond: 2, burst: 3 }, () => now);
    expect([b.take('a'), b.take('a'), b.take('a')]).toEqual([0, 0, 0]);
    expect(b.take('a')).toBeCloseTo(0.5);
    expect(b.take('b')).toBe(0);
    now = 500;
    expect(b.take('a')).toBe(0);
    expect(b.take('a')).toBeCloseTo(0.5);
    now = 100_000;
    expect([b.take('a'), b.take('a'), b.take('a'), b.take('a') > 0]).toEqual([0, 0, 0, true]);
  });

  it('forgets idle clients and stays bounded', () => {
    let now = 0;
    const b = new TokenBuckets({ ratePerSecond: 1, burst: 1 }, () => now);
    for (let i = 0; i < 1000; i++) b.take(`c${i}`);
    now = 60_000;
    b.take('new');
    expect(b.size).toBe(1);
    for (let i = 0; i < 60_000; i++) b.take(`d${i}`);
    expect(b.size).toBeLessThanOrEqual(50_000);
  });
});

describe('key isolation', () => {
  const repo = join(import.meta.dirname, '../../..');
  async function files(dir: string): Promise<string[]> {
    const out: string[] = [];
    for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
      if (e.isFile() && /\.(ts|tsx|js|mjs|html)$/.test(e.name)) out.push(join(e.parentPath, e.name));
    }
    return out;
  }
  /** Reading the key: process.env / import.meta.env access naming FAL_KEY*, or destructuring it from an env. */
  const READS_KEY = [/(process\.env|import\.meta\.env)\s*(\.\s*|\[\s*['"`])FAL_KEY/, /\{[^}]*\bFAL_KEY\w*[^}]*\}\s*=\s*(process\.env|import\.meta\.env)/, /import\.meta\.env\.\w*FAL/];

  it('nothing outside server/ reads FAL_KEY (browser code, workers, the Vite config)', async () => {
    const offenders: string[] = [];
    for (const dir of ['src', 'workers']) {
      for (const f of await files(join(repo, dir)).catch(() => [] as string[])) {
        const text = await readFile(f, 'utf8');
        if (READS_KEY.some((re) => re.test(text))) offenders.push(relative(repo, f));
      }
    }
    const viteConfig = await readFile(join(repo, 'vite.config.ts'), 'utf8');
    if (/FAL_KEY/.test(viteConfig)) offenders.push('vite.config.ts');
    expect(offenders).toEqual([]);
  });

  it('in server/, only the proxy and the CLI entry read it', async () => {
    const readers: string[] = [];
    for (const f of await files(join(repo, 'server'))) {
      const text = await readFile(f, 'utf8');
      if (READS_KEY.some((re) => re.test(text))) readers.push(relative(repo, f));
    }
    expect(readers.sort()).toEqual(['server/fal-proxy.ts', 'server/main.ts']);
  });
});
