/**
 * Binding a component's graph inputs/outputs to pipeline roles. Exporters name I/O differently
 * (diffusers/optimum `out_hidden_states`, `latent_sample`→`sample`; TensorRT/BFL `latent`, `images`), so:
 * 1. names the manifest declares win;
 * 2. otherwise an input role binds to the graph input of the same name (FLUX names), and a component with a
 *    single input binds it whatever it is called;
 * 3. otherwise an output role binds to the graph's single output, whatever it is called.
 * Anything left ambiguous is an error that lists what the graph has.
 */
import { FluxError } from '../errors.js';
import { COMPONENT_ROLES, type ComponentName } from '../pack/manifest.js';

export interface SessionShape {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata?: readonly { name: string; isTensor: boolean; type?: string; shape?: readonly (number | string)[] }[];
  readonly outputMetadata?: readonly { name: string; isTensor: boolean; type?: string; shape?: readonly (number | string)[] }[];
}

export interface TensorSlot {
  name: string;
  /** ORT tensor type, e.g. 'float32', 'float16', 'int64'; 'unknown' if the session has no metadata. */
  type: string;
  /** Declared rank, or undefined if unknown. */
  rank: number | undefined;
  /** Declared dims (numbers for fixed sizes, names for symbolic ones); empty if unknown. */
  dims: readonly (number | string)[];
}

export interface ComponentIo {
  inputs: Record<string, TensorSlot>;
  outputs: Record<string, TensorSlot>;
}

/** Output names tried, in order, for CLIP's pooled output when a graph has several outputs. */
const POOLED_OUTPUT_NAMES = ['pooler_output', 'pooled_embeddings', 'pooled_output', 'text_embeds'];

function slotFor(name: string, meta: SessionShape['inputMetadata']): TensorSlot {
  const m = meta?.find((x) => x.name === name);
  const type = m && m.isTensor && m.type ? m.type : 'unknown';
  const dims = m && m.isTensor && m.shape ? [...m.shape] : [];
  return { name, type, rank: dims.length > 0 ? dims.length : undefined, dims };
}

export function bindComponentIo(
  component: ComponentName,
  session: SessionShape,
  declared: { inputs?: Record<string, string>; outputs?: Record<string, string> } = {},
): ComponentIo {
  const roles = COMPONENT_ROLES[component];
  const fail = (msg: string) =>
    new FluxError('model_io_mismatch', `${component}: ${msg} (graph inputs: ${session.inputNames.join(', ') || 'none'}; outputs: ${session.outputNames.join(', ') || 'none'})`);

  const inputs: Record<string, TensorSlot> = {};
  for (const role of roles.inputs) {
    let name = declared.inputs?.[role];
    if (name === undefined) {
      if (session.inputNames.includes(role)) name = role;
      else if (roles.inputs.length === 1 && session.inputNames.length === 1) name = session.inputNames[0]!;
    }
    if (name === undefined) throw fail(`no graph input for "${role}"; declare it in the manifest's components.${component}.inputs`);
    if (!session.inputNames.includes(name)) throw fail(`declared input "${name}" for "${role}" is not in the graph`);
    inputs[role] = slotFor(name, session.inputMetadata);
  }
  const bound = new Set(Object.values(inputs).map((s) => s.name));
  const unbound = session.inputNames.filter((n) => !bound.has(n));
  if (unbound.length) {
    const hint = unbound.includes('guidance') ? ' — "guidance" is a FLUX.1 [dev] input; the local pipeline runs schnell' : '';
    throw fail(`graph input(s) ${unbound.map((n) => `"${n}"`).join(', ')} are not fed by the pipeline${hint}`);
  }

  const outputs: Record<string, TensorSlot> = {};
  for (const role of roles.outputs) {
    let name = declared.outputs?.[role];
    if (name === undefined) {
      if (session.outputNames.length === 1) name = session.outputNames[0]!;
      else if (component === 'clip') name = POOLED_OUTPUT_NAMES.find((n) => session.outputNames.includes(n));
    }
    if (name === undefined) throw fail(`cannot tell which output is "${role}"; declare it in the manifest's components.${component}.outputs`);
    if (!session.outputNames.includes(name)) throw fail(`declared output "${name}" for "${role}" is not in the graph`);
    outputs[role] = slotFor(name, session.outputMetadata);
  }
  return { inputs, outputs };
}

/** The floating-point type of a component, from its bound slots ('float32' if none is declared). */
export function componentFloatType(io: ComponentIo): 'float32' | 'float16' {
  const all = [...Object.values(io.inputs), ...Object.values(io.outputs)];
  return all.some((s) => s.type === 'float16') ? 'float16' : 'float32';
}
