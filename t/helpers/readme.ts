/**
 * The README's recipes, read from README.md and run by bash as a reader would
 * type them, so a test breaks when the README drifts. A recipe is a `sh` code
 * block; a command's comment at the end of its line (`curl ...   # what it
 * answers`) is what the README says it answers, which the test checks.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGatewayProcess, testConfigYaml, writeTempConfig, type GatewayProcess } from './process.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const MARK = '@@README-ANSWER';

export interface ReadmeCommand {
  /** The command as the README writes it, continuation lines joined, its end-of-line comment cut off. */
  text: string;
  /** What the README says it answers (the comment at the end of its line), if anything. */
  says?: string;
}

/** The text of a `## ` section of README.md whose heading starts with `heading`, up to the next `## `. */
export function readmeSection(heading: string): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf(`\n## ${heading}`);
  if (start < 0) throw new Error(`README.md has no "## ${heading}" section`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

/** The `sh` code blocks of a piece of the README, in order. */
export function shBlocks(text: string): string[] {
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** The commands of a script that `isCommand` picks, each with what its comment says. */
export function readmeCommands(script: string, isCommand: (line: string) => boolean): ReadmeCommand[] {
  return script
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .filter(isCommand)
    .map((l) => {
      const m = l.match(/^(.*?)\s+#\s+(.*)$/);
      return m ? { text: m[1]!, says: m[2]! } : { text: l };
    });
}

export interface Answer {
  /** curl: the HTTP status; `npm run`: the exit status. */
  code: number;
  /** curl: the HTTP version (`1.1`, `2`). */
  httpVersion?: string;
  /** What the command printed on standard output. */
  output: string;
}

export interface ScriptRun {
  /** One per curl and `npm run` command, in the order they ran. */
  answers: Answer[];
  stdout: string;
  stderr: string;
  /** bash's exit status (null when a signal ended it: see `signal`). */
  status: number | null;
  signal: NodeJS.Signals | null;
  /** The process group bash led, where the script's background jobs live. */
  pgid: number;
}

export interface ReadmeGateway extends GatewayProcess {
  /** The ports it listens on: the README's 9180, 9080 and 9443. */
  ports: { admin: number; data: number; tls: number };
  stop(): Promise<void>;
}

/** A gateway process as `npm start` runs it, on ephemeral loopback ports (prometheus's export too), `key` its admin key. */
export async function startReadmeGateway(dataDir: string, key: string): Promise<ReadmeGateway> {
  const yaml = testConfigYaml(dataDir, 'plugin_attr:\n  prometheus:\n    export_addr: { ip: 127.0.0.1, port: 0 }\n');
  const gw = startGatewayProcess(['--config', writeTempConfig(yaml)], { PORTICO_ADMIN_KEY: key });
  const port = async (re: RegExp): Promise<number> => Number((await gw.waitFor(re, 60_000))[1]);
  const data = await port(/data plane listening on http:\/\/[^:]+:(\d+)/);
  const tls = await port(/data plane listening on https:\/\/[^:]+:(\d+)/);
  const admin = await port(/Admin API listening on http:\/\/[^:]+:(\d+)/);
  return {
    ...gw,
    ports: { admin, data, tls },
    async stop() {
      if (gw.proc.exitCode === null) {
        gw.proc.kill('SIGTERM');
        await gw.exited;
      }
    },
  };
}

/** The README's addresses (Admin API 9180, data plane 9080, HTTPS 9443, echo upstream 1980) with the test's ports. */
export function localise(s: string, ports: { admin: number; data: number; tls?: number; echo?: number }): string {
  let out = s.replaceAll('127.0.0.1:9180', `127.0.0.1:${ports.admin}`).replaceAll('127.0.0.1:9080', `127.0.0.1:${ports.data}`);
  if (ports.echo !== undefined) out = out.replaceAll('127.0.0.1:1980', `127.0.0.1:${ports.echo}`);
  if (ports.tls !== undefined) out = out.replace(/\b9443\b/g, String(ports.tls));
  return out;
}

/** The whole command that starts at the first line matching `start`, through its continuation lines and any single quote left open. */
export function commandFrom(script: string, start: RegExp): string {
  const lines = script.split('\n');
  const first = lines.findIndex((l) => start.test(l));
  if (first < 0) throw new Error(`no line matches ${start} in:\n${script}`);
  let end = first;
  const open = (text: string): boolean => text.split("'").length % 2 === 0 || text.endsWith('\\');
  while (end + 1 < lines.length && open(lines.slice(first, end + 1).join('\n'))) end++;
  return lines.slice(first, end + 1).join('\n');
}

export interface RunningScript {
  /** The process group bash leads, where the script's commands and background jobs live. */
  pgid: number;
  /** What the script printed on standard output so far. */
  stdout(): string;
  /** What the script printed on standard error so far. */
  stderr(): string;
  done: Promise<ScriptRun>;
}

/**
 * Starts a README script with `bash -e` in `cwd`, in a process group of its own.
 * Each curl prints its status after a marker, and `npm` runs the repository's
 * scripts (`npm --prefix ROOT`, so `cwd` can be a temporary directory) and
 * prints its exit status after one, so one run yields every answer in order.
 * The caller stops what the script left in its process group (`stopGroup`).
 */
export function startReadmeScript(script: string, opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): RunningScript {
  const npm = `npm() { local rc=0; command npm --prefix '${ROOT}' "$@" || rc=$?; printf '\\n${MARK} %s\\n' "$rc"; return "$rc"; }\n`;
  const run = npm + script.replace(/^curl /gm, `curl -sS -w '\\n${MARK} %{http_code} %{http_version}\\n' `);
  const bash = spawn('bash', ['-e', '-c', run], {
    cwd: opts.cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  bash.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  bash.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const pgid = bash.pid!;
  const timer = setTimeout(() => stopGroup(pgid), opts.timeoutMs);
  // A background job the script left running keeps standard output open, so the run ends when bash exits
  // (plus a moment to read what is still in the pipe), not when the pipe closes.
  const closed = new Promise<void>((resolve) => bash.once('close', () => resolve()));
  const done = new Promise<ScriptRun>((resolve) =>
    bash.once('exit', (status, signal) => {
      clearTimeout(timer);
      void Promise.race([closed, new Promise((r) => setTimeout(r, 2_000))]).then(() => {
        const parts = stdout.split(new RegExp(`\\n${MARK} (\\d+)(?: (\\S+))?\\n`));
        const answers: Answer[] = [];
        for (let i = 0; i + 3 < parts.length; i += 3) {
          answers.push({ output: parts[i]!, code: Number(parts[i + 1]), ...(parts[i + 2] ? { httpVersion: parts[i + 2] } : {}) });
        }
        resolve({ answers, stdout, stderr, status, signal, pgid });
      });
    }),
  );
  return { pgid, stdout: () => stdout, stderr: () => stderr, done };
}

/** Runs a README script to its end (see `startReadmeScript`). */
export function runReadmeScript(script: string, opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<ScriptRun> {
  return startReadmeScript(script, opts).done;
}

/** True while any process is left in the group. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILLs whatever is left in a script's process group. */
export function stopGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // The group is empty.
  }
}

/** What `npm run` prints of its own before the script's output (`> pkg@version name`, `> command`, blank lines). */
export function withoutNpmBanner(output: string): string[] {
  return output.split('\n').filter((l) => l !== '' && !l.startsWith('> '));
}
