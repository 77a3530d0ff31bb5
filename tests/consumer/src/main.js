// A consumer page: create the client with its own worker, install the test pack, generate on this device.
import { createFluxClient, isFluxError } from 'flux-webgpu';

const status = /** @type {HTMLElement} */ (document.getElementById('status'));
const result = /** @type {HTMLImageElement} */ (document.getElementById('result'));

/** Install the pack served beside the app, generate once locally; what the test checks comes back. */
async function generateOnce() {
  const flux = await createFluxClient({
    local: { worker: () => new Worker(new URL('./flux.worker.js', import.meta.url), { type: 'module' }) },
    proxyUrl: null, // local only: no fal proxy in this app
  });
  const local = flux.local;
  if (!local) throw new Error('no local runtime');
  const info = await local.info();
  status.textContent = 'installing the test pack…';
  await local.installPack('/packs/flux-test-tiny/');
  status.textContent = 'generating…';
  /** @type {string[]} */
  const statuses = [];
  const { data, route } = await flux.subscribe('fal-ai/flux/schnell', {
    input: { prompt: 'a lighthouse at dusk', seed: 7, image_size: { width: 32, height: 32 }, num_inference_steps: 2, output_format: 'png' },
    onQueueUpdate: (s) => statuses.push(s.status),
  });
  const image = data.images[0];
  if (!image) throw new Error('no image');
  result.src = image.url;
  await result.decode();
  status.textContent = 'done';
  const bytes = Array.from(new Uint8Array(await (await fetch(image.url)).arrayBuffer()));
  const after = await local.info();
  return { webgpu: after.webgpu ?? info.webgpu, webgpuError: after.webgpuError, ortBuild: after.ortBuild, route, statuses, image: { width: image.width, height: image.height, contentType: image.content_type, bytes }, shown: [result.naturalWidth, result.naturalHeight] };
}

/** The same pack, loaded by a worker whose wasmPaths points elsewhere. */
async function loadWithWasmPaths() {
  const flux = await createFluxClient({
    local: { worker: () => new Worker(new URL('./flux-wasm-paths.worker.js', import.meta.url), { type: 'module' }) },
    proxyUrl: null,
  });
  const loaded = await flux.local?.loadPack('flux-test-tiny');
  flux.terminate();
  return { packId: loaded?.packId ?? null };
}

/** A worker that never starts (its script 404s): calls must reject with a clear error, not hang. */
async function brokenWorker() {
  const started = performance.now();
  const flux = await createFluxClient({ local: { worker: new Worker('/no-such-flux.worker.js', { type: 'module' }) }, proxyUrl: null });
  try {
    await flux.local?.info();
    return { rejected: false, message: '', code: '', ms: performance.now() - started };
  } catch (e) {
    return { rejected: true, message: e instanceof Error ? e.message : String(e), code: isFluxError(e) ? e.code : '', ms: performance.now() - started };
  }
}

/** No worker given: the package has no bundled one and says what to pass. */
async function noWorker() {
  try {
    await createFluxClient({ proxyUrl: null });
    return { rejected: false, message: '', field: '' };
  } catch (e) {
    return { rejected: true, message: e instanceof Error ? e.message : String(e), field: isFluxError(e) ? (e.field ?? '') : '' };
  }
}

Object.assign(window, { consumer: { generateOnce, loadWithWasmPaths, brokenWorker, noWorker } });
status.textContent = 'ready';
document.body.dataset.ready = 'true';
