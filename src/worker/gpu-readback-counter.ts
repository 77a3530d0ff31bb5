/**
 * Counts GPU→CPU map-for-read operations in this realm by wrapping GPUBuffer.prototype.mapAsync. ORT's WebGPU EP
 * maps buffers through this JS API, so the count is an independent check that a generation reads back only once.
 */
let reads = 0;
let installed = false;

export function installReadbackCounter(): void {
  if (installed || typeof GPUBuffer === 'undefined') return;
  installed = true;
  const proto = GPUBuffer.prototype;
  const original = proto.mapAsync;
  proto.mapAsync = function (this: GPUBuffer, mode: number, ...rest: [number?, number?]) {
    if (mode & GPUMapMode.READ) reads++;
    return original.call(this, mode, ...rest);
  } as typeof proto.mapAsync;
}

export function gpuReadbackCount(): number {
  return reads;
}
