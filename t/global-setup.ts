import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// Tests that run the gateway as a real process (kill -9, workers, start-up
// errors) use the compiled output, so build it once per test run. tsc still
// emits when it finds type errors; `npm run typecheck` is where those fail,
// so here they are reported without stopping the unrelated tests.
export default function setup(): void {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) {
    process.stderr.write(`global-setup: tsc reported problems (build output still written):\n${(r.stdout ?? '').slice(0, 4000)}\n`);
    return;
  }
  // A clean build, stamped as scripts/build-if-stale.mjs stamps its own, so `npm start` in a test
  // (t/process/second-start.test.ts) finds the tree up to date instead of compiling it again.
  writeFileSync(fileURLToPath(new URL('../dist/.build-stamp', import.meta.url)), `built ${new Date().toISOString()} by t/global-setup.ts\n`);
}
