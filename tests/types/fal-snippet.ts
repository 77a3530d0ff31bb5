/**
 * Type test (checked by `npm run test:types`, never run): fal's FLUX.1 [schnell] snippet from its API page, unchanged
 * but for the import, type-checks against flux-webgpu. tests/unit/client/fal-compat.test.ts runs the same calls.
 */
import { fal } from '../../src/client/flux-api.js';
import { createFluxClient } from '../../src/client/flux-api.js';

const result = await fal.subscribe('fal-ai/flux/schnell', {
  input: {
    prompt: 'Extreme close-up of a single tiger eye, direct frontal view. Detailed iris and pupil. Sharp focus on eye texture and color. Natural lighting to capture authentic eye shine and depth. The word "FLUX" is painted over it in big, white brush strokes with visible texture.',
  },
  logs: true,
  onQueueUpdate: (update) => {
    if (update.status === 'IN_PROGRESS') {
      update.logs.map((log) => log.message).forEach(console.log);
    }
  },
});
console.log(result.data);
console.log(result.requestId);

// The rest of fal's subscribe options, and run(), on a client made with options.
const client = await createFluxClient({ proxyUrl: '/api/fal/proxy' });
await client.subscribe('fal-ai/flux/dev', {
  input: { prompt: 'x', guidance_scale: 3.5 },
  mode: 'polling',
  pollInterval: 1000,
  timeout: 60_000,
  startTimeout: 30,
  priority: 'low',
  onEnqueue: (requestId: string) => console.log(requestId),
  abortSignal: new AbortController().signal,
});
await client.subscribe('fal-ai/flux/dev', { input: { prompt: 'x' }, mode: 'streaming', connectionMode: 'server' });
const run = await client.run('fal-ai/flux/schnell', { input: { prompt: 'x' } });
console.log(run.data.images[0]?.url, run.data.seed, run.data.timings.inference);

// @ts-expect-error pollInterval belongs to polling mode, as in @fal-ai/client's types.
await client.subscribe('fal-ai/flux/dev', { input: { prompt: 'x' }, mode: 'streaming', pollInterval: 5 });
