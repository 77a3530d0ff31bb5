/**
 * The page: talks only to the client API — FluxApiClient for generation (this device or fal, routed), and its
 * FluxClient (which owns the worker) for packs. Installs/loads packs, runs generations with progress and cancel,
 * shows the route and its reason, results and errors in place.
 */
import { createFluxClient, type FluxApiClient, type FluxEndpointId, type FluxProgressEvent, type FluxResult, type RoutePreference } from '../client/flux-api.js';
import { FluxClient, type ClientEvent, type PackInfo } from '../client/flux-client.js';
import { describeProgress, describeRemoteProgress } from '../client/progress-text.js';
import { isFluxError } from '../errors.js';
import type { InstalledPackInfo, InstallProgress, LocalPackFile } from '../client/flux-client.js';
import { ENDPOINT_SCHEMAS, type FluxRemoteInput } from '../remote/endpoints.js';
import { CATALOG } from './catalog.js';
import { dropEntries, walkEntries } from './dropped-files.js';
import { formatBytes, formatMs } from './format.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const ui = {
  device: $('device'),
  packs: $<HTMLUListElement>('packs'),
  modelProgress: $('model-progress'),
  modelProgressBar: $<HTMLProgressElement>('model-progress-bar'),
  modelProgressText: $('model-progress-text'),
  modelStatus: $('model-status'),
  form: $<HTMLFormElement>('generate-form'),
  prompt: $<HTMLTextAreaElement>('prompt'),
  size: $<HTMLSelectElement>('image-size'),
  width: $<HTMLInputElement>('width'),
  height: $<HTMLInputElement>('height'),
  steps: $<HTMLInputElement>('steps'),
  seed: $<HTMLInputElement>('seed'),
  numImages: $<HTMLInputElement>('num-images'),
  guidance: $<HTMLInputElement>('guidance'),
  strength: $<HTMLInputElement>('strength'),
  endpoint: $<HTMLSelectElement>('endpoint'),
  routePreference: $<HTMLSelectElement>('route-preference'),
  route: $('route'),
  imageInput: $('image-input'),
  imageDrop: $('image-drop'),
  imagePreview: $<HTMLImageElement>('image-preview'),
  imageHint: $('image-hint'),
  imageFile: $<HTMLInputElement>('image-file'),
  promptField: $('prompt-field'),
  format: $<HTMLSelectElement>('output-format'),
  generate: $<HTMLButtonElement>('generate'),
  runStatus: $('run-status'),
  error: $('error'),
  results: $('results'),
};

let client: FluxClient;
let api: FluxApiClient;
/** Aborts the running generation (local or remote). */
let running: AbortController | null = null;
/** The input image for Redux / image-to-image: a file, or a result's URL. */
let inputImage: Blob | string | null = null;

function showError(e: unknown): void {
  const msg = isFluxError(e) ? e.message : e instanceof Error ? e.message : String(e);
  ui.error.textContent = msg;
  ui.error.hidden = false;
  if (isFluxError(e) && e.field) {
    const name = e.field.split('.')[0]!;
    const input = name === 'image_url' ? ui.imageDrop : ui.form.querySelector<HTMLElement>(`[name="${CSS.escape(name)}"]`);
    input?.setAttribute('aria-invalid', 'true');
    input?.focus();
  }
}

