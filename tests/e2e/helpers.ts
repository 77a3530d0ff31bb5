/** Shared steps for the browser tests. Every test asserts the WebGPU adapter so nothing silently falls back. */
import { createHash } from 'node:crypto';
import { expect, type Page } from '@playwright/test';
import type { FluxClient } from '../../src/client/flux-client.js';
import type { FluxSchnellInput } from '../../src/pipeline/request.js';

declare global {
  interface Window {
    flux: FluxClient;
  }
}

export const TEST_PACK_ID = 'flux-test-tiny';

/** Open the app (at `path`, e.g. a share link) and check that both the page and the worker have a real WebGPU adapter. */
export async function openApp(page: Page, path = '/'): Promise<{ architecture: string; features: string[] }> {
  await page.goto(path);
  await expect(page.locator('body')).toHaveAttribute('data-ready', 'true', { timeout: 120_000 });
  const pageAdapter = await page.evaluate(async () => {
    const a = await navigator.gpu?.requestAdapter();
    return a ? { architecture: a.info.architecture, vendor: a.info.vendor } : null;
  });
  expect(pageAdapter, 'the page has no WebGPU adapter (launch flags?)').not.toBeNull();
  const info = await page.evaluate(() => window.flux.info());
  expect(info.webgpu, `the worker has no WebGPU adapter: ${info.webgpuError}`).not.toBeNull();
  await expect(page.getByTestId('device')).toContainText('WebGPU:');
  return { architecture: info.webgpu!.adapter.architecture, features: info.webgpu!.features };
}

/** Install the embedded test pack through the UI and wait until the app has loaded it. */
export async function installTestPack(page: Page): Promise<void> {
  await page.locator(`li[data-pack="${TEST_PACK_ID}"]`).getByTestId('install-pack').click();
  await expect(page.getByTestId('model-status')).toHaveAttribute('data-loaded', TEST_PACK_ID, { timeout: 120_000 });
  await expect(page.getByTestId('generate')).toBeEnabled();
}

export interface GeneratedImage {
  sha256: string;
  bytes: number[];
  width: number;
  height: number;
  contentType: string;
}

/** Generate through the page's client and fetch the resulting images' bytes. */
export async function generate(page: Page, input: FluxSchnellInput): Promise<{ seed: number; images: GeneratedImage[]; timings: Record<string, unknown> }> {
  const r = await page.evaluate(async (inp) => {
    const out = await window.flux.generate(inp);
    const images = [];
    for (const img of out.images) {
      const bytes = new Uint8Array(await (await fetch(img.url)).arrayBuffer());
      images.push({ bytes: Array.from(bytes), width: img.width, height: img.height, contentType: img.content_type });
    }
    return { seed: out.seed, images, timings: out.timings as unknown as Record<string, unknown> };
  }, input);
  return {
    ...r,
    images: r.images.map((i) => ({ ...i, sha256: createHash('sha256').update(Uint8Array.from(i.bytes)).digest('hex') })),
  };
}

/** Serve a pack assembled in the test (manifest + files) at /packs/<id>/ through request interception. */
export async function servePack(page: Page, pack: { manifest: { id: string }; files: Map<string, Uint8Array> }): Promise<void> {
  const id = pack.manifest.id;
  await page.route(`**/packs/${id}/**`, (route) => {
    const path = decodeURIComponent(new URL(route.request().url()).pathname.split(`/packs/${id}/`)[1]!);
    if (path === 'manifest.json') return route.fulfill({ json: pack.manifest });
    const body = pack.files.get(path);
    return body ? route.fulfill({ body: Buffer.from(body), contentType: 'application/octet-stream' }) : route.fulfill({ status: 404, body: 'not found' });
  });
}

/** Install a pack from /packs/<id>/ and load it, through the page's client (no UI). */
export async function installAndLoad(page: Page, id: string): Promise<void> {
  await page.evaluate(async (packId) => {
    await window.flux.installPack(`/packs/${packId}/`);
    await window.flux.loadPack(packId);
  }, id);
}
