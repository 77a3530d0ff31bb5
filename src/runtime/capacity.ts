/**
 * Can this device run this pack locally, and how? The answer combines what the pack needs (from its manifest:
 * weight bytes per component, float16, WebGPU features, the largest tensor) with what the device offers (adapter
 * features and limits, and a measured allocation test), and picks how many components stay resident:
 *
 *   all-resident        everything loaded once (fastest)
 *   encoders-transient  CLIP/T5 loaded per new prompt, released before the transformer runs
 *   all-transient       one component on the GPU at a time (slowest, smallest)
 *
 * WebGPU does not report free GPU memory, so the budget is measured: allocate buffers up to what the plan needs
 * (never more) inside an out-of-memory error scope, then free them. Drivers may commit memory lazily, so this is a
 * lower bound on failure, not a guarantee; out-of-memory at run time is still handled (docs/runtime.md).
 */
import { FluxError } from '../errors.js';
import { componentGraphs, type ComponentName, type PackManifest } from '../pack/manifest.js';
import { activationsFor, type ActivationArchs, type ComponentActivations } from './activation-memory.js';

export type ResidencyPlan = 'all-resident' | 'encoders-transient' | 'all-transient';

export interface PackNeeds {
  /** Weight bytes per component (graph + external data files). */
  componentBytes: Partial<Record<ComponentName, number>>;
  /** WebGPU features any component needs (float16 → shader-f16). */
  requiredFeatures: string[];
  /** Largest single tensor, when the manifest says (needs maxStorageBufferBindingSize ≥ it). */
  maxTensorBytes: number | null;
}

export interface DeviceOffer {
  features: readonly string[];
  limits: Readonly<Record<string, number>>;
  /** Measured allocatable bytes (up to what was asked for), or null if no test ran. */
  allocatableBytes: number | null;
  /** A user-set cap on GPU memory, if any. */
  userLimitBytes?: number | null;
}

export interface CapacityCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface CapacityDecision {
  canRunLocally: boolean;
  /** One sentence for people: why, or why not. */
  reason: string;
  plan: ResidencyPlan | null;
  /** Components kept loaded under the plan. */
  resident: ComponentName[];
  /** Bytes the chosen (or smallest) plan needs, activations included. */
  neededBytes: number;
  budgetBytes: number | null;
  /** The activation reserve included in neededBytes. */
  reserveBytes: number;
  checks: CapacityCheck[];
}

const GB = 1024 ** 3;
const fmt = (b: number) => (b >= GB ? `${(b / GB).toFixed(1)} GB` : `${Math.ceil(b / 1024 ** 2)} MB`);

/** Activations and workspace on top of the weights: a quarter of the largest component, at least 64 MB. */
export function activationBytes(largestComponentBytes: number): number {
  return Math.max(64 * 1024 ** 2, largestComponentBytes / 4);
}

export function packNeeds(m: PackManifest): PackNeeds {
  const size = new Map(m.files.map((f) => [f.path, f.size]));
  const componentBytes: PackNeeds['componentBytes'] = {};
  const features = new Set<string>();
  let maxTensorBytes: number | null = null;
  for (const [name, spec] of Object.entries(m.components) as [ComponentName, NonNullable<PackManifest['components'][ComponentName]>][]) {
    componentBytes[name] = componentGraphs(spec).reduce(
      (s, g) => s + (size.get(g.graph) ?? 0) + (g.externalData ?? []).reduce((t, x) => t + (size.get(x.file) ?? 0), 0),
      0,
    );
    if (spec.dtype === 'float16') features.add('shader-f16');
    for (const f of spec.requiredFeatures ?? []) features.add(f);
    if (spec.maxTensorBytes !== undefined) maxTensorBytes = Math.max(maxTensorBytes ?? 0, spec.maxTensorBytes);
  }
  return { componentBytes, requiredFeatures: [...features].sort(), maxTensorBytes };
}

