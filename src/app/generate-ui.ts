/**
 * The generate form: endpoint and where it runs (with the reason), prompt or input image, size, steps, seed with
 * lock/randomize, images, format, safety checker; Generate that becomes Cancel; progress with stage, step, elapsed
 * time and an estimate from earlier runs on this device; share links (the address bar reproduces the last run).
 */
import type { FluxProgressEvent, RoutePreference } from '../client/flux-api.js';
import { describeProgress, describeRemoteProgress } from '../client/progress-text.js';
import { isFluxError } from '../errors.js';
import { IMAGE_SIZE_PRESETS, isImageSizePreset, type ImageSize, ENDPOINT_SCHEMAS, type FluxEndpointId, type FluxRemoteInput } from '../client/request-vocabulary.js';
import { app } from './context.js';
import { clearError, showError, ui } from './dom.js';
import { TimingHistory } from './estimate.js';
import { formatMs } from './format.js';
import { addResult } from './gallery-ui.js';
import { falSnippet } from './code-snippet.js';
import { PromptRecall } from './prompt-recall.js';
import { progressFraction } from './run-progress.js';
import { AUTO_RUN_ASK_TEXT, autoRunAction, buildShareLink, parseShareLink, type SharedSettings } from './share-link.js';

/** Aborts the running generation (local or remote). */
let running: AbortController | null = null;
/** The input image for Redux / image-to-image: a file, or a result (Blob or URL). */
let inputImage: Blob | string | null = null;
const timings = new TimingHistory();
const prompts = new PromptRecall(storageOrNull());

function storageOrNull(): Storage | null {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null; // storage blocked (opaque origin)
  }
}
/** Set by a `run=1` link until the first generation; any click on Generate clears it (the user chose). */
let autoRunArmed = false;

function endpoint(): FluxEndpointId {
  return ui.endpoint.value as FluxEndpointId;
}

/** Read the form into the endpoint's fal-style input. Numbers are passed as typed; validation names bad fields. */
function readInput(id: FluxEndpointId): FluxRemoteInput {
  const schema = ENDPOINT_SCHEMAS[id];
  const num = (el: HTMLInputElement) => (el.value.trim() === '' ? undefined : Number(el.value));
  const input: FluxRemoteInput = { output_format: ui.format.value as 'jpeg' | 'png', enable_safety_checker: ui.safety.checked };
  if (schema.prompt === 'required') input.prompt = ui.prompt.value;
  if (schema.imageUrl === 'required' && inputImage !== null) input.image_url = inputImage;
  if (schema.imageSize) input.image_size = currentSize();
  const set = <K extends keyof FluxRemoteInput>(k: K, v: FluxRemoteInput[K] | undefined) => v !== undefined && (input[k] = v);
  set('num_inference_steps', num(ui.steps));
  set('seed', num(ui.seed));
  set('num_images', num(ui.numImages));
  // schnell has no guidance embedding: send guidance only where it matters.
  if (schema.guidance && id !== 'fal-ai/flux/schnell') set('guidance_scale', num(ui.guidance));
  if (schema.strength) set('strength', num(ui.strength));
  return input;
}

function currentSize(): ImageSize {
  const num = (el: HTMLInputElement) => (el.value.trim() === '' ? NaN : Number(el.value));
  return ui.size.value === 'custom' ? { width: num(ui.width), height: num(ui.height) } : (ui.size.value as keyof typeof IMAGE_SIZE_PRESETS);
}

function pixelSize(size: ImageSize | undefined): { width: number; height: number } {
  if (size === undefined) return IMAGE_SIZE_PRESETS.landscape_4_3;
  return typeof size === 'string' ? IMAGE_SIZE_PRESETS[size] : size;
}

function describe(e: FluxProgressEvent): string {
  return e.target === 'local' ? describeProgress(e) : describeRemoteProgress(e);
}

