/**
 * One app page with the test pack installed and loaded, shared by the tests that only need a loaded pack and drive
 * it through `window.flux` (no UI state, no reloads): installing the pack and starting ORT on SwiftShader costs
 * more than most of those tests themselves. The page lives for the Playwright worker (a failed test restarts the
 * worker, so it starts again from a clean page), and every test re-asserts the worker's WebGPU adapter.
 */
import { expect, test as base, type Page } from '@playwright/test';
import { installTestPack, openApp } from './helpers.js';

export const test = base.extend<{ loadedApp: Page }, { sharedLoadedApp: Page }>({
  sharedLoadedApp: [
    async ({ browser }, use, workerInfo) => {
      const context = await browser.newContext({ baseURL: workerInfo.project.use.baseURL! });
      const page = await context.newPage();
      await openApp(page);
      await installTestPack(page);
      await use(page);
      await context.close();
    },
    { scope: 'worker' },
  ],
  loadedApp: async ({ sharedLoadedApp }, use) => {
    const info = await sharedLoadedApp.evaluate(() => window.flux.info());
    expect(info.webgpu, `the worker has no WebGPU adapter: ${info.webgpuError}`).not.toBeNull();
    test.info().annotations.push({ type: 'adapter', description: info.webgpu!.adapter.architecture });
    await use(sharedLoadedApp);
  },
});

export { expect };