/**
 * Bytes each plan needs: resident weights + the largest transient stage + activations. The safety checker (small,
 * run right after the VAE) is resident with the VAE; under all-transient it is one more component loaded alone.
 */
export function planBytes(needs: PackNeeds): Record<ResidencyPlan, number> {
  const b = (n: ComponentName) => needs.componentBytes[n] ?? 0;
  const largest = Math.max(...Object.values(needs.componentBytes).map((x) => x ?? 0), 0);
  const act = activationBytes(largest);
  const decode = b('vae_decoder') + b('safety_checker');
  return {
    'all-resident': b('clip') + b('t5') + b('transformer') + decode + act,
    'encoders-transient': Math.max(b('transformer') + decode, b('transformer') + b('clip') + b('t5')) + act,
    'all-transient': largest + act,
  };
}

const PLAN_RESIDENT: Record<ResidencyPlan, ComponentName[]> = {
  'all-resident': ['clip', 't5', 'transformer', 'vae_decoder'],
  'encoders-transient': ['transformer', 'vae_decoder'],
  'all-transient': [],
};

/** The plan's resident components; the safety checker, when the pack has one, stays with the VAE. */
function residentFor(plan: ResidencyPlan, needs: PackNeeds): ComponentName[] {
  const r = [...PLAN_RESIDENT[plan]];
  if (needs.componentBytes.safety_checker !== undefined && r.includes('vae_decoder')) r.push('safety_checker');
  return r;
}

/** Decide from needs and offer. Pure, so it is unit-tested; the worker supplies the measured offer. */
export function decideCapacity(needs: PackNeeds, offer: DeviceOffer): CapacityDecision {
  const checks: CapacityCheck[] = [];
  const missing = needs.requiredFeatures.filter((f) => !offer.features.includes(f));
  checks.push({
    name: 'features',
    ok: missing.length === 0,
    detail: missing.length ? `missing ${missing.join(', ')}` : needs.requiredFeatures.length ? `has ${needs.requiredFeatures.join(', ')}` : 'no extra features needed',
  });
  const binding = offer.limits.maxStorageBufferBindingSize ?? 0;
  if (needs.maxTensorBytes !== null) {
    checks.push({
      name: 'maxStorageBufferBindingSize',
      ok: binding >= needs.maxTensorBytes,
      detail: `${fmt(binding)} available, largest tensor ${fmt(needs.maxTensorBytes)}`,
    });
  }
  const sizes = planBytes(needs);
  const reserveBytes = activationBytes(Math.max(...Object.values(needs.componentBytes).map((x) => x ?? 0), 0));
  const budgets = [offer.allocatableBytes, offer.userLimitBytes ?? null].filter((x): x is number => x !== null);
  const budget = budgets.length ? Math.min(...budgets) : null;
  const plans: ResidencyPlan[] = ['all-resident', 'encoders-transient', 'all-transient'];
  const plan = budget === null ? 'all-resident' : (plans.find((p) => sizes[p] <= budget) ?? null);
  checks.push({
    name: 'memory',
    ok: plan !== null,
    detail:
      budget === null
        ? `no allocation test; assuming ${fmt(sizes['all-resident'])} fits`
        : `${fmt(budget)} allocatable${offer.userLimitBytes ? ` (limit ${fmt(offer.userLimitBytes)})` : ''}; needs ${fmt(sizes['all-resident'])} all resident, ${fmt(sizes['all-transient'])} one component at a time`,
  });
  const failed = checks.filter((c) => !c.ok);
  if (failed.length) {
    const why = failed.map((c) => (c.name === 'memory' ? `it needs at least ${fmt(sizes['all-transient'])} of GPU memory and ${fmt(budget!)} could be allocated` : c.name === 'features' ? `the GPU lacks ${missing.join(', ')}` : `the largest tensor (${fmt(needs.maxTensorBytes!)}) exceeds the GPU's binding limit (${fmt(binding)})`));
    return { canRunLocally: false, reason: `This device cannot run the pack locally: ${why.join('; ')}.`, plan: null, resident: [], neededBytes: sizes['all-transient'], budgetBytes: budget, reserveBytes, checks };
  }
  const chosen = plan!;
  const how =
    chosen === 'all-resident'
      ? 'the whole model stays on the GPU'
      : chosen === 'encoders-transient'
        ? 'text encoders are loaded per new prompt to save memory'
        : 'one component is on the GPU at a time (slower)';
  return {
    canRunLocally: true,
    reason: `Runs locally: ${how}.`,
    plan: chosen,
    resident: residentFor(chosen, needs),
    neededBytes: sizes[chosen],
    budgetBytes: budget,
    reserveBytes,
    checks,
  };
}