function clearError(): void {
  ui.error.hidden = true;
  ui.error.textContent = '';
  for (const el of ui.form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

function setProgress(fraction: number | null, text: string): void {
  ui.modelProgress.hidden = fraction === null;
  if (fraction !== null) ui.modelProgressBar.value = fraction;
  ui.modelProgressText.textContent = text;
}

/** A row of the pack list: a catalog entry, or an installed pack the catalog does not list (e.g. from a folder). */
interface PackRow {
  id: string;
  name: string;
  note: string;
  /** Where to (re)install it from; null: only from a local folder. */
  url: string | null;
  info: PackInfo | undefined;
}

/** True while an install started from this page runs (one at a time). */
let installing = false;

function packStateText(info: PackInfo | undefined): string {
  if (!info) return 'not installed';
  const stored = `${formatBytes(info.storedBytes)} of ${formatBytes(info.sizeBytes)} stored`;
  if (info.state === 'complete') return `installed, ${formatBytes(info.sizeBytes)}${info.updatePending ? ' (an update was interrupted)' : ''}`;
  if (info.state === 'corrupt') return `damaged — verification found bad data (${stored}); repair re-fetches only what is bad`;
  return `installing — ${installing ? 'in progress' : 'interrupted'}, ${stored}${info.source === 'files' ? ' (from a local folder)' : ''}`;
}

async function refreshPacks(): Promise<PackInfo[]> {
  const installed = await client.listPacks();
  const rows: PackRow[] = CATALOG.map((c) => ({ id: c.id, name: c.name, note: c.note, url: c.url, info: installed.find((p) => p.id === c.id) }));
  for (const p of installed) {
    if (CATALOG.some((c) => c.id === p.id)) continue;
    rows.push({ id: p.id, name: p.name, note: p.source === 'files' ? 'Installed from a local folder.' : `From ${p.sourceUrl ?? 'unknown source'}.`, url: p.sourceUrl, info: p });
  }
  ui.packs.replaceChildren();
  for (const row of rows) {
    const { info } = row;
    const li = document.createElement('li');
    li.dataset.pack = row.id;
    if (info) li.dataset.state = info.state;
    li.innerHTML = `<div><strong></strong> <span class="pack-state" data-testid="pack-state"></span><p class="note"></p></div><div class="pack-actions"></div>`;
    li.querySelector('strong')!.textContent = row.name;
    const stateEl = li.querySelector<HTMLElement>('.pack-state')!;
    stateEl.textContent = packStateText(info);
    stateEl.classList.toggle('partial', info !== undefined && info.state !== 'complete');
    li.querySelector('.note')!.textContent = row.note;
    const actions = li.querySelector('.pack-actions')!;
    const button = (label: string, testid: string, onClick: () => void) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = label;
      b.dataset.testid = testid;
      b.disabled = installing;
      b.addEventListener('click', onClick);
      actions.append(b);
    };
    // Resume/repair uses the same source as the interrupted install: its URL, or the folder again.
    const reinstall = (): void => {
      if (info?.source === 'files' || row.url === null) $<HTMLInputElement>('folder-input').click();
      else void installFromUrl(row.url);
    };
    if (info?.state === 'complete') {
      if (client.loadedModel?.packId !== row.id) button('Load', 'load-pack', () => void loadPack(row.id));
      if (info.updatePending) button('Finish update', 'install-pack', reinstall);
      button('Delete', 'delete-pack', () => void removePack(row.id));
    } else if (info) {
      button(info.state === 'corrupt' ? 'Repair' : 'Resume', 'install-pack', reinstall);
      button('Delete', 'delete-pack', () => void removePack(row.id));
    } else {
      button('Install', 'install-pack', reinstall);
    }
    ui.packs.append(li);
  }
  void refreshStorage();
  return installed;
}

/** Browser storage used/allowed and whether it is persistent, under the pack list. */
async function refreshStorage(persisted?: boolean | null): Promise<void> {
  const el = $('storage-status');
  try {
    const s = await client.storageEstimate();
    const p = persisted ?? s.persisted;
    const parts: string[] = [];
    if (s.usage !== null && s.quota !== null) {
      parts.push(
        s.quotaUndisclosed
          ? `Browser storage: ${formatBytes(s.usage)} used (this browser does not disclose the space left)`
          : `Browser storage: ${formatBytes(s.usage)} used, ${formatBytes(Math.max(0, s.quota - s.usage))} available to this site`,
      );
    }
    parts.push(p === null ? 'persistence unknown' : p ? 'persistent (the browser will not evict it)' : 'not persistent (the browser may evict it when the disk runs low)');
    el.textContent = parts.join(' · ');
    el.dataset.persisted = String(p);
  } catch {
    el.textContent = '';
  }
}

function formatEta(seconds: number): string {
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.ceil(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.ceil((seconds % 3600) / 60)} min`;
}

const RESTART_TEXT: Record<string, string> = {
  range_ignored: 'the server cannot continue a partial download',
  range_not_satisfiable: 'the server refused to continue',
  validator_changed: 'the file changed on the server',
  range_mismatch: 'the server sent a different part',
  stored_chunk_corrupt: 'stored data failed its check',
  repair_failed: 'damaged data could not be repaired in place',
  corrupt: 'stored data was damaged',
};

function showInstallProgress(e: InstallProgress, verb: string): void {
  const frac = 'loadedBytes' in e ? e.loadedBytes / Math.max(1, e.totalBytes) : 1;
  switch (e.status) {
    case 'download': {
      const eta = e.etaSeconds !== null ? `, ${formatEta(e.etaSeconds)} left` : '';
      setProgress(frac, `${verb} ${formatBytes(e.loadedBytes)} of ${formatBytes(e.totalBytes)} (${formatBytes(e.bytesPerSecond)}/s${eta})`);
      break;
    }
    case 'rehash':
      setProgress(frac, `Checking ${formatBytes(e.fileLoadedBytes)} of ${formatBytes(e.fileTotalBytes)} already stored of ${e.file}`);
      break;
    case 'restart':
      setProgress(frac, `Restarting ${e.file}${e.fromByte > 0 ? ` from ${formatBytes(e.fromByte)}` : ''}: ${RESTART_TEXT[e.reason] ?? e.reason}`);
      break;
    case 'repair':
      setProgress(frac, `Repairing ${e.chunks.length} damaged part(s) of ${e.file}`);
      break;
    case 'verify':
      setProgress(frac, `${e.reused ? 'Already stored' : 'Verified'}: ${e.file}`);
      break;
    case 'done':
      setProgress(1, 'Installed.');
      break;
  }
}

/** Run one install (URL or folder) with progress and cancel, then load the pack. */
async function runInstall(verb: string, start: (onProgress: (e: InstallProgress) => void) => Promise<InstalledPackInfo>): Promise<void> {
  if (installing) return;
  installing = true;
  clearError();
  const cancel = $<HTMLButtonElement>('cancel-install');
  cancel.hidden = false;
  let id: string | null = null;
  try {
    await refreshPacks(); // disables the other install buttons
    setProgress(0, 'Starting…');
    const info = await start((e) => showInstallProgress(e, verb));
    id = info.id;
    setProgress(null, '');
  } catch (e) {
    setProgress(null, '');
    if (!(isFluxError(e) && e.code === 'cancelled')) showError(e);
    else ui.modelStatus.textContent = 'Install cancelled; what was stored is kept — resume it from the list.';
  } finally {
    installing = false;
    cancel.hidden = true;
  }
  await refreshPacks();
  if (id !== null) await loadPack(id);
}

function installFromUrl(url: string): Promise<void> {
  return runInstall('Downloading', (onProgress) => client.installPack(url, onProgress));
}

function installFromFiles(files: LocalPackFile[]): Promise<void> {
  return runInstall('Copying', (onProgress) => client.installPackFromFiles(files, onProgress));
}

/** "Install from folder…", the folder drop zone on the Model card, and Cancel. */
function initInstallUi(): void {
  const input = $<HTMLInputElement>('folder-input');
  $('install-folder').addEventListener('click', () => input.click());
  input.addEventListener('change', () => {
    const files = Array.from(input.files ?? []);
    input.value = '';
    if (files.length) void installFromFiles(files);
  });
  $('cancel-install').addEventListener('click', () => void client.cancelInstall());
  const card = $('model-card');
  card.addEventListener('dragover', (e) => {
    if (!e.dataTransfer?.types.includes('Files')) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
    card.classList.add('dragover');
  });
  card.addEventListener('dragleave', (e) => {
    if (!card.contains(e.relatedTarget as Node | null)) card.classList.remove('dragover');
  });
  card.addEventListener('drop', (e) => {
    if (!e.dataTransfer) return;
    e.preventDefault();
    card.classList.remove('dragover');
    const { entries, files } = dropEntries(e.dataTransfer); // now: the items are gone after the event
    void (async () => {
      const list = entries.length ? await walkEntries(entries) : files;
      if (list.length) await installFromFiles(list);
    })();
  });
}

async function loadPack(id: string): Promise<void> {
  clearError();
  ui.modelStatus.textContent = 'Loading model…';
  try {
    const info = await client.loadPack(id, (e) => {
      if (e.status === 'load') setProgress(e.index / e.total, `Loading ${e.component} (${e.index}/${e.total})`);
    });
    setProgress(null, '');
    ui.modelStatus.textContent = `Loaded: ${info.name}${info.testPack ? ' — test pack: random weights, abstract output' : ''}`;
    const capacity = (await client.info()).capacity;
    if (capacity) ui.modelStatus.title = `${capacity.reason} ${capacity.checks.map((c) => `${c.name}: ${c.detail}`).join('; ')}`;
    ui.modelStatus.dataset.loaded = info.packId ?? '';
  } catch (e) {
    setProgress(null, '');
    ui.modelStatus.textContent = 'No model loaded.';
    showError(e);
  }
  await refreshPacks();
  await refreshRoute();
}

async function removePack(id: string): Promise<void> {
  if (!confirm('Delete this model pack from this browser? You can install it again later.')) return;
  await client.deletePack(id);
  if (!client.loadedModel) {
    ui.modelStatus.textContent = 'No model loaded.';
    delete ui.modelStatus.dataset.loaded;
  }
  await refreshPacks();
  await refreshRoute();
}

function endpoint(): FluxEndpointId {
  return ui.endpoint.value as FluxEndpointId;
}

/** Read the form into the endpoint's fal-style input. Numbers are passed as typed; validation names bad fields. */
function readInput(id: FluxEndpointId): FluxRemoteInput {
  const schema = ENDPOINT_SCHEMAS[id];
  const num = (el: HTMLInputElement) => (el.value.trim() === '' ? undefined : Number(el.value));
  const input: FluxRemoteInput = { output_format: ui.format.value as 'jpeg' | 'png' };
  if (schema.prompt === 'required') input.prompt = ui.prompt.value;
  if (schema.imageUrl === 'required' && inputImage !== null) input.image_url = inputImage;
  if (schema.imageSize) {
    input.image_size = ui.size.value === 'custom' ? { width: num(ui.width) ?? NaN, height: num(ui.height) ?? NaN } : (ui.size.value as 'square');
  }
  const set = <K extends keyof FluxRemoteInput>(k: K, v: FluxRemoteInput[K] | undefined) => v !== undefined && (input[k] = v);
  set('num_inference_steps', num(ui.steps));
  set('seed', num(ui.seed));
  set('num_images', num(ui.numImages));
  // schnell ignores guidance locally and fal's schnell accepts it: send it only where it matters.
  if (schema.guidance && !(id === 'fal-ai/flux/schnell')) set('guidance_scale', num(ui.guidance));
  if (schema.strength) set('strength', num(ui.strength));
  return input;
}

function describe(e: FluxProgressEvent): string {
  return e.target === 'local' ? describeProgress(e) : describeRemoteProgress(e);
}

/** Show the fields of the chosen endpoint (prompt or input image, guidance, strength, step range). */
function showEndpointFields(): void {
  const schema = ENDPOINT_SCHEMAS[endpoint()];
  ui.promptField.hidden = schema.prompt !== 'required';
  ui.imageInput.hidden = schema.imageUrl !== 'required';
  for (const el of document.querySelectorAll<HTMLElement>('.for-guidance')) el.hidden = !schema.guidance || endpoint() === 'fal-ai/flux/schnell';
  for (const el of document.querySelectorAll<HTMLElement>('.for-strength')) el.hidden = !schema.strength;
  ui.size.closest('label')!.hidden = !schema.imageSize;
  for (const el of document.querySelectorAll<HTMLElement>('.custom-size')) el.hidden = !schema.imageSize || ui.size.value !== 'custom';
}

let routeSeq = 0;
/** Ask where the chosen endpoint runs now; show it with its reason, and enable Generate if it can run. */
async function refreshRoute(): Promise<void> {
  const seq = ++routeSeq;
  const id = endpoint();
  showEndpointFields();
  try {
    const r = await api.route(id);
    if (seq !== routeSeq) return;
    ui.route.textContent = r.target === 'local' ? `This device — ${r.reason}.` : `fal (remote) — ${r.reason}.`;
    ui.route.dataset.target = r.target;
    const max = r.target === 'local' ? (client.loadedModel?.config.maxSteps ?? 4) : ENDPOINT_SCHEMAS[id].steps.max;
    ui.steps.max = String(max);
    if (ui.steps.dataset.endpoint !== id) {
      ui.steps.value = String(r.target === 'local' ? Math.min(4, ENDPOINT_SCHEMAS[id].steps.default) : ENDPOINT_SCHEMAS[id].steps.default);
      ui.steps.dataset.endpoint = id;
    }
    ui.generate.disabled = false;
  } catch (e) {
    if (seq !== routeSeq) return;
    ui.route.textContent = isFluxError(e) || e instanceof Error ? e.message : String(e);
    ui.route.dataset.target = 'none';
    ui.generate.disabled = running === null; // Cancel stays usable
  }
}

function setInputImage(img: Blob | string | null): void {
  inputImage = img;
  if (ui.imagePreview.src.startsWith('blob:') && ui.imagePreview.dataset.owned === 'true') URL.revokeObjectURL(ui.imagePreview.src);
  if (img === null) {
    ui.imagePreview.hidden = true;
    ui.imagePreview.removeAttribute('src');
    ui.imageHint.hidden = false;
    return;
  }
  ui.imagePreview.dataset.owned = String(typeof img !== 'string');
  ui.imagePreview.src = typeof img === 'string' ? img : URL.createObjectURL(img);
  ui.imagePreview.hidden = false;
  ui.imageHint.hidden = true;
  ui.imageDrop.removeAttribute('aria-invalid');
  ui.imageDrop.dataset.hasImage = 'true';
}

/** Input images for Redux / image-to-image: file picker, drag-and-drop, or a result ("Use as input"). */
function initImageInput(): void {
  ui.imageDrop.dataset.hasImage = 'false';
  $('image-pick').addEventListener('click', () => ui.imageFile.click());
  ui.imageFile.addEventListener('change', () => {
    const f = ui.imageFile.files?.[0];
    ui.imageFile.value = '';
    if (f) setInputImage(f);
  });
  ui.imageDrop.addEventListener('dragover', (e) => {
    if (!e.dataTransfer?.types.includes('Files')) return;
    e.preventDefault();
    ui.imageDrop.classList.add('dragover');
  });
  ui.imageDrop.addEventListener('dragleave', () => ui.imageDrop.classList.remove('dragover'));
  ui.imageDrop.addEventListener('drop', (e) => {
    e.preventDefault();
    ui.imageDrop.classList.remove('dragover');
    const f = Array.from(e.dataTransfer?.files ?? []).find((x) => x.type.startsWith('image/'));
    if (f) setInputImage(f);
    else showError(new Error('Drop an image file (PNG, JPEG, WebP).'));
  });
}

/** A result's image as an input: local results are blob: URLs (read back to a Blob); remote ones are fal URLs. */
async function useAsInput(url: string): Promise<void> {
  setInputImage(url.startsWith('blob:') ? await (await fetch(url)).blob() : url);
  ui.imageDrop.scrollIntoView({ block: 'nearest' });
}

function showResult(r: FluxResult): void {
  const out = r.data;
  ui.results.querySelector('.empty')?.remove();
  const fig = document.createElement('figure');
  fig.className = 'result';
  fig.dataset.seed = String(out.seed);
  fig.dataset.target = r.route.target;
  fig.dataset.endpoint = r.route.endpoint;
  for (const img of out.images) {
    const el = document.createElement('img');
    el.src = img.url;
    if (img.width) el.width = img.width;
    if (img.height) el.height = img.height;
    el.alt = out.prompt;
    el.dataset.testid = 'result-image';
    const use = document.createElement('button');
    use.type = 'button';
    use.className = 'secondary use-image';
    use.textContent = 'Use as input';
    use.dataset.testid = 'use-as-input';
    use.addEventListener('click', () => void useAsInput(img.url));
    const wrap = document.createElement('div');
    wrap.append(el, use);
    fig.append(wrap);
  }
  const cap = document.createElement('figcaption');
  const first = out.images[0];
  const size = first?.width ? `${first.width}×${first.height} · ` : '';
  const where = r.route.target === 'local' ? `${formatMs(out.timings.total_ms)} on this device` : `${formatMs(out.timings.total_ms)} on fal (${ENDPOINT_SCHEMAS[r.route.endpoint].title})`;
  cap.textContent = `seed ${out.seed} · ${size}${where}` + (out.safety.ran ? '' : ' · safety check not run');
  fig.append(cap);
  ui.results.prepend(fig);
}

async function onSubmit(ev: SubmitEvent): Promise<void> {
  ev.preventDefault();
  if (running) {
    running.abort();
    return;
  }
  clearError();
  const id = endpoint();
  const controller = new AbortController();
  running = controller;
  ui.generate.disabled = false;
  ui.generate.textContent = 'Cancel';
  ui.generate.dataset.testid = 'cancel';
  ui.runStatus.textContent = 'Starting…';
  delete ui.runStatus.dataset.queuePosition;
  try {
    const r = await api.subscribe(id, {
      input: readInput(id),
      abortSignal: controller.signal,
      onProgress: (e) => {
        ui.runStatus.textContent = describe(e);
        ui.runStatus.dataset.stage = e.stage;
        if (e.target === 'remote' && e.stage === 'queued') ui.runStatus.dataset.queuePosition = String(e.queuePosition);
      },
    });
    showResult(r);
    ui.runStatus.textContent = `Done in ${formatMs(r.data.timings.total_ms)} (seed ${r.data.seed})${r.route.target === 'remote' ? ' on fal' : ''}.`;
  } catch (e) {
    if (isFluxError(e) && e.code === 'cancelled') ui.runStatus.textContent = 'Cancelled.';
    else {
      ui.runStatus.textContent = '';
      showError(e);
    }
  } finally {
    running = null;
    delete ui.runStatus.dataset.stage;
    ui.generate.textContent = 'Generate';
    ui.generate.dataset.testid = 'generate';
    await refreshRoute();
  }
}

/** The client recovered from a GPU failure on its own: say what happened, in place. */
function showClientEvent(e: ClientEvent): void {
  const notice = document.getElementById('notice')!;
  const what = e.reason === 'device_lost' ? 'The GPU was reset' : e.reason === 'out_of_memory' ? 'The GPU ran out of memory' : 'The GPU reported an error';
  notice.textContent =
    e.type === 'recovering'
      ? `${what}; restarting the model from this browser's storage…`
      : `${what}; the model was reloaded${e.reason === 'out_of_memory' ? ' with a smaller memory plan' : ''} and the request retried.`;
  notice.hidden = false;
}

async function start(): Promise<void> {
  // ?ort=jspi|asyncify picks the onnxruntime-web build (default asyncify; see src/worker/load-ort.ts).
  const ort = new URLSearchParams(location.search).get('ort');
  client = await FluxClient.create({ onEvent: showClientEvent, ...(ort === 'jspi' || ort === 'asyncify' ? { ortBuild: ort } : {}) });
  api = await createFluxClient({ local: client });
  // Handles for developers and tests.
  Object.assign(globalThis, { flux: client, fluxApi: api });
  initInstallUi();
  initImageInput();
  ui.routePreference.value = api.routePreference;
  ui.routePreference.addEventListener('change', () => {
    api.setRoutePreference(ui.routePreference.value as RoutePreference);
    void refreshRoute();
  });
  ui.endpoint.addEventListener('change', () => void refreshRoute());
  ui.size.addEventListener('change', () => {
    for (const el of document.querySelectorAll<HTMLElement>('.custom-size')) el.hidden = ui.size.value !== 'custom';
  });
  ui.form.addEventListener('submit', (e) => void onSubmit(e));
  ui.prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) ui.form.requestSubmit();
  });

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
  if (ready && info.webgpu) await loadPack(ready.id);
  else await refreshRoute();
  document.body.dataset.ready = 'true';
}

start().catch((e) => {
  showError(e);
  document.body.dataset.ready = 'true';
});
