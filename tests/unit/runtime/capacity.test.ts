import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../../src/pack/manifest.js';
import { decideCapacity, measureAllocatable, packNeeds, planBytes, type PackNeeds } from '../../../src/runtime/capacity.js';
import { TEST_PACK_DIR } from '../../support/fixtures.js';

const GB = 1024 ** 3;
/** Roughly the real int4 set (landscape.md §6): transformer 6.5, T5 2.5, CLIP 0.25, VAE 0.1 GB. */
const real: PackNeeds = {
  componentBytes: { transformer: 6.5 * GB, t5: 2.5 * GB, clip: 0.25 * GB, vae_decoder: 0.1 * GB },
  requiredFeatures: [],
  maxTensorBytes: 64 * 1024 ** 2,
};
const limits = { maxStorageBufferBindingSize: 2 * GB, maxBufferSize: 4 * GB };

describe('decideCapacity', () => {
  it.each([
    [16 * GB, 'all-resident', ['clip', 't5', 'transformer', 'vae_decoder']],
    // Encoding with the transformer resident holds transformer + T5 + CLIP at once: 9.25 GB + activations.
    [10.9 * GB, 'encoders-transient', ['transformer', 'vae_decoder']],
    [10 * GB, 'all-transient', []],
    [8.2 * GB, 'all-transient', []],
  ] as const)('%d bytes allocatable → %s', (allocatable, plan, resident) => {
    const d = decideCapacity(real, { features: [], limits, allocatableBytes: allocatable });
    expect(d).toMatchObject({ canRunLocally: true, plan, resident });
    expect(d.neededBytes).toBeLessThanOrEqual(allocatable);
  });

  it('too little memory: says so with numbers, never a plan', () => {
    const d = decideCapacity(real, { features: [], limits, allocatableBytes: 4 * GB });
    expect(d.canRunLocally).toBe(false);
    expect(d.plan).toBeNull();
    expect(d.reason).toMatch(/needs at least 8\.1 GB of GPU memory and 4\.0 GB could be allocated/);
  });

  it('missing shader-f16 for an fp16 pack, or a too-small binding limit, rules it out', () => {
    const f16 = decideCapacity({ ...real, requiredFeatures: ['shader-f16'] }, { features: ['subgroups'], limits, allocatableBytes: 32 * GB });
    expect(f16).toMatchObject({ canRunLocally: false });
    expect(f16.reason).toMatch(/lacks shader-f16/);
    const binding = decideCapacity(real, { features: [], limits: { maxStorageBufferBindingSize: 32 * 1024 ** 2 }, allocatableBytes: 32 * GB });
    expect(binding.reason).toMatch(/largest tensor \(64 MB\) exceeds the GPU's binding limit \(32 MB\)/);
  });

  it('a user limit lowers the budget', () => {
    expect(decideCapacity(real, { features: [], limits, allocatableBytes: 32 * GB, userLimitBytes: 10.9 * GB }).plan).toBe('encoders-transient');
  });

  it('plans need less memory as fewer components stay resident', () => {
    const p = planBytes(real);
    expect(p['all-resident']).toBeGreaterThan(p['encoders-transient']);
    expect(p['encoders-transient']).toBeGreaterThan(p['all-transient']);
  });
});

describe('packNeeds', () => {
  it('sums graph and external data bytes per component of the test pack', () => {
    const m = parseManifest(JSON.parse(readFileSync(join(TEST_PACK_DIR, 'manifest.json'), 'utf8')));
    const n = packNeeds(m);
    const size = (p: string) => m.files.find((f) => f.path === p)!.size;
    expect(n.componentBytes.transformer).toBe(size('transformer/model.onnx') + size('transformer/model.onnx.data'));
    expect(n.componentBytes.clip).toBe(size('clip/model.onnx'));
    expect(n.requiredFeatures).toEqual([]);
    expect(n.maxTensorBytes).toBeNull();
  });
});

describe('measureAllocatable (against a fake device that runs out at 1 GB)', () => {
  function fakeDevice(capacity: number) {
    let used = 0;
    const scopes: (GPUError | null)[] = [];
    const live = new Set<{ size: number }>();
    return {
      limits: { maxBufferSize: 256 * 1024 ** 2 },
      pushErrorScope: () => scopes.push(null),
      popErrorScope: async () => scopes.pop() ?? null,
      createBuffer({ size }: { size: number }) {
        const b = { size, destroy: () => (live.delete(b) ? (used -= size) : 0) };
        if (used + size > capacity) scopes[scopes.length - 2] = { message: 'out of memory' } as GPUError; // the OOM scope
        else used += size;
        live.add(b);
        return b;
      },
      get live() {
        return live.size;
      },
    };
  }
  it('stops at the first out-of-memory error and frees everything', async () => {
    const d = fakeDevice(GB);
    expect(await measureAllocatable(d as unknown as GPUDevice, 3 * GB)).toBe(GB);
    expect(d.live).toBe(0);
  });
  it('never allocates more than asked for', async () => {
    const d = fakeDevice(8 * GB);
    expect(await measureAllocatable(d as unknown as GPUDevice, 300 * 1024 ** 2)).toBe(300 * 1024 ** 2);
  });
});