/** The backend's memory options for a decision: a budget to evict by, unless everything stays resident. */
export function memoryOptions(decision: CapacityDecision, needs: PackNeeds): { budgetBytes: number; componentBytes: PackNeeds['componentBytes']; reserveBytes: number } | undefined {
  if (decision.budgetBytes === null || decision.plan === 'all-resident' || !decision.canRunLocally) return undefined;
  return { budgetBytes: decision.budgetBytes, componentBytes: needs.componentBytes, reserveBytes: decision.reserveBytes };
}

/** GPUBufferUsage.STORAGE (the constant, so this module also loads where WebGPU globals are absent). */
const STORAGE_USAGE = 0x80;

/**
 * Allocate up to `targetBytes` in buffers of at most `chunkBytes` inside an out-of-memory error scope, then free
 * them; returns how many bytes were allocated before the first failure (= targetBytes when all succeeded).
 */
export async function measureAllocatable(device: GPUDevice, targetBytes: number, chunkBytes = 256 * 1024 ** 2): Promise<number> {
  // Plain arithmetic: byte counts exceed 2^31, where JS bitwise operators wrap.
  const chunk = Math.max(4, Math.floor(Math.min(chunkBytes, device.limits.maxBufferSize) / 4) * 4);
  const buffers: GPUBuffer[] = [];
  let allocated = 0;
  try {
    while (allocated < targetBytes) {
      const size = Math.min(chunk, Math.ceil((targetBytes - allocated) / 4) * 4);
      device.pushErrorScope('out-of-memory');
      device.pushErrorScope('validation');
      let buffer: GPUBuffer;
      try {
        buffer = device.createBuffer({ size, usage: STORAGE_USAGE });
      } catch {
        await device.popErrorScope();
        await device.popErrorScope();
        break;
      }
      const validation = await device.popErrorScope();
      const oom = await device.popErrorScope();
      buffers.push(buffer);
      if (oom || validation) break;
      allocated += size;
    }
  } finally {
    for (const b of buffers) b.destroy();
  }
  return allocated;
}

// ---- activations: does this request's batch and image size fit? ---------------------------------------------

/** What a request's activations are checked against: the adapter's buffer limits and the memory budget. */
export interface ActivationOffer {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  /** Bytes weights and activations may use together (the probe's budget); null: not checked. */
  budgetBytes: number | null;
}

export interface ActivationRequest {
  batch: number;
  width: number;
  height: number;
}

export interface ActivationCheck extends ComponentActivations {
  /** Weight bytes on the GPU while this component runs, under the plan. */
  weightsBytes: number;
  /** Which limit it breaks, if any. */
  over: 'buffer' | 'memory' | null;
}

export interface ActivationDecision {
  fits: boolean;
  /** The request field to blame: image_size, or num_images when one image fits but the batch does not. */
  field: 'image_size' | 'num_images' | null;
  /** One sentence naming the field and the numbers (empty when it fits). */
  reason: string;
  checks: ActivationCheck[];
  /** The largest size with the requested aspect ratio (multiples of 16) that fits at this batch, if any. */
  largestFit: { width: number; height: number } | null;
  /** With num_images over: the most images that fit at this size. */
  maxBatch: number | null;
}

