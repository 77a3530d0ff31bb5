// The f16 tests need scripts/setup-lavapipe.sh first: `npx vitest run -c tests/f16/vitest.config.ts`.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/f16/**/*.test.ts'],
    environment: 'node',
    testTimeout: 20 * 60_000,
    pool: 'forks',
  },
});
