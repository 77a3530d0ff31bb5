/**
 * The model manager: packs offered and installed (size, state, install progress with speed and ETA, pause and
 * resume, verify, delete), browser storage used vs quota and persistence, and the device report (adapter,
 * features, limits, the capacity decision).
 */
import type { InstalledPackInfo, InstallProgress, LocalPackFile, PackInfo } from '../client/flux-client.js';
import { isFluxError } from '../errors.js';
import { CATALOG, checkEntryForDevice, FIRST_RUN_PACK, normalizePackUrl, type CatalogEntry } from './catalog.js';
import { app } from './context.js';
import { $, clearError, errorText, showError, ui } from './dom.js';
import { dropEntries, walkEntries } from './dropped-files.js';
import { formatBytes } from './format.js';

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
  /** Its catalog entry, if listed (stated size, license, required features). */
  entry?: CatalogEntry;
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

export async function refreshPacks(): Promise<PackInfo[]> {
  const installed = await app.client.listPacks();
  const rows: PackRow[] = CATALOG.map((c) => ({
    id: c.id,
    name: c.name,
    note: `${formatBytes(c.sizeBytes)} · license ${c.license}${c.requiredFeatures.length ? ` · needs ${c.requiredFeatures.join(', ')}` : ''}. ${c.note}`,
    url: c.url,
    entry: c,
    info: installed.find((p) => p.id === c.id),
  }));
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
      else void installFromUrl(row.url, row.entry);
    };
    if (info?.state === 'complete') {
      if (app.client.loadedModel?.packId !== row.id) button('Load', 'load-pack', () => void loadPack(row.id));
      if (info.updatePending) button('Finish update', 'install-pack', reinstall);
      button('Verify', 'verify-pack', () => void verify(row.id));
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
  void refreshEmptyState(installed);
  return installed;
}

/** One line over the list while nothing (or only the test pack) is installed: what happens, and how to get pictures. */
let emptySeq = 0;
async function refreshEmptyState(installed: PackInfo[]): Promise<void> {
  const seq = ++emptySeq; // a slower earlier refresh must not overwrite a later one
  const el = $('models-empty');
  const onlyTest = installed.length > 0 && installed.every((p) => CATALOG.find((c) => c.id === p.id)?.testPack === true);
  const real = 'for real pictures, install a FLUX.1 [schnell] pack from a URL below (docs/hosting.md says how to publish one)';
  if (installed.length > 0 && !onlyTest) {
    el.hidden = true;
    return;
  }
  let text: string;
  if (onlyTest) text = `Only the test pack is installed: it makes abstract patterns; ${real}.`;
  else {
    const [info, fal] = await Promise.all([app.client.info(), app.api.falAvailability()]);
    const size = formatBytes(FIRST_RUN_PACK.sizeBytes);
    if (!info.webgpu) text = `Nothing can run in this browser (no usable WebGPU), so ${fal.available ? 'FLUX.1 [schnell] goes to fal' : 'nothing can be generated here: fal is unavailable too'}.`;
    else if (fal.available && app.api.routePreference !== 'local') {
      text = `Nothing is installed: Generate sends FLUX.1 [schnell] to fal until a model is installed; install the test pack (${size}, offline, abstract patterns) or, ${real}.`;
    } else text = `Nothing is installed: the built-in test pack (${size}, abstract patterns, not pictures) is installed on first use so this page can generate; ${real}.`;
  }
  if (seq !== emptySeq) return;
  el.textContent = text;
  el.hidden = false;
}

