/**
 * WebGPU adapter and device for onnxruntime-web. We create the device ourselves so it gets the adapter's real
 * buffer limits (the defaults are 256 MiB / 128 MiB, far below what FLUX weights need) and shader-f16 where the
 * adapter has it, then hand it to ORT (the `device` option of its WebGPU EP, RuntimeEnv.gpuDevice). The same probe answers info() and the f16 check.
 */
import { FluxError } from '../errors.js';

export interface AdapterReport {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
}

export interface WebGpuReport {
  adapter: AdapterReport;
  /** Features enabled on our device. */
  features: string[];
  /** Limits of our device (the adapter's maxima for the ones we raise). */
  limits: Record<string, number>;
}

/** Limits raised to the adapter's maximum (everything ORT's kernels and big weights care about). */
const RAISED_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

/** Optional features we enable when present (ORT uses them for faster or fp16 kernels). */
const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;

export interface FluxGpu {
  adapter: GPUAdapter;
  device: GPUDevice;
  report: WebGpuReport;
}

export async function createFluxGpu(gpu: GPU | undefined = (globalThis.navigator as Navigator | undefined)?.gpu): Promise<FluxGpu> {
  if (!gpu) {
    throw new FluxError('webgpu_unavailable', 'WebGPU is not available in this browser (navigator.gpu is missing). Use a recent Chrome/Edge, or Safari/Firefox with WebGPU enabled.');
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new FluxError('webgpu_unavailable', 'No WebGPU adapter is available (the GPU may be blocklisted or disabled).');
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  for (const k of RAISED_LIMITS) requiredLimits[k] = adapter.limits[k];
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  const info = adapter.info;
  const limits: Record<string, number> = {};
  for (const k of RAISED_LIMITS) limits[k] = device.limits[k];
  return {
    adapter,
    device,
    report: {
      adapter: {
        vendor: info.vendor,
        architecture: info.architecture,
        device: info.device,
        description: info.description,
        isFallbackAdapter: Boolean((info as { isFallbackAdapter?: boolean }).isFallbackAdapter),
      },
      features: [...device.features].sort(),
      limits,
    },
  };
}
