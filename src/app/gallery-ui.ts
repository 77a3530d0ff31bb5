/**
 * Results and history: every generation is kept in IndexedDB (history-store.ts) and shown newest first with its
 * prompt, seed, size, steps, timings and where it ran; download, copy, use this seed, reuse settings, share link,
 * use as input, delete; export/import. If storing fails (quota), the result is still shown and the user is told
 * it was not kept — nothing is dropped silently.
 */
import type { FluxResult } from '../client/flux-api.js';
import type { HistoryEntry, NewHistoryEntry } from '../history/history-store.js';
import { ENDPOINT_SCHEMAS, type FluxEndpointId, type FluxRemoteInput } from '../client/request-vocabulary.js';
import { app } from './context.js';
import { errorText, showNotice, ui } from './dom.js';
import { withGenerationParameters } from '../image/metadata.js';
import { initLightbox, openLightbox } from './lightbox.js';
import { formatBytes, formatMs } from './format.js';
import { buildShareLink, type SharedSettings } from './share-link.js';

export interface GalleryActions {
  useSeed(seed: number): void;
  reuse(endpoint: FluxEndpointId, input: Record<string, unknown>): void;
  useAsInput(image: Blob | string): void;
}

let actions: GalleryActions;
/** Object URLs of shown history images, per entry id, revoked when the entry leaves the page. */
const entryUrls = new Map<string, string[]>();
const PAGE = 24;
let oldestShown: number | null = null;

export async function initGallery(a: GalleryActions): Promise<void> {
  actions = a;
  initLightbox();
  initHistoryTools();
  document.getElementById('history-export')!.addEventListener('click', () => void exportHistory());
  const file = document.getElementById('history-file') as HTMLInputElement;
  document.getElementById('history-import')!.addEventListener('click', () => file.click());
  file.addEventListener('change', () => {
    const f = file.files?.[0];
    file.value = '';
    if (f) void importHistory(f);
  });
  if (!app.history) {
    showNotice(ui.historyNotice, 'History is unavailable in this browser (no IndexedDB): results are shown but not kept.');
    return;
  }
  await showMore();
  await refreshUsage();
}

/** The search box's text, lower-cased; '' shows everything. */
let query = '';

async function showMore(): Promise<void> {
  const entries = query ? await searchHistory(query) : await app.history!.list({ limit: PAGE, ...(oldestShown !== null ? { before: oldestShown } : {}) });
  for (const e of entries) ui.results.append(await renderEntry(e));
  if (query) {
    if (!entries.length) ui.results.innerHTML = `<p class="empty" data-testid="no-matches">No results match “${escapeHtml(query)}”.</p>`;
    return;
  }
  if (entries.length) {
    ui.results.querySelector('.empty')?.remove();
    oldestShown = entries[entries.length - 1]!.createdAt;
  }
  ui.results.querySelector('.more')?.remove();
  if (entries.length === PAGE) {
    const more = document.createElement('button');
    more.type = 'button';
    more.className = 'secondary more';
    more.textContent = 'Show older results';
    more.addEventListener('click', () => void showMore());
    ui.results.append(more);
  }
}

async function refreshUsage(): Promise<void> {
  if (!app.history) return;
  const u = await app.history.usage();
  ui.historyUsage.textContent = u.entries ? `${u.entries} kept · ${formatBytes(u.bytes)}` : '';
}

/** Keep a finished generation and show it first. Returns the stored entry, or null if it could not be kept. */
export async function addResult(r: FluxResult, endpoint: FluxEndpointId, input: FluxRemoteInput): Promise<HistoryEntry | null> {
  const out = r.data;
  // Local images are object/data URLs (always readable); fal's may not allow CORS reads: keep their URL then.
  const images = await Promise.all(
    out.images.map(async (img, i) => {
      let blob: Blob | null = null;
      try {
        blob = await (await fetch(img.url)).blob();
      } catch {
        blob = null;
      }
      // fal's URL is kept too: "Use as input" can pass it back to fal without uploading the bytes again.
      const keepUrl = !blob || (r.route.target === 'remote' && /^https?:/.test(img.url));
      return { blob, ...(keepUrl ? { url: img.url } : {}), width: img.width, height: img.height, contentType: img.content_type, hidden: out.has_nsfw_concepts[i] === true };
    }),
  );
  const first = out.images[0];
  const entry: NewHistoryEntry = {
    endpoint,
    target: r.route.target,
    routeReason: r.route.reason,
    input: jsonInput(input, out.seed),
    prompt: out.prompt,
    seed: out.seed,
    steps: typeof input.num_inference_steps === 'number' ? input.num_inference_steps : ENDPOINT_SCHEMAS[endpoint].steps.default,
    width: first?.width ?? 0,
    height: first?.height ?? 0,
    timings: out.timings as Record<string, unknown>,
    safety: out.safety,
    has_nsfw_concepts: out.has_nsfw_concepts,
    images,
  };
  let stored: HistoryEntry | null = null;
  if (app.history) {
    try {
      stored = await app.history.add(entry);
      showNotice(ui.historyNotice, null);
    } catch (e) {
      showNotice(ui.historyNotice, `This result is shown but was not kept: ${errorText(e)}`, [{ label: 'Export history', run: () => void exportHistory() }]);
    }
  }
  const shown: HistoryEntry = stored ?? { ...entry, id: `unsaved-${Date.now()}`, createdAt: Date.now(), images: images.map((i) => ({ contentType: i.contentType, width: i.width, height: i.height, bytes: i.blob?.size ?? 0, ...(i.hidden ? { hidden: true } : {}), ...(i.url ? { url: i.url } : {}) })) };
  ui.results.querySelector('.empty')?.remove();
  ui.results.prepend(await renderEntry(shown, stored ? undefined : images.map((i) => i.blob)));
  app.api.revoke(r); // the gallery holds its own copies now
  await refreshUsage();
  return stored;
}

