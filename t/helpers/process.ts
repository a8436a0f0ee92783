/**
 * Runs the compiled gateway (dist/src/main.js, built by global-setup) as a real
 * process, for what only a process shows: start-up errors, signals, kill -9.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));

export interface GatewayProcess {
  proc: ChildProcess;
  output(): string;
  /** Resolves with the first match of `re` in stdout+stderr, rejects when the process exits first. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function writeTempConfig(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'portico-conf-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, yaml);
  return file;
}

/** A config for a test process: loopback, ephemeral ports, the given data dir. */
export function testConfigYaml(dataDir: string, extra = ''): string {
  return `apisix:
  node_listen: { ip: 127.0.0.1, port: 0 }
  ssl:
    listen: [{ ip: 127.0.0.1, port: 0 }]
  control: { ip: 127.0.0.1, port: 0 }
deployment:
  admin:
    admin_listen: { ip: 127.0.0.1, port: 0 }
  embedded:
    data_dir: ${dataDir}
${extra}`;
}

/**
 * `keepWorkers`: data-plane workers outlive a main process killed with -9 (src/core/process/orphans.ts); by
 * default they are SIGKILLed with the main's process group when it exits, so no test leaves one serving.
 */
export function startGatewayProcess(
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
  opts: { keepWorkers?: boolean; /** Instead of `node dist/src/main.js`, e.g. ['npm', 'start', '--'], run in the repository's root. */ command?: string[] } = {},
): GatewayProcess {
  const [cmd, ...cmdArgs] = opts.command ?? [process.execPath, MAIN];
  const proc = spawn(cmd!, [...cmdArgs, ...args], {
    ...(opts.command ? { cwd: ROOT } : {}),
    env: { PATH: process.env.PATH, PORTICO_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group (led by its PID), so its workers can be stopped with it.
    detached: true,
  });
  if (!opts.keepWorkers) {
    proc.on('exit', () => {
      try {
        process.kill(-proc.pid!, 'SIGKILL');
      } catch {
        // The group is empty.
      }
    });
  }
  let out = '';
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const w of waiters) w();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => {
      resolve({ code, signal });
      for (const w of waiters) w();
    }),
  );
  return {
    proc,
    output: () => out,
    exited,
    // Generous: a gateway's start (tsx transpiling, workers forking) can take 20 s on two busy cores; a wait that
    // is cut short fails a test for the machine's load, not for the code. Hooks allow 60 s, tests 30 s.
    waitFor(re, timeoutMs = 40_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${re} in:\n${out}`));
        }, timeoutMs);
        const check = () => {
          const m = out.match(re);
          if (m) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(m);
          } else if (proc.exitCode !== null || proc.signalCode !== null) {
            clearTimeout(timer);
            waiters.delete(check);
            reject(new Error(`process exited (${proc.exitCode ?? proc.signalCode}) before ${re}:\n${out}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** Starts a gateway process and waits until both listeners are up. */
/** `timeoutMs`: for each listener's line (default 15 s; forking several workers on a loaded machine takes longer). */
export async function startListening(args: string[], env: NodeJS.ProcessEnv = {}, opts: { keepWorkers?: boolean; timeoutMs?: number } = {}) {
  const gp = startGatewayProcess(args, env, opts);
  const data = await gp.waitFor(/data plane listening on http:\/\/[^:]+:(\d+)/, opts.timeoutMs);
  const admin = await gp.waitFor(/Admin API listening on http:\/\/[^:]+:(\d+)/, opts.timeoutMs);
  return { ...gp, dataPort: Number(data[1]), adminPort: Number(admin[1]) };
}
