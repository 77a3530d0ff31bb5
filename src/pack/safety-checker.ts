/**
 * The safety checker's classifier description: how a decoded image becomes the classifier's input, and how its
 * output becomes a per-image score and flag. It sits in the manifest as fields of `components.safety_checker`
 * (docs/model-pack.md, docs/safety.md); `npm run pack` and the CLI also build it from a Hugging Face
 * `preprocessor_config.json` + `config.json` pair (what optimum exports beside model.onnx).
 */
import { FluxError } from '../errors.js';

export type SafetyResample = 'nearest' | 'bilinear' | 'bicubic';
export const SAFETY_RESAMPLE: readonly SafetyResample[] = ['nearest', 'bilinear', 'bicubic'];
/** `stretch`: resize to height × width. `shortest_edge_center_crop`: shortest edge → shortestEdge, then center crop. */
export type SafetyFit = 'stretch' | 'shortest_edge_center_crop';
export const SAFETY_FIT: readonly SafetyFit[] = ['stretch', 'shortest_edge_center_crop'];
/** How the graph's output becomes per-label probabilities. */
export type SafetyScores = 'softmax' | 'sigmoid' | 'probabilities';
export const SAFETY_SCORES: readonly SafetyScores[] = ['softmax', 'sigmoid', 'probabilities'];

export interface SafetyPreprocess {
  /** Classifier input size in pixels. */
  height: number;
  width: number;
  fit: SafetyFit;
  /** shortest_edge_center_crop only: the length the shortest edge is resized to before the crop (default max(height, width)). */
  shortestEdge?: number;
  /** Resampling filter, with PIL's semantics (antialiased when shrinking), as Hugging Face image processors use. */
  resample: SafetyResample;
  /** Factor applied to 0–255 pixel values before normalization (default 1/255). */
  rescale?: number;
  /** Per-channel mean and std, in the classifier's channel order: x = (v · rescale − mean) / std. */
  mean: [number, number, number];
  std: [number, number, number];
  /** Channel order of the classifier input (default RGB). */
  channelOrder?: 'RGB' | 'BGR';
  /** Layout of the classifier input (default NCHW). */
  layout?: 'NCHW' | 'NHWC';
}

/** The classifier fields of `components.safety_checker` (besides the graph fields every component has). */
export interface SafetyCheckerConfig {
  /** The checker's name as results report it (`safety.checker`), e.g. "Falconsai/nsfw_image_detection". */
  model: string;
  preprocess: SafetyPreprocess;
  /** Label of each output column, in order. */
  labels: string[];
  /** Labels whose probability counts as unsafe. */
  unsafeLabels: string[];
  /** What the output is: logits → softmax, independent logits → sigmoid, or probabilities already. */
  scores: SafetyScores;
  /** An image is flagged when its unsafe score is ≥ this (0 < threshold ≤ 1). */
  threshold: number;
}

export const SAFETY_CONFIG_KEYS = ['model', 'preprocess', 'labels', 'unsafeLabels', 'scores', 'threshold'] as const;

/** Labels that count as unsafe when a Hugging Face config does not say (id2label names only). */
const UNSAFE_LABEL = /nsfw|porn|hentai|sexy|explicit|unsafe|nud(e|ity)/i;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bad(prefix: string, field: string, message: string): FluxError {
  return new FluxError('invalid_manifest', `${prefix}${field}: ${message}`, { field });
}

/**
 * Validate the classifier fields. `at` is the field path prefix in messages (`components.safety_checker`),
 * `prefix` the message prefix (`manifest.json: `).
 */
