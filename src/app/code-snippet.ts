/**
 * "Copy as code": the fal-compatible call for the current settings, runnable as is with flux-webgpu (or, with the
 * import swapped, with @fal-ai/client). Input images are left as a placeholder: a picked file is not a URL.
 */
import type { FluxEndpointId, FluxRemoteInput } from '../client/request-vocabulary.js';

export function falSnippet(endpoint: FluxEndpointId, input: FluxRemoteInput): string {
  const shown: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) {
    if (v === undefined) continue;
    shown[k] = k === 'image_url' && typeof v !== 'string' ? '<an image URL or data: URI>' : v;
  }
  const body = JSON.stringify(shown, null, 2).replace(/\n/g, '\n  ');
  return [
    "import { fal } from 'flux-webgpu'; // or: import { fal } from '@fal-ai/client';",
    '',
    `const result = await fal.subscribe(${JSON.stringify(endpoint)}, {`,
    `  input: ${body},`,
    '  logs: true,',
    '  onQueueUpdate: (update) => {',
    "    if (update.status === 'IN_PROGRESS') update.logs.map((log) => log.message).forEach(console.log);",
    '  },',
    '});',
    'console.log(result.data.images[0].url, result.data.seed);',
    '',
  ].join('\n');
}
