/** The pure parts of the generation UI: progress fractions, the copy-as-code snippet, prompt recall. */
import { describe, expect, it } from 'vitest';
import { falSnippet } from '../../../src/app/code-snippet.js';
import { MAX_RECALLED_PROMPTS, PromptRecall, type StringStore } from '../../../src/app/prompt-recall.js';
import { progressFraction } from '../../../src/app/run-progress.js';

describe('progressFraction', () => {
  const local = (stage: string, step?: number) => ({ target: 'local' as const, stage, totalSteps: 4, elapsedMs: 0, ...(step !== undefined ? { step } : {}) }) as never;
  it('moves forward through a local run and ends below 1 until the result is in', () => {
    const seq = [local('encode_text'), local('denoise', 1), local('denoise', 2), local('denoise', 3), local('denoise', 4), local('decode'), local('encode_image')].map(progressFraction);
    expect(seq.every((v, i) => v !== null && (i === 0 || v > seq[i - 1]!))).toBe(true);
    expect(seq.at(-1)).toBeLessThan(1);
    expect(progressFraction(local('denoise', 2))).toBeCloseTo(0.05 + 0.85 / 2);
  });
  it('is indeterminate on fal until completed', () => {
    expect(progressFraction({ target: 'remote', stage: 'queued', requestId: 'r', queuePosition: 3, elapsedMs: 0 })).toBeNull();
    expect(progressFraction({ target: 'remote', stage: 'in_progress', requestId: 'r', logs: [], elapsedMs: 0 })).toBeNull();
    expect(progressFraction({ target: 'remote', stage: 'completed', requestId: 'r', elapsedMs: 0 })).toBeGreaterThan(0.9);
  });
});

describe('falSnippet', () => {
  it('is fal’s subscribe call with the settings as input, valid JavaScript', async () => {
    const code = falSnippet('fal-ai/flux/schnell', { prompt: 'a "fox"', seed: 7, image_size: { width: 128, height: 128 }, num_inference_steps: 2, output_format: 'png' });
    expect(code).toContain("await fal.subscribe(\"fal-ai/flux/schnell\", {");
    expect(code).toContain('"prompt": "a \\"fox\\""');
    // Parse it (as an async function body, imports removed): a syntax error would throw here.
    const body = code.replace(/^import .*$/m, '');
    const AsyncFunction = Object.getPrototypeOf(async () => undefined).constructor as new (...a: string[]) => (...a: unknown[]) => Promise<unknown>;
    const calls: unknown[][] = [];
    const fal = { subscribe: async (...a: unknown[]) => (calls.push(a), { data: { images: [{ url: 'u' }], seed: 7 } }) };
    await new AsyncFunction('fal', 'console', body)(fal, { log: () => undefined });
    expect(calls[0]![0]).toBe('fal-ai/flux/schnell');
    expect((calls[0]![1] as { input: unknown }).input).toEqual({ prompt: 'a "fox"', seed: 7, image_size: { width: 128, height: 128 }, num_inference_steps: 2, output_format: 'png' });
  });
  it('replaces a picked file with a placeholder', () => {
    expect(falSnippet('fal-ai/flux/schnell/redux', { image_url: new Blob([new Uint8Array(1)], { type: 'image/png' }) })).toContain('"image_url": "<an image URL or data: URI>"');
  });
});

describe('PromptRecall', () => {
  const memory = (): StringStore => {
    const m = new Map<string, string>();
    return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => void m.set(k, v) };
  };
  it('keeps the newest first without duplicates, bounded', () => {
    const r = new PromptRecall(memory());
    for (let i = 0; i < MAX_RECALLED_PROMPTS + 5; i++) r.add(`p${i}`);
    r.add('p3');
    r.add('  ');
    const list = r.list();
    expect(list).toHaveLength(MAX_RECALLED_PROMPTS);
    expect(list.slice(0, 2)).toEqual(['p3', `p${MAX_RECALLED_PROMPTS + 4}`]);
    expect(new Set(list).size).toBe(list.length);
  });
  it('steps older and newer like a shell history, stopping at either end', () => {
    const r = new PromptRecall(memory());
    ['a', 'b', 'c'].forEach((p) => r.add(p));
    expect([r.step(1), r.step(1), r.step(1), r.step(1)]).toEqual(['c', 'b', 'a', null]);
    expect([r.step(-1), r.step(-1), r.step(-1)]).toEqual(['b', 'c', null]);
  });
  it('survives damaged or blocked storage', () => {
    const store = memory();
    store.setItem('flux-webgpu:prompts', '{not json');
    expect(new PromptRecall(store).list()).toEqual([]);
    const blocked = new PromptRecall({ getItem: () => null, setItem: () => { throw new Error('QuotaExceededError'); } });
    expect(() => blocked.add('x')).not.toThrow();
    expect(new PromptRecall(null).list()).toEqual([]);
  });
});