export function parseSafetyCheckerConfig(json: Record<string, unknown>, at: string, prefix = 'manifest.json: '): SafetyCheckerConfig {
  const f = (k: string) => `${at}.${k}`;
  const fail = (k: string, m: string) => bad(prefix, f(k), m);
  const posInt = (v: unknown, k: string, max = 4096): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw fail(k, `must be an integer between 1 and ${max}`);
    return v;
  };
  if (typeof json.model !== 'string' || !json.model.trim()) throw fail('model', 'must be a non-empty string (the checker name results report)');
  if (!isObject(json.preprocess)) throw fail('preprocess', 'must be an object (height, width, fit, resample, mean, std, …)');
  const p = json.preprocess;
  const pf = (k: string) => `preprocess.${k}`;
  posInt(p.height, pf('height'));
  posInt(p.width, pf('width'));
  if (!SAFETY_FIT.includes(p.fit as SafetyFit)) throw fail(pf('fit'), `must be one of ${SAFETY_FIT.join(', ')}`);
  if (p.shortestEdge !== undefined) {
    posInt(p.shortestEdge, pf('shortestEdge'));
    if (p.fit !== 'shortest_edge_center_crop') throw fail(pf('shortestEdge'), 'only applies with fit "shortest_edge_center_crop"');
    if ((p.shortestEdge as number) < Math.max(p.height as number, p.width as number)) {
      throw fail(pf('shortestEdge'), `must be at least the crop size (${Math.max(p.height as number, p.width as number)})`);
    }
  }
  if (!SAFETY_RESAMPLE.includes(p.resample as SafetyResample)) throw fail(pf('resample'), `must be one of ${SAFETY_RESAMPLE.join(', ')}`);
  if (p.rescale !== undefined && (typeof p.rescale !== 'number' || !Number.isFinite(p.rescale) || p.rescale <= 0)) throw fail(pf('rescale'), 'must be a positive number');
  for (const k of ['mean', 'std'] as const) {
    const v = p[k];
    if (!Array.isArray(v) || v.length !== 3 || v.some((x) => typeof x !== 'number' || !Number.isFinite(x))) throw fail(pf(k), 'must be an array of 3 numbers');
    if (k === 'std' && v.some((x) => (x as number) <= 0)) throw fail(pf(k), 'must be positive');
  }
  if (p.channelOrder !== undefined && p.channelOrder !== 'RGB' && p.channelOrder !== 'BGR') throw fail(pf('channelOrder'), 'must be "RGB" or "BGR"');
  if (p.layout !== undefined && p.layout !== 'NCHW' && p.layout !== 'NHWC') throw fail(pf('layout'), 'must be "NCHW" or "NHWC"');
  const known = ['height', 'width', 'fit', 'shortestEdge', 'resample', 'rescale', 'mean', 'std', 'channelOrder', 'layout'];
  for (const k of Object.keys(p)) if (!known.includes(k)) throw fail(pf(k), `unknown key; expected one of ${known.join(', ')}`);

  const labels = json.labels;
  if (!Array.isArray(labels) || labels.length === 0 || labels.some((l) => typeof l !== 'string' || !l)) throw fail('labels', 'must be a non-empty array of label names');
  if (new Set(labels).size !== labels.length) throw fail('labels', 'must not repeat a label');
  const unsafe = json.unsafeLabels;
  if (!Array.isArray(unsafe) || unsafe.length === 0) throw fail('unsafeLabels', 'must be a non-empty array of labels from "labels"');
  for (const [i, u] of unsafe.entries()) {
    if (typeof u !== 'string' || !labels.includes(u)) throw fail(`unsafeLabels[${i}]`, `${JSON.stringify(u)} is not one of the labels (${labels.join(', ')})`);
  }
  if (!SAFETY_SCORES.includes(json.scores as SafetyScores)) throw fail('scores', `must be one of ${SAFETY_SCORES.join(', ')}`);
  if (typeof json.threshold !== 'number' || !(json.threshold > 0 && json.threshold <= 1)) throw fail('threshold', 'must be a number in (0, 1]');
  return {
    model: json.model,
    preprocess: { ...(p as unknown as SafetyPreprocess) },
    labels: [...(labels as string[])],
    unsafeLabels: [...(unsafe as string[])],
    scores: json.scores as SafetyScores,
    threshold: json.threshold,
  };
}

/** The classifier fields of a component spec (drops the graph fields). */
export function pickSafetyConfig(spec: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(SAFETY_CONFIG_KEYS.filter((k) => spec[k] !== undefined).map((k) => [k, spec[k]]));
}