/** The input as JSON (the seed actually used; input images as a marker, they are not kept). */
function jsonInput(input: FluxRemoteInput, seed: number): Record<string, unknown> {
  const out: Record<string, unknown> = { ...input, seed };
  if (out.image_url !== undefined) out.image_url = typeof out.image_url === 'string' && !out.image_url.startsWith('data:') ? out.image_url : '(local image)';
  return out;
}

function settingsOf(e: HistoryEntry): SharedSettings {
  const i = e.input as FluxRemoteInput;
  return {
    endpoint: e.endpoint as FluxEndpointId,
    ...(i.prompt !== undefined ? { prompt: i.prompt } : {}),
    seed: e.seed,
    ...(i.num_inference_steps !== undefined ? { num_inference_steps: i.num_inference_steps } : {}),
    ...(i.image_size !== undefined ? { image_size: i.image_size } : {}),
    ...(i.num_images !== undefined ? { num_images: i.num_images } : {}),
    ...(i.output_format !== undefined ? { output_format: i.output_format } : {}),
    ...(i.guidance_scale !== undefined ? { guidance_scale: i.guidance_scale } : {}),
  };
}

export function shareUrl(e: HistoryEntry): string {
  return `${location.origin}${location.pathname}${buildShareLink(settingsOf(e), { run: true })}`;
}

function button(label: string, testid: string, run: () => void, title?: string): HTMLButtonElement {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'secondary small';
  b.textContent = label;
  b.dataset.testid = testid;
  if (title) b.title = title;
  b.addEventListener('click', run);
  return b;
}

function safetyText(e: HistoryEntry): string {
  if (e.safety.ran) return `safety: checked by ${e.safety.checker ?? 'a checker'}`;
  return `safety check not run (${e.safety.reason ?? 'no reason given'})`;
}

