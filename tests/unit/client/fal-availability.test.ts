/**
 * fal's availability in routing (#11): no key on the proxy, no proxy (404) or no answer → fal is not a candidate
 * under Auto, with the reason; the probe is the proxy's real status route.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createAppServer } from '../../../server/app.js';
import { createFluxClient } from '../../../src/client/flux-api.js';
import { decideRoute, type LocalAvailability, type PreferenceStore, type RoutePreference } from '../../../src/client/routing.js';
import { isFluxError, type FluxError } from '../../../src/errors.js';
import type { CapacityDecision } from '../../../src/runtime/capacity.js';

const capable = { canRunLocally: true, reason: 'fits', plan: 'all-resident', checks: [] } as unknown as CapacityDecision;
const ready: LocalAvailability = { webgpuError: null, packId: 'flux1-schnell', capacity: capable };
const nothingInstalled: LocalAvailability = { webgpuError: null, packId: null, capacity: null };
const noKey = { available: false as const, reason: 'the fal proxy has no FAL_KEY configured on the server' };

function fails(f: () => unknown): FluxError {
  try {
    f();
  } catch (e) {
    if (isFluxError(e)) return e;
    throw e;
  }
  throw new Error('expected a FluxError');
}

describe('decideRoute with fal unavailable', () => {
  it('keeps a capable device local, and leaves fal out of Auto when the device cannot run', () => {
    expect(decideRoute('fal-ai/flux/schnell', 'auto', ready, noKey)).toMatchObject({ target: 'local' });
    const e = fails(() => decideRoute('fal-ai/flux/schnell', 'auto', nothingInstalled, noKey));
    expect(e.code).toBe('remote_unavailable');
    expect(e.message).toBe('No FLUX.1 [schnell] model is installed in this browser, and fal is unavailable: the fal proxy has no FAL_KEY configured on the server.');
    expect(e.details).toMatchObject({ falUnavailable: noKey.reason });
  });

  it('refuses fal-only models and a forced remote with the reason, and still honours forced local', () => {
    expect(fails(() => decideRoute('fal-ai/flux/dev', 'auto', null, noKey)).message).toBe("FLUX.1 [dev] runs only on fal's servers, and fal is unavailable: the fal proxy has no FAL_KEY configured on the server.");
    expect(fails(() => decideRoute('fal-ai/flux/schnell', 'remote', ready, noKey)).message).toMatch(/^Remote was chosen, and fal is unavailable: /);
    expect(decideRoute('fal-ai/flux/schnell', 'local', nothingInstalled, noKey)).toMatchObject({ target: 'local' });
  });

  it('routes as before when fal is available', () => {
    expect(decideRoute('fal-ai/flux/schnell', 'auto', nothingInstalled, { available: true })).toMatchObject({ target: 'remote', reason: expect.stringMatching(/^Sent to fal because no FLUX.1 \[schnell\] model is installed/) });
  });
});

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r())))));
});
const memory = (v: RoutePreference): PreferenceStore => ({ get: () => v, set: () => {} });

async function listen(server: Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('FluxApiClient.route probes the proxy', () => {
  it('with a key: fal-only models go to fal', async () => {
    const base = await listen(await createAppServer({ proxy: { key: () => 'probe-key', log: false, rateLimit: false } }));
    const api = await createFluxClient({ local: false, proxyUrl: `${base}/api/fal/proxy`, preferenceStore: memory('auto') });
    expect(await api.falAvailability()).toEqual({ available: true });
    expect(await api.route('fal-ai/flux/dev')).toMatchObject({ target: 'remote' });
  });

  it('without a key, with no proxy (404), and with nothing listening: unavailable, each with its reason', async () => {
    const saved = process.env.FAL_KEY;
    delete process.env.FAL_KEY;
    try {
      const keyless = await listen(await createAppServer({ proxy: { key: () => undefined, log: false, rateLimit: false } }));
      const api = await createFluxClient({ local: false, proxyUrl: `${keyless}/api/fal/proxy`, preferenceStore: memory('auto') });
      await expect(api.route('fal-ai/flux/dev')).rejects.toThrow(/fal is unavailable: the fal proxy has no FAL_KEY configured on the server\.$/);
    } finally {
      if (saved !== undefined) process.env.FAL_KEY = saved;
    }
    const plain = await listen(createServer((_req, res) => void res.writeHead(404).end('Not Found')));
    const api404 = await createFluxClient({ local: false, proxyUrl: `${plain}/api/fal/proxy`, preferenceStore: memory('auto') });
    expect(await api404.falAvailability()).toEqual({ available: false, reason: `there is no fal proxy at ${plain}/api/fal/proxy (HTTP 404)` });
    const spa = await listen(createServer((_req, res) => void res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html>')));
    const apiSpa = await createFluxClient({ local: false, proxyUrl: `${spa}/api/fal/proxy`, preferenceStore: memory('auto') });
    expect((await apiSpa.falAvailability()).available).toBe(false);
    const closed = plain.replace(/:\d+$/, ':9'); // discard port: nothing answers
    const apiDown = await createFluxClient({ local: false, proxyUrl: `${closed}/api/fal/proxy`, preferenceStore: memory('auto') });
    expect(await apiDown.falAvailability()).toMatchObject({ available: false, reason: expect.stringMatching(/^the fal proxy at .* cannot be reached/) });
  });
});