/** Effective preprocessing with defaults filled in. */
export function resolvedPreprocess(p: SafetyPreprocess): Required<SafetyPreprocess> {
  return {
    ...p,
    shortestEdge: p.shortestEdge ?? Math.max(p.height, p.width),
    rescale: p.rescale ?? 1 / 255,
    channelOrder: p.channelOrder ?? 'RGB',
    layout: p.layout ?? 'NCHW',
  };
}

/** PIL resample ids as Hugging Face image processors store them. */
const HF_RESAMPLE: Record<number, SafetyResample> = { 0: 'nearest', 2: 'bilinear', 3: 'bicubic' };

/**
 * A classifier config from Hugging Face files: `preprocessor_config.json` (ViTImageProcessor-, CLIPImageProcessor-
 * style: size, resample, rescale, mean/std, center crop) and `config.json` (id2label, _name_or_path). Unsafe labels
 * are those whose names say so (nsfw, porn, hentai, sexy, explicit, unsafe, nude) unless `overrides` names them.
 * `overrides` (e.g. from --safety-config) wins field by field; preprocess fields merge.
 */
export function safetyConfigFromHuggingFace(
  preprocessor: unknown,
  config: unknown,
  fallbackName: string,
  overrides: Record<string, unknown> = {},
): SafetyCheckerConfig {
  const field = '(Hugging Face config)';
  if (!isObject(preprocessor)) throw new FluxError('invalid_input', `preprocessor_config.json: must be a JSON object`, { field });
  if (!isObject(config)) throw new FluxError('invalid_input', `config.json: must be a JSON object`, { field });
  const pp = preprocessor;
  const size = isObject(pp.size) ? pp.size : typeof pp.size === 'number' ? { shortest_edge: pp.size } : {};
  const crop = isObject(pp.crop_size) ? pp.crop_size : typeof pp.crop_size === 'number' ? { height: pp.crop_size, width: pp.crop_size } : null;
  const preprocess: Record<string, unknown> = {};
  if (pp.do_center_crop === true && crop && typeof size.shortest_edge === 'number') {
    Object.assign(preprocess, { fit: 'shortest_edge_center_crop', shortestEdge: size.shortest_edge, height: crop.height, width: crop.width });
  } else if (typeof size.height === 'number' && typeof size.width === 'number') {
    Object.assign(preprocess, { fit: 'stretch', height: size.height, width: size.width });
  } else if (typeof size.shortest_edge === 'number') {
    Object.assign(preprocess, { fit: 'stretch', height: size.shortest_edge, width: size.shortest_edge });
  }
  if (typeof pp.resample === 'number' && HF_RESAMPLE[pp.resample]) preprocess.resample = HF_RESAMPLE[pp.resample];
  else if (pp.resample === undefined) preprocess.resample = 'bilinear';
  preprocess.rescale = pp.do_rescale === false ? 1 : typeof pp.rescale_factor === 'number' ? pp.rescale_factor : 1 / 255;
  const norm = pp.do_normalize !== false;
  preprocess.mean = norm && Array.isArray(pp.image_mean) ? pp.image_mean : [0, 0, 0];
  preprocess.std = norm && Array.isArray(pp.image_std) ? pp.image_std : [1, 1, 1];

  const id2label = isObject(config.id2label) ? config.id2label : {};
  const labels = Object.entries(id2label)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([, l]) => String(l));
  const problem = config.problem_type;
  const out: Record<string, unknown> = {
    model: typeof config._name_or_path === 'string' && config._name_or_path ? config._name_or_path : fallbackName,
    preprocess,
    labels,
    unsafeLabels: labels.filter((l) => UNSAFE_LABEL.test(l)),
    scores: problem === 'multi_label_classification' ? 'sigmoid' : 'softmax',
    threshold: 0.5,
  };
  for (const [k, v] of Object.entries(overrides)) {
    if (k === 'preprocess' && isObject(v)) out.preprocess = { ...preprocess, ...v };
    else out[k] = v;
  }
  return parseSafetyCheckerConfig(out, 'safety_checker', 'safety checker config: ');
}