/** Model dimensions that turn a request into activation shapes (from the pack's config). */
export interface ActivationModel {
  archs: ActivationArchs;
  t5Length: number;
  clipLength: number;
  vaeScaleFactor: number;
  bytesPerValue?: number;
}

/** Decimal GB/MB, as the issue's figures are given. */
export function formatBytes(b: number): string {
  if (b >= 1e9) return `${(b / 1e9).toFixed(2)} GB`;
  if (b >= 1e6) return `${(b / 1e6).toFixed(1)} MB`;
  return `${Math.ceil(b / 1e3)} kB`;
}

/** Adapter limits are powers of two: GiB/MiB when exact, else decimal. */
export function formatLimit(b: number): string {
  if (b >= 2 ** 30 && b % 2 ** 30 === 0) return `${b / 2 ** 30} GiB`;
  if (b >= 2 ** 20 && b % 2 ** 20 === 0) return `${b / 2 ** 20} MiB`;
  return formatBytes(b);
}

/** Weight bytes on the GPU while each component runs, under a plan (the same accounting as planBytes). */
export function weightsDuring(plan: ResidencyPlan, needs: PackNeeds): Record<ComponentName, number> {
  const b = (n: ComponentName) => needs.componentBytes[n] ?? 0;
  const all = b('clip') + b('t5') + b('transformer') + b('vae_decoder') + b('safety_checker');
  const decode = b('transformer') + b('vae_decoder') + b('safety_checker');
  const encode = b('transformer') + b('clip') + b('t5');
  const names: ComponentName[] = ['clip', 't5', 'transformer', 'vae_decoder', 'safety_checker'];
  const out = {} as Record<ComponentName, number>;
  for (const n of names) {
    out[n] = plan === 'all-resident' ? all : plan === 'all-transient' ? b(n) : n === 'clip' || n === 't5' ? encode : decode;
  }
  return out;
}

function checkShape(model: ActivationModel, r: ActivationRequest, offer: ActivationOffer, weights: Record<ComponentName, number>): ActivationCheck[] {
  const bufferLimit = Math.min(offer.maxBufferSize, offer.maxStorageBufferBindingSize);
  const acts = activationsFor(model.archs, {
    batch: r.batch,
    width: r.width,
    height: r.height,
    t5Length: model.t5Length,
    clipLength: model.clipLength,
    vaeScaleFactor: model.vaeScaleFactor,
    ...(model.bytesPerValue ? { bytesPerValue: model.bytesPerValue } : {}),
  });
  return acts.map((a) => {
    const weightsBytes = weights[a.component] ?? 0;
    const over = a.peakBufferBytes > bufferLimit ? 'buffer' : offer.budgetBytes !== null && weightsBytes + a.totalBytes > offer.budgetBytes ? 'memory' : null;
    return { ...a, weightsBytes, over };
  });
}

/** The GPU memory a request needs at its worst component (weights during it + its activations). */
export function activationMemoryNeed(model: ActivationModel, r: ActivationRequest, weights: Record<ComponentName, number>): number {
  const checks = checkShape(model, r, { maxBufferSize: Infinity, maxStorageBufferBindingSize: Infinity, budgetBytes: null }, weights);
  return Math.max(...checks.map((c) => c.weightsBytes + c.totalBytes));
}

/**
 * Check a request against the adapter before anything runs. On failure the reason names the field and the
 * numbers, e.g. "image_size: 1024×1024 needs a 1.82 GB buffer (transformer attention scores [1, 24, 4352, 4352]);
 * this GPU allows 1 GiB per buffer (maxBufferSize); the largest size that fits is 768×768."
 */
