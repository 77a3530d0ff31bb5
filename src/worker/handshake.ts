/**
 * The start-up handshake between FluxClient and its worker (src/worker/expose.ts). Plain messages beside Comlink's:
 * Comlink ignores message types it does not know, on both sides.
 */
export const WORKER_PING = 'flux-webgpu:ping';
export const WORKER_PONG = 'flux-webgpu:pong';
/** Bumped when the client↔worker API changes incompatibly; a mismatch means the two come from different versions. */
export const WORKER_PROTOCOL = 1;
