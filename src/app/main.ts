/**
 * The page. It talks only to the client API: FluxApiClient for generation (this device or fal, routed) and its
 * FluxClient (which owns the worker) for packs; history goes to IndexedDB. The parts: generate-ui (form, routing,
 * progress, share links), gallery-ui (results and history), packs-ui (model manager and device report).
 */
import { createFluxClient } from '../client/flux-api.js';
import { FluxClient, type ClientEvent } from '../client/flux-client.js';
import { LOCAL_ENDPOINT } from '../client/routing.js';
import { isFluxError } from '../errors.js';
import { canvasThumbnailer, HistoryStore } from '../history/history-store.js';
import { CATALOG } from './catalog.js';
import { app } from './context.js';
import { showError, showNotice, ui } from './dom.js';
import { initGallery } from './gallery-ui.js';
import { applySettings, generateNow, initGenerateUi, refreshRoute, useAsInput, useSeed } from './generate-ui.js';
import { initInstallUi, installFirstRunPack, loadPack, refreshDeviceReport, refreshPacks } from './packs-ui.js';
import { registerServiceWorker } from './pwa.js';

/** The client recovered from a GPU failure on its own: say what happened, in place. */
function showClientEvent(e: ClientEvent): void {
  const what = e.reason === 'device_lost' ? 'The GPU was reset' : e.reason === 'out_of_memory' ? 'The GPU ran out of memory' : 'The GPU reported an error';
  const notice = document.getElementById('notice')!;
  notice.textContent =
    e.type === 'recovering'
      ? `${what}; restarting the model from this browser's storage…`
      : `${what}; the model was reloaded${e.reason === 'out_of_memory' ? ' with a smaller memory plan' : ''} and the request retried.`;
  notice.hidden = false;
}

async function openHistory(): Promise<HistoryStore | null> {
  try {
    return await HistoryStore.open({ thumbnailer: canvasThumbnailer });
  } catch (e) {
    console.warn('history unavailable:', e);
    return null;
  }
}

/**
 * Nothing is installed: install the pack that ships with the app when FLUX.1 [schnell] would otherwise have
 * nowhere to run — fal unavailable under Auto (no key, no proxy), or this device chosen. With fal available
 * under Auto, nothing is installed behind the user's back: requests go to fal and the Models card says so.
 */
async function firstRunInstallWanted(): Promise<boolean> {
  if (app.api.routePreference === 'remote') return false;
  try {
    return (await app.api.route(LOCAL_ENDPOINT)).target === 'local';
  } catch (e) {
    return isFluxError(e) && e.code === 'remote_unavailable';
  }
}

async function start(): Promise<void> {
  registerServiceWorker({
    offlineReady: () => showNotice(ui.appNotice, 'Ready to work offline: the app is stored in this browser.'),
    needRefresh: (update) => showNotice(ui.appNotice, 'A new version is available.', [{ label: 'Reload to update', testid: 'update-app', run: () => void update() }]),
  });
  // ?ort=jspi|asyncify picks the onnxruntime-web build (default asyncify; see src/worker/load-ort.ts).
  const ort = new URLSearchParams(location.search).get('ort');
  const client = await FluxClient.create({ onEvent: showClientEvent, ...(ort === 'jspi' || ort === 'asyncify' ? { ortBuild: ort } : {}) });
  Object.assign(app, { client, api: await createFluxClient({ local: client }), history: await openHistory(), refreshRoute });
  Object.assign(globalThis, { flux: app.client, fluxApi: app.api, fluxHistory: app.history }); // handles for developers and tests
  initInstallUi();
  const { runOnLoad } = initGenerateUi();
  await initGallery({ useSeed, useAsInput, reuse: applySettings });

  const info = await client.info();
  if (info.webgpu) {
    const a = info.webgpu.adapter;
    ui.device.textContent = `WebGPU: ${a.description || a.architecture || a.vendor || 'adapter'}${a.isFallbackAdapter ? ' (software)' : ''} · shader-f16 ${info.webgpu.features.includes('shader-f16') ? 'yes' : 'no'}`;
    ui.device.dataset.adapter = a.architecture || a.vendor;
  } else {
    ui.device.textContent = `WebGPU unavailable: ${info.webgpuError ?? 'unknown reason'}`;
    ui.device.classList.add('bad');
  }
  const installed = await refreshPacks();
  const ready = installed.find((p) => p.state === 'complete' && CATALOG.some((c) => c.id === p.id));
  if (ready && info.webgpu) await loadPack(ready.id); // refreshes the device report and the route itself
  else if (info.webgpu && installed.length === 0 && (await firstRunInstallWanted())) {
    // With progress on the Models card; a `run=1` link then runs on this device below.
    if (!(await installFirstRunPack())) await Promise.all([refreshDeviceReport(), refreshRoute()]);
  } else await Promise.all([refreshDeviceReport(), refreshRoute()]);
  document.body.dataset.ready = 'true';
  if (runOnLoad && !ui.generate.disabled) await generateNow();
}

start().catch((e) => {
  showError(e);
  document.body.dataset.ready = 'true';
});
