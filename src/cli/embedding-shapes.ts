/**
 * `--prompt-embeds` / `--pooled-prompt-embeds` against the transformer graph's declared input shapes, read from the
 * graph file (structure only) before any session exists. Without this a wrong width reaches onnxruntime, whose
 * "Got invalid dimensions for input: encoder_hidden_states … index: 2 Got: 63 Expected: 64" names no flag.
 */
import { invalidInput } from '../errors.js';
import { readModel } from '../convert/model-reader.js';
import { valueInfoDims } from '../convert/onnx.js';
import type { HostTensor } from '../pipeline/request.js';

type Dims = (number | string)[];

/** Declared dims of the named graph inputs, over all graphs (stages) of the transformer; unreadable graphs are skipped (onnxruntime reports them). */
function declaredInputs(graphs: readonly string[], names: readonly string[]): Map<string, Dims> {
  const found = new Map<string, Dims>();
  for (const g of graphs) {
    let inputs;
    try {
      inputs = readModel(g).graph.input ?? [];
    } catch {
      continue;
    }
    for (const i of inputs) {
      const dims = valueInfoDims(i);
      if (i.name && names.includes(i.name) && dims && !found.has(i.name)) found.set(i.name, dims);
    }
  }
  return found;
}

function check(field: string, tensor: HostTensor | undefined, declared: Dims | undefined, input: string, symbolic: string[]): void {
  if (!tensor || !declared || tensor.dims.length !== declared.length) return; // rank is the request validator's to report
  // Batch (dim 0) follows num_images; every other fixed dim must match.
  const bad = declared.some((d, i) => i > 0 && typeof d === 'number' && d !== tensor.dims[i]);
  if (!bad) return;
  const want = declared.map((d, i) => (i === 0 ? 'B' : typeof d === 'number' ? String(d) : (symbolic[i] ?? d)));
  throw invalidInput(field, `the transformer takes [${want.join(', ')}] (${input}), got [${tensor.dims.join(', ')}]`);
}

export function checkEmbeddingShapes(
  graphs: readonly string[],
  input: { prompt_embeds?: HostTensor; pooled_prompt_embeds?: HostTensor },
  declaredNames?: Record<string, string>,
): void {
  const ehs = declaredNames?.encoder_hidden_states ?? 'encoder_hidden_states';
  const pooled = declaredNames?.pooled_projections ?? 'pooled_projections';
  const dims = declaredInputs(graphs, [ehs, pooled]);
  check('prompt_embeds', input.prompt_embeds, dims.get(ehs), ehs, ['B', 'L', 'D']);
  check('pooled_prompt_embeds', input.pooled_prompt_embeds, dims.get(pooled), pooled, ['B', 'P']);
}