/** Show the fields of the chosen endpoint (prompt or input image, guidance, strength, sizes). */
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
export async function refreshRoute(): Promise<void> {
  const seq = ++routeSeq;
  const id = endpoint();
  showEndpointFields();
  try {
    const r = await app.api.route(id);
    if (seq !== routeSeq) return;
    ui.route.textContent = r.target === 'local' ? `This device — ${r.reason}.` : `fal (remote) — ${r.reason}.`;
    ui.route.dataset.target = r.target;
    const max = r.target === 'local' ? (app.client.loadedModel?.config.maxSteps ?? ENDPOINT_SCHEMAS[id].steps.max) : ENDPOINT_SCHEMAS[id].steps.max;
    ui.steps.max = String(max);
    if (ui.steps.dataset.endpoint !== id) {
      if (ui.steps.dataset.endpoint !== undefined || ui.steps.value === '') {
        ui.steps.value = String(r.target === 'local' ? Math.min(4, ENDPOINT_SCHEMAS[id].steps.default) : ENDPOINT_SCHEMAS[id].steps.default);
      }
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

export function setInputImage(img: Blob | string | null): void {
  inputImage = img;
  if (ui.imagePreview.src.startsWith('blob:') && ui.imagePreview.dataset.owned === 'true') URL.revokeObjectURL(ui.imagePreview.src);
  if (img === null) {
    ui.imagePreview.hidden = true;
    ui.imagePreview.removeAttribute('src');
    ui.imageHint.hidden = false;
    ui.imageDrop.dataset.hasImage = 'false';
    return;
  }
  ui.imagePreview.dataset.owned = String(typeof img !== 'string');
  ui.imagePreview.src = typeof img === 'string' ? img : URL.createObjectURL(img);
  ui.imagePreview.hidden = false;
  ui.imageHint.hidden = true;
  ui.imageDrop.removeAttribute('aria-invalid');
  ui.imageDrop.dataset.hasImage = 'true';
}

/** Input images for Redux / image-to-image: file picker (also Enter/Space on the drop zone), or drag-and-drop. */
function initImageInput(): void {
  ui.imageDrop.dataset.hasImage = 'false';
  document.getElementById('image-pick')!.addEventListener('click', () => ui.imageFile.click());
  ui.imageDrop.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      ui.imageFile.click();
    }
  });
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

/** Put a result's image in the input (switching to a Redux endpoint if the current one takes no image). */
export function useAsInput(image: Blob | string): void {
  if (ENDPOINT_SCHEMAS[endpoint()].imageUrl !== 'required') {
    ui.endpoint.value = 'fal-ai/flux/schnell/redux';
    void refreshRoute();
  }
  setInputImage(image);
  ui.imageDrop.scrollIntoView({ block: 'nearest' });
}

export function useSeed(seed: number): void {
  ui.seed.value = String(seed);
  ui.seedLock.checked = true;
  ui.seed.focus();
}

/** Fill the form from stored or shared settings. */
export function applySettings(endpointId: FluxEndpointId, input: Record<string, unknown> | SharedSettings): void {
  ui.endpoint.value = endpointId;
  const i = input as Partial<FluxRemoteInput>;
  if (typeof i.prompt === 'string') ui.prompt.value = i.prompt;
  if (typeof i.seed === 'number') {
    ui.seed.value = String(i.seed);
    ui.seedLock.checked = true;
  }
  if (typeof i.num_inference_steps === 'number') {
    ui.steps.value = String(i.num_inference_steps);
    ui.steps.dataset.endpoint = endpointId; // keep this value when the route is refreshed
  }
  if (typeof i.num_images === 'number') ui.numImages.value = String(i.num_images);
  if (i.output_format === 'jpeg' || i.output_format === 'png') ui.format.value = i.output_format;
  if (typeof i.guidance_scale === 'number') ui.guidance.value = String(i.guidance_scale);
  if (typeof i.strength === 'number') ui.strength.value = String(i.strength);
  if (typeof i.enable_safety_checker === 'boolean') ui.safety.checked = i.enable_safety_checker;
  const size = i.image_size;
  if (isImageSizePreset(size)) ui.size.value = size;
  else if (size && typeof size === 'object') {
    ui.size.value = 'custom';
    ui.width.value = String(size.width);
    ui.height.value = String(size.height);
  }
  void refreshRoute();
}

/** The address bar as a share link of what just ran (same parameters, `run=1` left to the copy-link action). */
function updateAddressBar(id: FluxEndpointId, input: FluxRemoteInput, seed: number): void {
  const s: SharedSettings = { endpoint: id, seed };
  if (input.prompt !== undefined) s.prompt = input.prompt;
  if (input.num_inference_steps !== undefined) s.num_inference_steps = input.num_inference_steps;
  if (input.image_size !== undefined) s.image_size = input.image_size;
  if (input.num_images !== undefined) s.num_images = input.num_images;
  if (input.output_format !== undefined) s.output_format = input.output_format;
  if (input.guidance_scale !== undefined) s.guidance_scale = input.guidance_scale;
  history.replaceState(null, '', `${location.pathname}${buildShareLink(s)}`);
}

/** Generate, or cancel the running generation. */
export async function generateNow(): Promise<void> {
  if (running) {
    running.abort();
    return;
  }
  clearError();
  const id = endpoint();
  // A `run=1` link starts by itself only on this device (forced local, so no later route change sends it to fal).
  let autoRoute: RoutePreference | undefined;
  if (autoRunArmed) {
    autoRunArmed = false;
    const route = await app.api.route(id).catch(() => null);
    if (running) return; // the user pressed Generate meanwhile
    if (autoRunAction(route) === 'ask') {
      ui.runStatus.textContent = AUTO_RUN_ASK_TEXT;
      ui.runStatus.dataset.autoRun = 'needs-click';
      return;
    }
    autoRoute = 'local';
  }
  delete ui.runStatus.dataset.autoRun;
  const controller = new AbortController();
  running = controller;
  ui.generate.disabled = false;
  ui.generate.textContent = 'Cancel';
  ui.generate.dataset.testid = 'cancel';
  ui.runStatus.textContent = 'Starting…';
  delete ui.runStatus.dataset.queuePosition;
  setProgress(0);
  try {
    const input = readInput(id);
    const px = pixelSize(input.image_size);
    const shape = (target: 'local' | 'remote') => ({ target, endpoint: id, width: px.width, height: px.height, steps: input.num_inference_steps ?? ENDPOINT_SCHEMAS[id].steps.default, images: input.num_images ?? 1 });
    // subscribe() decides the route; its first progress event says which, and so which earlier runs compare.
    let expected: number | null | undefined;
    const t0 = performance.now();
    const r = await app.api.subscribe(id, {
      input,
      abortSignal: controller.signal,
      ...(autoRoute ? { route: autoRoute } : {}),
      onProgress: (e) => {
        if (expected === undefined) expected = timings.estimate(shape(e.target));
        const elapsed = performance.now() - t0;
        ui.runStatus.textContent = describe(e) + (expected != null && expected > elapsed ? ` · about ${formatMs(expected - elapsed)} left` : '');
        ui.runStatus.dataset.stage = e.stage;
        setProgress(progressFraction(e));
        if (e.target === 'remote' && e.stage === 'queued') ui.runStatus.dataset.queuePosition = String(e.queuePosition);
      },
    });
    timings.record(shape(r.route.target), r.data.timings.total_ms);
    updateAddressBar(id, input, r.data.seed);
    if (!ui.seedLock.checked) ui.seed.value = '';
    // The route this request took, with its reason (a size this GPU cannot hold goes to fal under Auto even when
    // the line above, decided before the size was known, says this device).
    ui.runStatus.textContent = `Done in ${formatMs(r.data.timings.total_ms)} (seed ${r.data.seed}) ${r.route.target === 'remote' ? 'on fal' : 'on this device'} — ${r.route.reason}.`;
    ui.runStatus.dataset.target = r.route.target;
    if (input.prompt) prompts.add(input.prompt);
    refreshRecentPrompts();
    await addResult(r, id, input);
  } catch (e) {
    if (isFluxError(e) && e.code === 'cancelled') ui.runStatus.textContent = 'Cancelled.';
    else {
      ui.runStatus.textContent = '';
      showError(e);
    }
  } finally {
    running = null;
    ui.runProgress.hidden = true;
    delete ui.runStatus.dataset.stage;
    ui.generate.textContent = 'Generate';
    ui.generate.dataset.testid = 'generate';
    await refreshRoute();
  }
}

/** Wire the form. Returns whether the page's link asked to run at once (`run=1`). */
export function initGenerateUi(): { runOnLoad: boolean } {
  initImageInput();
  ui.routePreference.value = app.api.routePreference;
  ui.routePreference.addEventListener('change', () => {
    app.api.setRoutePreference(ui.routePreference.value as RoutePreference);
    void refreshRoute();
  });
  ui.endpoint.addEventListener('change', () => void refreshRoute());
  ui.size.addEventListener('change', showEndpointFields);
  ui.form.addEventListener('submit', (e) => {
    e.preventDefault();
    autoRunArmed = false;
    void generateNow();
  });
  ui.prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      ui.form.requestSubmit();
    } else if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
      const p = prompts.step(e.key === 'ArrowUp' ? 1 : -1);
      if (p !== null) {
        e.preventDefault();
        ui.prompt.value = p;
      }
    }
  });
  // Esc cancels a running generation from anywhere on the page (a lightbox, if open, takes Esc first).
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && running && !e.defaultPrevented && !document.querySelector('dialog[open]')) {
      e.preventDefault();
      running.abort();
    }
  });
  refreshRecentPrompts();
  ui.recentPrompts.addEventListener('change', () => {
    if (ui.recentPrompts.value) ui.prompt.value = ui.recentPrompts.value;
    ui.recentPrompts.value = '';
    ui.prompt.focus();
  });
  ui.copyCode.addEventListener('click', () => void copyAsCode());
  ui.seedRandom.addEventListener('click', () => {
    ui.seed.value = '';
    ui.seedLock.checked = false;
  });
  ui.seed.addEventListener('input', () => (ui.seedLock.checked = ui.seed.value !== ''));
  try {
    const shared = parseShareLink(location.search);
    if (!shared) return { runOnLoad: false };
    applySettings(shared.settings.endpoint, shared.settings);
    autoRunArmed = shared.run;
    return { runOnLoad: shared.run };
  } catch (e) {
    showError(e);
    return { runOnLoad: false };
  }
}

/** The bar under the form: a fraction, or indeterminate (null) while fal has not said how far it is. */
function setProgress(fraction: number | null): void {
  ui.runProgress.hidden = false;
  if (fraction === null) ui.runProgress.removeAttribute('value');
  else ui.runProgress.value = fraction;
}

function refreshRecentPrompts(): void {
  const first = ui.recentPrompts.options[0]!;
  ui.recentPrompts.replaceChildren(first, ...prompts.list().map((p) => new Option(p.length > 60 ? `${p.slice(0, 57)}…` : p, p)));
  ui.recentPrompts.hidden = ui.recentPrompts.options.length === 1;
}

/** Show, and copy when the clipboard allows, the fal-compatible call for the current settings. */
async function copyAsCode(): Promise<void> {
  const code = falSnippet(endpoint(), readInput(endpoint()));
  ui.codeView.textContent = code;
  ui.codeView.hidden = false;
  try {
    await navigator.clipboard.writeText(code);
    ui.copyCode.textContent = 'Copied';
  } catch {
    ui.copyCode.textContent = 'Shown below'; // no clipboard permission: the code is selectable in the page
  }
  setTimeout(() => (ui.copyCode.textContent = 'Copy as code'), 2000);
}
