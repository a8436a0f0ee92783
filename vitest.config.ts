import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // The package's own entries, from source: tests and examples import them as a plugin author does.
  resolve: {
    alias: {
      'portico/plugin': fileURLToPath(new URL('./src/plugin.ts', import.meta.url)),
      'portico/testing': fileURLToPath(new URL('./src/testing.ts', import.meta.url)),
    },
  },
  test: {
    include: ['t/**/*.test.ts'],
    // Tests start real servers and brokers; two cores, so keep the fork count low.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    globalSetup: ['t/global-setup.ts'],
  },
});
