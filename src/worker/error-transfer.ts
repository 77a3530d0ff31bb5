/**
 * Comlink's default 'throw' handler keeps only name/message/stack. Ours carries FluxError's code, field and
 * details across the worker boundary, so the UI can say which field was wrong. Register on both sides.
 */
import * as Comlink from 'comlink';
import { FluxError, type SerializedFluxError } from '../errors.js';

type Thrown = { value: unknown };
type Wire = { isFlux: true; value: SerializedFluxError } | { isFlux: false; value: { message: string; name: string; stack?: string } | unknown };

export function registerErrorTransfer(): void {
  const previous = Comlink.transferHandlers.get('throw')!;
  Comlink.transferHandlers.set('throw', {
    canHandle: (value: unknown): value is Thrown => previous.canHandle(value),
    serialize(thrown: unknown) {
      const { value } = thrown as Thrown;
      let wire: Wire;
      if (value instanceof FluxError) wire = { isFlux: true, value: value.toJSON() };
      else if (value instanceof Error) wire = { isFlux: false, value: { message: value.message, name: value.name, ...(value.stack ? { stack: value.stack } : {}) } };
      else wire = { isFlux: false, value };
      return [wire, []];
    },
    deserialize(wire: unknown) {
      const w = wire as Wire;
      if (w.isFlux) throw FluxError.fromJSON(w.value);
      const v = w.value as { message?: string; name?: string; stack?: string };
      if (v && typeof v === 'object' && typeof v.message === 'string') throw Object.assign(new Error(v.message), { name: v.name ?? 'Error', stack: v.stack });
      throw w.value;
    },
  } as Comlink.TransferHandler<unknown, unknown>);
}
