/** The page's elements, and the few helpers every part of the UI uses to report in place. */
import { isFluxError } from '../errors.js';

export const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

export const ui = {
  device: $('device'),
  appNotice: $('app-notice'),
  packs: $<HTMLUListElement>('packs'),
  modelProgress: $('model-progress'),
  modelProgressBar: $<HTMLProgressElement>('model-progress-bar'),
  modelProgressText: $('model-progress-text'),
  modelStatus: $('model-status'),
  deviceDetails: $('device-details'),
  form: $<HTMLFormElement>('generate-form'),
  prompt: $<HTMLTextAreaElement>('prompt'),
  size: $<HTMLSelectElement>('image-size'),
  width: $<HTMLInputElement>('width'),
  height: $<HTMLInputElement>('height'),
  steps: $<HTMLInputElement>('steps'),
  seed: $<HTMLInputElement>('seed'),
  seedLock: $<HTMLInputElement>('seed-lock'),
  seedRandom: $<HTMLButtonElement>('seed-random'),
  numImages: $<HTMLInputElement>('num-images'),
  guidance: $<HTMLInputElement>('guidance'),
  strength: $<HTMLInputElement>('strength'),
  safety: $<HTMLInputElement>('safety'),
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
  runProgress: $<HTMLProgressElement>('run-progress'),
  copyCode: $<HTMLButtonElement>('copy-code'),
  codeView: $('code-view'),
  recentPrompts: $<HTMLSelectElement>('recent-prompts'),
  error: $('error'),
  results: $('results'),
  historyUsage: $('history-usage'),
  historyNotice: $('history-notice'),
};

export function errorText(e: unknown): string {
  return isFluxError(e) || e instanceof Error ? e.message : String(e);
}

/** Show an error under the form; a field error also marks and focuses its control. */
export function showError(e: unknown): void {
  ui.error.textContent = errorText(e);
  ui.error.hidden = false;
  if (isFluxError(e) && e.field) {
    const name = e.field.split('.')[0]!;
    const input = name === 'image_url' ? ui.imageDrop : ui.form.querySelector<HTMLElement>(`[name="${CSS.escape(name)}"]`);
    input?.setAttribute('aria-invalid', 'true');
    input?.focus();
  }
}

export function clearError(): void {
  ui.error.hidden = true;
  ui.error.textContent = '';
  for (const el of ui.form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

/** A notice line with optional action buttons; null text hides it. */
export function showNotice(el: HTMLElement, text: string | null, actions: { label: string; testid?: string; run: () => void }[] = []): void {
  el.replaceChildren();
  el.hidden = text === null;
  if (text === null) return;
  el.append(text);
  for (const a of actions) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'secondary small';
    b.textContent = a.label;
    if (a.testid) b.dataset.testid = a.testid;
    b.addEventListener('click', a.run);
    el.append(' ', b);
  }
}
