/**
 * The page: talks only to FluxClient (which owns the worker). Installs/loads packs, runs generations with
 * progress and cancel, shows results and errors in place.
 */
import { FluxClient, type FluxOutput, type GenerateProgressEvent, type PackInfo } from '../client/flux-client.js';
import { isFluxError } from '../errors.js';
import type { FluxSchnellInput } from '../pipeline/request.js';
import { CATALOG } from './catalog.js';
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
  format: $<HTMLSelectElement>('output-format'),
  generate: $<HTMLButtonElement>('generate'),
  runStatus: $('run-status'),
  error: $('error'),
  results: $('results'),
};

let client: FluxClient;
let running = false;

function showError(e: unknown): void {
  const msg = isFluxError(e) ? e.message : e instanceof Error ? e.message : String(e);
  ui.error.textContent = msg;
  ui.error.hidden = false;
  if (isFluxError(e) && e.field) {
    const input = ui.form.querySelector<HTMLElement>(`[name="${CSS.escape(e.field.split('.')[0]!)}"]`);
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

async function refreshPacks(): Promise<PackInfo[]> {
  const installed = await client.listPacks();
  ui.packs.replaceChildren();
  for (const entry of CATALOG) {
    const info = installed.find((p) => p.id === entry.id);
    const li = document.createElement('li');
    li.dataset.pack = entry.id;
    const state = info ? (info.state === 'complete' ? `installed, ${formatBytes(info.sizeBytes)}` : `${info.state} (${formatBytes(info.storedBytes)} of ${formatBytes(info.sizeBytes)})`) : 'not installed';
    li.innerHTML = `<div><strong></strong> <span class="pack-state" data-testid="pack-state"></span><p class="note"></p></div><div class="pack-actions"></div>`;
    li.querySelector('strong')!.textContent = entry.name;
    li.querySelector('.pack-state')!.textContent = state;
    li.querySelector('.note')!.textContent = entry.note;
    const actions = li.querySelector('.pack-actions')!;
    const button = (label: string, testid: string, onClick: () => void) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = label;
      b.dataset.testid = testid;
      b.addEventListener('click', onClick);
      actions.append(b);
    };
    if (info?.state === 'complete') {
      if (client.loadedModel?.packId !== entry.id) button('Load', 'load-pack', () => void loadPack(entry.id));
      button('Delete', 'delete-pack', () => void removePack(entry.id));
    } else {
      button(info ? 'Resume install' : 'Install', 'install-pack', () => void installPack(entry.url, entry.id));
    }
    ui.packs.append(li);
  }
  return installed;
}

async function installPack(url: string, id: string): Promise<void> {
  clearError();
  try {
    setProgress(0, 'Starting download…');
    await client.installPack(url, (e) => {
      if (e.status === 'download') {
        const eta = e.etaSeconds !== null ? `, ${Math.ceil(e.etaSeconds)} s left` : '';
        setProgress(e.loadedBytes / e.totalBytes, `Downloading ${formatBytes(e.loadedBytes)} of ${formatBytes(e.totalBytes)} (${formatBytes(e.bytesPerSecond)}/s${eta})`);
      } else if (e.status === 'verify') {
        setProgress(e.loadedBytes / e.totalBytes, `Verifying ${e.file}`);
      }
    });
    setProgress(null, '');
    await refreshPacks();
    await loadPack(id);
  } catch (e) {
    setProgress(null, '');
    showError(e);
    await refreshPacks();
  }
}

async function loadPack(id: string): Promise<void> {
  clearError();
  ui.generate.disabled = true;
  ui.modelStatus.textContent = 'Loading model…';
  try {
    const info = await client.loadPack(id, (e) => {
      if (e.status === 'load') setProgress(e.index / e.total, `Loading ${e.component} (${e.index}/${e.total})`);
    });
    setProgress(null, '');
    ui.modelStatus.textContent = `Loaded: ${info.name}${info.testPack ? ' — test pack: random weights, abstract output' : ''}`;
    ui.modelStatus.dataset.loaded = info.packId ?? '';
    ui.steps.max = String(info.config.maxSteps);
    ui.generate.disabled = false;
  } catch (e) {
    setProgress(null, '');
    ui.modelStatus.textContent = 'No model loaded.';
    showError(e);
  }
  await refreshPacks();
}

async function removePack(id: string): Promise<void> {
  if (!confirm('Delete this model pack from this browser? You can install it again later.')) return;
  await client.deletePack(id);
  if (!client.loadedModel) {
    ui.generate.disabled = true;
    ui.modelStatus.textContent = 'No model loaded.';
    delete ui.modelStatus.dataset.loaded;
  }
  await refreshPacks();
}

/** Read the form into a fal-style input. Numbers are passed as typed; validation names bad fields. */
function readInput(): FluxSchnellInput {
  const num = (el: HTMLInputElement) => (el.value.trim() === '' ? undefined : Number(el.value));
  const input: FluxSchnellInput = {
    prompt: ui.prompt.value,
    image_size:
      ui.size.value === 'custom' ? { width: num(ui.width) ?? NaN, height: num(ui.height) ?? NaN } : (ui.size.value as FluxSchnellInput['image_size'] & string),
    output_format: ui.format.value as 'jpeg' | 'png',
  };
  const steps = num(ui.steps);
  if (steps !== undefined) input.num_inference_steps = steps;
  const seed = num(ui.seed);
  if (seed !== undefined) input.seed = seed;
  const n = num(ui.numImages);
  if (n !== undefined) input.num_images = n;
  return input;
}

function describeProgress(e: GenerateProgressEvent): string {
  const t = formatMs(e.elapsedMs);
  switch (e.stage) {
    case 'load':
      return `Loading ${e.component ?? 'model'}… ${t}`;
    case 'encode_text':
      return `Encoding text… ${t}`;
    case 'denoise':
      return `Step ${e.step} of ${e.totalSteps} — ${t}`;
    case 'decode':
      return `Decoding… ${t}`;
    case 'postprocess':
    case 'encode_image':
      return `Finishing… ${t}`;
  }
}

function showResult(out: FluxOutput, input: FluxSchnellInput): void {
  ui.results.querySelector('.empty')?.remove();
  const fig = document.createElement('figure');
  fig.className = 'result';
  fig.dataset.seed = String(out.seed);
  for (const img of out.images) {
    const el = document.createElement('img');
    el.src = img.url;
    el.width = img.width;
    el.height = img.height;
    el.alt = out.prompt;
    el.dataset.testid = 'result-image';
    fig.append(el);
  }
  const cap = document.createElement('figcaption');
  const size = `${out.images[0]!.width}×${out.images[0]!.height}`;
  cap.textContent = `seed ${out.seed} · ${size} · ${input.num_inference_steps ?? 4} steps · ${formatMs(out.timings.total_ms)} on this device` + (out.safety.ran ? '' : ' · safety check not run');
  fig.append(cap);
  ui.results.prepend(fig);
}

async function onSubmit(ev: SubmitEvent): Promise<void> {
  ev.preventDefault();
  if (running) {
    await client.cancel();
    return;
  }
  clearError();
  let input: FluxSchnellInput;
  try {
    input = readInput();
  } catch (e) {
    showError(e);
    return;
  }
  running = true;
  ui.generate.textContent = 'Cancel';
  ui.generate.dataset.testid = 'cancel';
  ui.runStatus.textContent = 'Starting…';
  try {
    const out = await client.generate(input, { onProgress: (e) => (ui.runStatus.textContent = describeProgress(e)) });
    showResult(out, input);
    ui.runStatus.textContent = `Done in ${formatMs(out.timings.total_ms)} (seed ${out.seed}).`;
  } catch (e) {
    if (isFluxError(e) && e.code === 'cancelled') ui.runStatus.textContent = 'Cancelled.';
    else {
      ui.runStatus.textContent = '';
      showError(e);
    }
  } finally {
    running = false;
    ui.generate.textContent = 'Generate';
    ui.generate.dataset.testid = 'generate';
  }
}

async function start(): Promise<void> {
  client = await FluxClient.create();
  (globalThis as unknown as { flux: FluxClient }).flux = client; // handle for developers and tests
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
  document.body.dataset.ready = 'true';
}

start().catch((e) => {
  showError(e);
  document.body.dataset.ready = 'true';
});
