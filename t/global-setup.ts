import { spawnSync } from 'node:child_process';
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
  }
}