/** One history entry as a figure; `blobs` when the entry is not stored (shown from memory). */
async function renderEntry(e: HistoryEntry, blobs?: (Blob | null)[]): Promise<HTMLElement> {
  const fig = document.createElement('figure');
  fig.className = 'result';
  fig.dataset.id = e.id;
  fig.dataset.seed = String(e.seed);
  fig.dataset.target = e.target;
  fig.dataset.endpoint = e.endpoint;
  const urls: string[] = [];
  const shots = document.createElement('div');
  shots.className = 'shots';
  for (const [i, meta] of e.images.entries()) {
    const blob = blobs ? (blobs[i] ?? null) : await app.history!.image(e.id, i);
    let src = meta.url ?? '';
    if (blob) {
      src = URL.createObjectURL(blob);
      urls.push(src);
    }
    const shot = document.createElement('div');
    shot.className = 'shot';
    const img = document.createElement('img');
    img.src = src;
    if (meta.width) img.width = meta.width;
    if (meta.height) img.height = meta.height;
    img.alt = e.prompt || `${ENDPOINT_SCHEMAS[e.endpoint as FluxEndpointId]?.title ?? e.endpoint} result`;
    img.loading = 'lazy';
    img.dataset.testid = 'result-image';
    img.tabIndex = 0;
    img.title = 'Open full size (← → to browse)';
    img.addEventListener('click', () => openLightbox(img));
    img.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        openLightbox(img);
      }
    });
    shot.append(img);
    if (meta.hidden || e.has_nsfw_concepts[i]) {
      shot.classList.add('hidden-by-checker');
      const note = document.createElement('p');
      note.className = 'shot-note';
      note.dataset.testid = 'safety-hidden';
      note.textContent = 'Hidden by the safety checker. Generate again with the checker off to see it.';
      shot.append(note);
    }
    const tools = document.createElement('div');
    tools.className = 'shot-tools';
    const ext = meta.contentType === 'image/png' ? 'png' : 'jpg';
    const dl = document.createElement('a');
    dl.href = src;
    dl.download = `flux-${e.seed}-${i + 1}.${ext}`;
    dl.textContent = 'Download';
    dl.className = 'button-like small';
    dl.dataset.testid = 'download';
    dl.title = 'Download, with the prompt and settings inside the file';
    dl.addEventListener('click', (ev) => {
      ev.preventDefault();
      void downloadWithParameters(e, blob, src, meta.contentType, dl.download);
    });
    tools.append(
      dl,
      button('Copy', 'copy-image', () => void copyImage(blob, src)),
      button('Use as input', 'use-as-input', () => actions.useAsInput(meta.url ?? blob ?? src), 'Use for Redux or image-to-image'),
    );
    shot.append(tools);
    shots.append(shot);
  }
  entryUrls.set(e.id, urls);
  const cap = document.createElement('figcaption');
  const prompt = document.createElement('p');
  prompt.className = 'prompt';
  prompt.textContent = e.prompt || '(no prompt)';
  const meta = document.createElement('p');
  meta.className = 'meta';
  meta.dataset.testid = 'result-meta';
  const where = e.target === 'local' ? 'on this device' : 'on fal';
  const total = typeof e.timings.total_ms === 'number' ? ` · ${formatMs(e.timings.total_ms)} ${where}` : ` · ${where}`;
  const title = ENDPOINT_SCHEMAS[e.endpoint as FluxEndpointId]?.title ?? e.endpoint;
  meta.textContent = `${title} · seed ${e.seed} · ${e.width}×${e.height} · ${e.steps ?? '?'} steps${total} · ${safetyText(e)} · ${new Date(e.createdAt).toLocaleString()}`;
  const row = document.createElement('div');
  row.className = 'entry-actions';
  row.append(
    button('Use this seed', 'use-seed', () => actions.useSeed(e.seed)),
    button('Reuse settings', 'reuse-settings', () => actions.reuse(e.endpoint as FluxEndpointId, e.input)),
    button('Copy link', 'copy-link', () => void copyText(shareUrl(e), 'Link copied.')),
    button('Delete', 'delete-result', () => void deleteEntry(e.id, fig)),
  );
  const select = document.createElement('input');
  select.type = 'checkbox';
  select.className = 'select-entry';
  select.dataset.testid = 'select-entry';
  select.setAttribute('aria-label', `Select “${e.prompt || 'this result'}”`);
  select.hidden = !selecting;
  select.addEventListener('change', updateSelection);
  prompt.prepend(select);
  cap.append(prompt, meta, row);
  fig.append(shots, cap);
  return fig;
}

async function deleteEntry(id: string, fig: HTMLElement): Promise<void> {
  try {
    if (app.history && !id.startsWith('unsaved-')) await app.history.delete(id);
  } catch (e) {
    showNotice(ui.historyNotice, `Could not delete: ${errorText(e)}`);
    return;
  }
  for (const u of entryUrls.get(id) ?? []) URL.revokeObjectURL(u);
  entryUrls.delete(id);
  fig.remove();
  if (!ui.results.querySelector('figure')) ui.results.innerHTML = EMPTY_HTML;
  await refreshUsage();
}

/**
 * Save an image with its generation parameters inside (PNG text chunks, JPEG COM + Exif), so other tools and a
 * later visit can read back how it was made. A remote image that cannot be read (no CORS) is saved as it is.
 */
async function downloadWithParameters(e: HistoryEntry, blob: Blob | null, src: string, contentType: string, fileName: string): Promise<void> {
  let href = src;
  let made: string | null = null;
  try {
    const bytes = new Uint8Array(await (blob ?? (await (await fetch(src)).blob())).arrayBuffer());
    const params = { prompt: e.prompt, endpoint: e.endpoint, seed: e.seed, width: e.width, height: e.height, steps: e.steps ?? undefined, target: e.target, input: e.input };
    const withParams = withGenerationParameters(bytes, contentType, params);
    made = href = URL.createObjectURL(new Blob([withParams as Uint8Array<ArrayBuffer>], { type: contentType }));
  } catch (err) {
    console.warn('saving the image without its parameters:', err);
  }
  const a = document.createElement('a');
  a.href = href;
  a.download = fileName;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  if (made) setTimeout(() => URL.revokeObjectURL(made), 60_000);
}

async function copyText(text: string, done: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    showNotice(ui.historyNotice, done);
  } catch (e) {
    showNotice(ui.historyNotice, `Copying failed (${errorText(e)}). The link: ${text}`);
  }
}

