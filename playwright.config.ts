import { defineConfig } from '@playwright/test';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './tests/support/chromium.js';
import { FAKE_FAL_PORT, FAKE_FAL_URL, FAL_E2E_KEY } from './tests/support/fal-e2e.js';

const PORT = Number(process.env.E2E_PORT ?? 4173);

export default defineConfig({
  testDir: 'tests/e2e',
  timeout: 240_000,
  expect: { timeout: 60_000 },
  // SwiftShader runs WebGPU on the CPU: one browser at a time keeps timings sane on 2 cores.
  workers: 1,
  fullyParallel: false,
  retries: 0,
  reporter: process.env.CI ? [['list'], ['html', { open: 'never' }]] : [['list']],
  use: {
    browserName: 'chromium',
    baseURL: `http://127.0.0.1:${PORT}`,
    launchOptions: { executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS },
    trace: 'retain-on-failure',
  },
  webServer: [
    // A fake fal upstream (queue protocol, real images, fault injection) behind the app's own proxy.
    {
      command: `npx tsx tests/support/fake-fal/main.ts --port ${FAKE_FAL_PORT} --key ${FAL_E2E_KEY}`,
      url: `${FAKE_FAL_URL}/`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: 'ignore',
    },
    {
      // The key is in the build's environment too: remote.spec.ts checks it never reaches the bundle.
      command: `npx vite build && npx vite preview --port ${PORT} --strictPort`,
      url: `http://127.0.0.1:${PORT}/`,
      // Never reuse: a server left over from an interrupted run would serve an old build.
      reuseExistingServer: false,
      timeout: 180_000,
      stdout: 'ignore',
      env: { FAL_KEY: FAL_E2E_KEY, FAL_TEST_UPSTREAM_ORIGIN: FAKE_FAL_URL },
    },
  ],
});
