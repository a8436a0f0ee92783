import { defineConfig } from 'vitest/config';

export default defineConfig({
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