/** Clipboard images must be PNG: other formats are converted through a canvas. */
async function copyImage(blob: Blob | null, src: string): Promise<void> {
  try {
    let b = blob ?? (await (await fetch(src)).blob());
    if (b.type !== 'image/png') {
      const bmp = await createImageBitmap(b);
      const canvas = new OffscreenCanvas(bmp.width, bmp.height);
      canvas.getContext('2d')!.drawImage(bmp, 0, 0);
      b = await canvas.convertToBlob({ type: 'image/png' });
    }
    await navigator.clipboard.write([new ClipboardItem({ 'image/png': b })]);
    showNotice(ui.historyNotice, 'Image copied.');
  } catch (e) {
    showNotice(ui.historyNotice, `Copying the image failed: ${errorText(e)}`);
  }
}

async function exportHistory(): Promise<void> {
  if (!app.history) return;
  try {
    const zip = await app.history.export();
    const a = document.createElement('a');
    a.href = URL.createObjectURL(zip);
    a.download = `flux-webgpu-history-${new Date().toISOString().slice(0, 10)}.zip`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
  } catch (e) {
    showNotice(ui.historyNotice, `Export failed: ${errorText(e)}`);
  }
}

async function importHistory(file: Blob): Promise<void> {
  if (!app.history) return;
  try {
    const r = await app.history.import(file);
    showNotice(ui.historyNotice, `Imported ${r.added} result(s)${r.skipped ? `, ${r.skipped} already here` : ''}.`);
    for (const fig of ui.results.querySelectorAll('figure')) {
      for (const u of entryUrls.get((fig as HTMLElement).dataset.id ?? '') ?? []) URL.revokeObjectURL(u);
      fig.remove();
    }
    entryUrls.clear();
    oldestShown = null;
    await showMore();
    await refreshUsage();
  } catch (e) {
    showNotice(ui.historyNotice, `Import failed: ${errorText(e)}`);
  }
}

const EMPTY_HTML = '<p class="empty">Images you generate appear here, and stay here across visits.</p>';
let selecting = false;

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Every stored entry whose prompt contains `q` (case-insensitive), newest first. Metadata only: images load per entry. */
async function searchHistory(q: string): Promise<HistoryEntry[]> {
  const all = await app.history!.list();
  return all.filter((e) => e.prompt.toLowerCase().includes(q));
}

/** Drop every shown entry (revoking its object URLs) and show the first page again, for the current search. */
async function reloadResults(): Promise<void> {
  for (const urls of entryUrls.values()) for (const u of urls) URL.revokeObjectURL(u);
  entryUrls.clear();
  oldestShown = null;
  ui.results.innerHTML = EMPTY_HTML;
  if (app.history) await showMore();
  updateSelection();
}

function selectedFigures(): HTMLElement[] {
  return [...ui.results.querySelectorAll<HTMLInputElement>('[data-testid="select-entry"]:checked')].map((c) => c.closest('figure')!);
}

function updateSelection(): void {
  const del = document.getElementById('history-delete-selected') as HTMLButtonElement;
  const n = selectedFigures().length;
  del.hidden = !selecting;
  del.disabled = n === 0;
  del.textContent = n ? `Delete selected (${n})` : 'Delete selected';
}

function initHistoryTools(): void {
  const search = document.getElementById('history-search') as HTMLInputElement;
  let timer: ReturnType<typeof setTimeout> | undefined;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      query = search.value.trim().toLowerCase();
      void reloadResults();
    }, 200);
  });
  const selectButton = document.getElementById('history-select') as HTMLButtonElement;
  selectButton.addEventListener('click', () => {
    selecting = !selecting;
    selectButton.setAttribute('aria-pressed', String(selecting));
    selectButton.textContent = selecting ? 'Done' : 'Select';
    for (const c of ui.results.querySelectorAll<HTMLInputElement>('[data-testid="select-entry"]')) {
      c.hidden = !selecting;
      if (!selecting) c.checked = false;
    }
    updateSelection();
  });
  document.getElementById('history-delete-selected')!.addEventListener('click', () => void deleteSelected());
  document.getElementById('history-clear')!.addEventListener('click', () => void clearHistory());
}

async function deleteSelected(): Promise<void> {
  const figs = selectedFigures();
  if (!figs.length || !confirm(`Delete ${figs.length} result${figs.length > 1 ? 's' : ''} from this browser? This cannot be undone (Export first to keep a copy).`)) return;
  for (const fig of figs) await deleteEntry(fig.dataset.id!, fig);
  updateSelection();
}

async function clearHistory(): Promise<void> {
  if (!app.history) return;
  const { entries } = await app.history.usage();
  if (!entries || !confirm(`Delete all ${entries} results kept in this browser? This cannot be undone (Export first to keep a copy).`)) return;
  try {
    await app.history.clear();
  } catch (e) {
    showNotice(ui.historyNotice, `Could not clear the history: ${errorText(e)}`);
    return;
  }
  await reloadResults();
  await refreshUsage();
}
