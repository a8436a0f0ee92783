import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// Tests that run the gateway as a real process (kill -9, workers, start-up errors)
// use the compiled output, so build it once per test run.
export default function setup(): void {
  const root = fileURLToPath(new URL('..', import.meta.url));
  execFileSync(process.execPath, [fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url)), '-p', 'tsconfig.json'], {
    cwd: root,
    stdio: 'inherit',
  });
}