/** Browser storage used/allowed and whether it is persistent, under the pack list. */
async function refreshStorage(persisted?: boolean | null): Promise<void> {
  const el = $('storage-status');
  try {
    const s = await app.client.storageEstimate();
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

/**
 * Run one install (URL or folder) with progress and cancel, then load the pack. `fail` shows an error (default:
 * under the form). Resolves true when the pack was installed and loaded.
 */
async function runInstall(
  verb: string,
  start: (onProgress: (e: InstallProgress) => void, replace: boolean) => Promise<InstalledPackInfo>,
  fail: (e: unknown) => void = showError,
): Promise<boolean> {
  if (installing) return false;
  installing = true;
  clearError();
  showInstallError(null);
  const cancel = $<HTMLButtonElement>('cancel-install');
  cancel.hidden = false;
  let id: string | null = null;
  try {
    await refreshPacks(); // disables the other install buttons
    setProgress(0, 'Starting…');
    const onProgress = (e: InstallProgress): void => showInstallProgress(e, verb);
    let info: InstalledPackInfo;
    try {
      info = await start(onProgress, false);
    } catch (e) {
      // A pack with this id is stored from another URL or folder: replace it only if the user says so.
      if (!(isFluxError(e) && e.details?.reason === 'other_source' && confirm(`${e.message}\n\nReplace the stored pack?`))) throw e;
      info = await start(onProgress, true);
    }
    id = info.id;
    setProgress(null, '');
  } catch (e) {
    setProgress(null, '');
    if (!(isFluxError(e) && e.code === 'cancelled')) fail(e);
    else ui.modelStatus.textContent = 'Install paused; what was stored is kept — resume it from the list.';
  } finally {
    installing = false;
    cancel.hidden = true;
  }
  await refreshPacks();
  if (id === null) return false;
  await loadPack(id);
  return app.client.loadedModel?.packId === id;
}

function showInstallError(e: unknown): void {
  const el = $('install-error');
  el.hidden = e === null;
  el.textContent = e === null ? '' : errorText(e);
}

/**
 * A catalog entry's stated needs are checked before anything is fetched; the installer then fetches and validates
 * the manifest (404, CORS, a bad manifest each say so) and refuses a pack this GPU cannot run (requireRunnable)
 * before any download. Storage quota is checked by the installer too.
 */
function installFromUrl(url: string, entry?: CatalogEntry, fail?: (e: unknown) => void): Promise<boolean> {
  return runInstall(
    'Downloading',
    async (onProgress, replace) => {
      if (entry && !replace) {
        setProgress(0, 'Checking the pack…');
        checkEntryForDevice(entry, await app.client.info());
      }
      return app.client.installPack(url, onProgress, { replace, requireRunnable: true });
    },
    fail,
  );
}

/**
 * First run: nothing is installed, so the pack that ships with the app is installed and loaded, with progress.
 * Resolves true when it is loaded.
 */
export function installFirstRunPack(): Promise<boolean> {
  ui.modelStatus.textContent = `First run: installing ${FIRST_RUN_PACK.name} (${formatBytes(FIRST_RUN_PACK.sizeBytes)}), which ships with the app…`;
  return installFromUrl(FIRST_RUN_PACK.url, FIRST_RUN_PACK);
}

function installFromFiles(files: LocalPackFile[]): Promise<boolean> {
  return runInstall('Copying', (onProgress, replace) => app.client.installPackFromFiles(files, onProgress, { replace }));
}

/** "Install from folder…", the folder drop zone on the Model card, and Cancel. */
export function initInstallUi(): void {
  const input = $<HTMLInputElement>('folder-input');
  $('install-folder').addEventListener('click', () => input.click());
  input.addEventListener('change', () => {
    const files = Array.from(input.files ?? []);
    input.value = '';
    if (files.length) void installFromFiles(files);
  });
  $('cancel-install').addEventListener('click', () => void app.client.cancelInstall());
  const urlForm = $<HTMLFormElement>('install-url-form');
  const urlInput = $<HTMLInputElement>('install-url');
  urlInput.addEventListener('input', () => urlInput.removeAttribute('aria-invalid'));
  urlForm.addEventListener('submit', (e) => {
    e.preventDefault();
    let url: string;
    try {
      url = normalizePackUrl(urlInput.value, location.href);
    } catch (err) {
      urlInput.setAttribute('aria-invalid', 'true');
      showInstallError(err);
      return;
    }
    const listed = CATALOG.find((c) => new URL(c.url, location.href).href === url);
    void installFromUrl(url, listed, (err) => {
      urlInput.setAttribute('aria-invalid', 'true');
      showInstallError(err);
    });
  });
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

export async function loadPack(id: string): Promise<void> {
  clearError();
  ui.modelStatus.textContent = 'Loading model…';
  try {
    const info = await app.client.loadPack(id, (e) => {
      if (e.status === 'load') setProgress(e.index / e.total, `Loading ${e.component} (${e.index}/${e.total})`);
    });
    setProgress(null, '');
    ui.modelStatus.textContent = `Loaded: ${info.name}${info.testPack ? ' — test pack: random weights, abstract output' : ''}`;
    const capacity = (await app.client.info()).capacity;
    if (capacity) ui.modelStatus.title = `${capacity.reason} ${capacity.checks.map((c) => `${c.name}: ${c.detail}`).join('; ')}`;
    ui.modelStatus.dataset.loaded = info.packId ?? '';
  } catch (e) {
    setProgress(null, '');
    ui.modelStatus.textContent = 'No model loaded.';
    showError(e);
  }
  void refreshDeviceReport(); // the capacity decision, or why there is none
  await refreshPacks();
  await app.refreshRoute();
}

async function removePack(id: string): Promise<void> {
  if (!confirm('Delete this model pack from this browser? You can install it again later.')) return;
  await app.client.deletePack(id);
  if (!app.client.loadedModel) {
    ui.modelStatus.textContent = 'No model loaded.';
    delete ui.modelStatus.dataset.loaded;
  }
  await refreshPacks();
  await app.refreshRoute();
}


/** Re-hash every stored file of a pack against its manifest; damaged parts show as such (Repair re-fetches them). */
async function verify(id: string): Promise<void> {
  clearError();
  setProgress(0, 'Verifying…');
  try {
    const checks = await app.client.verifyPack(id);
    const bad = checks.filter((c) => !c.ok);
    setProgress(null, '');
    ui.modelStatus.textContent = bad.length ? `Verification found ${bad.length} damaged file(s): ${bad.map((c) => c.path).join(', ')}. Use Repair.` : `Verified: all ${checks.length} files are intact.`;
  } catch (e) {
    setProgress(null, '');
    showError(e);
  }
  await refreshPacks();
}

/** The device report: adapter, features, limits that matter for FLUX, and the capacity decision. */
export async function refreshDeviceReport(): Promise<void> {
  const dl = ui.deviceDetails;
  dl.replaceChildren();
  const row = (term: string, value: string) => {
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    dd.textContent = value;
    dl.append(dt, dd);
  };
  try {
    const info = await app.client.info();
    row('onnxruntime-web', `${info.ortVersion} (${info.ortBuild ?? 'unknown'} build${info.crossOriginIsolated ? ', threads' : ', single-threaded'})`);
    if (!info.webgpu) {
      row('WebGPU', `unavailable: ${info.webgpuError ?? 'unknown reason'}`);
      return;
    }
    const a = info.webgpu.adapter;
    row('Adapter', [a.vendor, a.architecture, a.description].filter(Boolean).join(' · ') + (a.isFallbackAdapter ? ' (software)' : ''));
    row('Features', info.webgpu.features.join(', ') || 'none beyond the baseline');
    const lim = info.webgpu.limits as Record<string, number | undefined>;
    const bytes = (k: string) => (lim[k] === undefined ? 'unknown' : formatBytes(lim[k]!));
    row('Limits', `maxBufferSize ${bytes('maxBufferSize')}, maxStorageBufferBindingSize ${bytes('maxStorageBufferBindingSize')}`);
    if (info.gpuMemoryLimitBytes !== null) row('GPU memory limit', formatBytes(info.gpuMemoryLimitBytes));
    const c = info.capacity;
    if (c) {
      row('Capacity', `${c.canRunLocally ? 'can run locally' : 'cannot run locally'} — ${c.reason}`);
      for (const check of c.checks) row(`  ${check.name}`, `${check.ok ? 'ok' : 'fails'}: ${check.detail}`);
    } else row('Capacity', 'decided when a model is loaded');
  } catch (e) {
    row('Error', e instanceof Error ? e.message : String(e));
  }
}