export function decideActivations(model: ActivationModel, r: ActivationRequest, offer: ActivationOffer, weights: Record<ComponentName, number>): ActivationDecision {
  const checks = checkShape(model, r, offer, weights);
  const failed = checks.find((c) => c.over === 'buffer') ?? checks.find((c) => c.over === 'memory');
  if (!failed) return { fits: true, field: null, reason: '', checks, largestFit: null, maxBatch: null };
  const fits = (q: ActivationRequest) => checkShape(model, q, offer, weights).every((c) => c.over === null);
  const step = 2 * model.vaeScaleFactor;
  let maxBatch: number | null = null;
  if (r.batch > 1) for (let b = r.batch - 1; b >= 1 && maxBatch === null; b--) if (fits({ ...r, batch: b })) maxBatch = b;
  let largestFit: ActivationDecision['largestFit'] = null;
  const long = Math.max(r.width, r.height);
  for (let L = Math.floor(long / step) * step - (long % step === 0 ? step : 0); L >= step && !largestFit; L -= step) {
    const other = Math.max(step, Math.round((L * Math.min(r.width, r.height)) / long / step) * step);
    const size = r.width >= r.height ? { width: L, height: other } : { width: other, height: L };
    if (fits({ ...r, ...size })) largestFit = size;
  }
  const field = maxBatch !== null ? 'num_images' : 'image_size';
  const what = field === 'num_images' ? `num_images: ${r.batch} images at ${r.width}×${r.height}` : `image_size: ${r.width}×${r.height}${r.batch > 1 ? ` (${r.batch} images)` : ''}`;
  const bufferLimit = Math.min(offer.maxBufferSize, offer.maxStorageBufferBindingSize);
  const limitName = offer.maxStorageBufferBindingSize < offer.maxBufferSize ? 'maxStorageBufferBindingSize' : 'maxBufferSize';
  const need =
    failed.over === 'buffer'
      ? `needs a ${formatBytes(failed.peakBufferBytes)} buffer (${failed.peakTensor}); this GPU allows ${formatLimit(bufferLimit)} per buffer (${limitName})`
      : `needs ${formatBytes(failed.weightsBytes + failed.totalBytes)} of GPU memory while the ${failed.component} runs (${formatBytes(failed.weightsBytes)} weights + ${formatBytes(failed.totalBytes)} activations); ${formatBytes(offer.budgetBytes!)} could be allocated`;
  const fix =
    field === 'num_images'
      ? `; at most ${maxBatch} image${maxBatch === 1 ? '' : 's'} of this size fit`
      : largestFit
        ? `; the largest size that fits is ${largestFit.width}×${largestFit.height}`
        : '; no size fits on this GPU';
  return { fits: false, field, reason: `${what} ${need}${fix}.`, checks, largestFit, maxBatch };
}

/** The refusal for a decision that does not fit: insufficient_capacity on the field it names. */
export function activationError(d: ActivationDecision): FluxError {
  return new FluxError('insufficient_capacity', d.reason, { field: d.field ?? 'image_size', details: { activations: d } });
}

/** What the device offers, as the worker reports it (RuntimeInfo). */
export interface DeviceFacts {
  webgpu: { features: readonly string[]; limits: Readonly<Record<string, number | undefined>> } | null;
  webgpuError?: string | null;
  gpuMemoryLimitBytes: number | null;
}

/**
 * Whether this GPU can run the pack whose manifest was fetched from `url`: required features and the adapter
 * limits (the measured memory budget is probed after the install, on load). Throws before any download.
 */
export function checkManifestForDevice(manifest: PackManifest, url: string, device: DeviceFacts): void {
  if (!device.webgpu) return;
  const limits = Object.fromEntries(Object.entries(device.webgpu.limits).filter((e): e is [string, number] => typeof e[1] === 'number'));
  const d = decideCapacity(packNeeds(manifest), { features: device.webgpu.features, limits, allocatableBytes: null, userLimitBytes: device.gpuMemoryLimitBytes });
  if (d.canRunLocally) return;
  const featureCheck = d.checks.find((c) => c.name === 'features' && !c.ok);
  throw new FluxError(featureCheck ? 'missing_gpu_feature' : 'insufficient_capacity', `Pack "${manifest.name}" (${url}) cannot run on this GPU, so it was not downloaded. ${d.reason}`, {
    details: { packId: manifest.id, url, checks: d.checks },
  });
}
