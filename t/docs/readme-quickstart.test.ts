/**
 * The README's quick start, run as written: its `sh` blocks that call curl are
 * read from README.md (so the test breaks when the README drifts), run by bash
 * against a gateway process and the echo upstream that `npm run echo-upstream`
 * starts, and every curl's answer is checked against what the README says next
 * to it. Only the addresses change: 9180, 9080, 9443 and 1980 become the
 * ephemeral ports the test's processes listen on.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { freePort } from '../helpers/ports.js';
import { startGatewayProcess, testConfigYaml, writeTempConfig, type GatewayProcess } from '../helpers/process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const KEY = 'readme-quickstart-key-0123456789abcdef';
const MARK = '@@README-STATUS';

interface Command {
  /** The command as the README writes it, continuation lines joined. */
  text: string;
  /** What the README says it answers (the comment at the end of its line), if anything. */
  says?: string;
}

/** The quick start's `sh` blocks that call curl, each with its curl commands. */
function quickStartBlocks(): Array<{ script: string; curls: Command[] }> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Quick start');
  expect(start, 'README.md has a "## Quick start" section').toBeGreaterThan(0);
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end);
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((b) => /^curl /m.test(b));
  return blocks.map((script) => {
    const logical = script.replace(/\\\n\s*/g, '').split('\n');
    const curls = logical
      .filter((l) => l.startsWith('curl '))
      .map((l) => {
        const m = l.match(/^(.*?)\s+#\s+(.*)$/);
        return m ? { text: m[1]!, says: m[2]! } : { text: l };
      });
    return { script, curls };
  });
}

let gw: GatewayProcess;
let echo: ReturnType<typeof spawn>;
const ports = { admin: 0, data: 0, tls: 0, echo: 0 };
const work = mkdtempSync(join(tmpdir(), 'portico-readme-'));

beforeAll(async () => {
  ports.echo = await freePort();
  // The echo upstream exactly as `npm run echo-upstream` runs it (the script's command from package.json).
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const cmd = pkg.scripts['echo-upstream'];
  expect(cmd, 'package.json has an echo-upstream script').toBeTruthy();
  echo = spawn('sh', ['-c', `exec ${cmd} --port ${ports.echo}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    echo.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening on')) resolve();
    });
    echo.on('exit', (code) => reject(new Error(`echo upstream exited (${code}): ${out}`)));
  });

  const yaml = testConfigYaml(join(work, 'data'), 'plugin_attr:\n  prometheus:\n    export_addr: { ip: 127.0.0.1, port: 0 }\n');
  gw = startGatewayProcess(['--config', writeTempConfig(yaml)], { PORTICO_ADMIN_KEY: KEY });
  ports.data = Number((await gw.waitFor(/data plane listening on http:\/\/[^:]+:(\d+)/, 60_000))[1]);
  ports.tls = Number((await gw.waitFor(/data plane listening on https:\/\/[^:]+:(\d+)/, 60_000))[1]);
  ports.admin = Number((await gw.waitFor(/Admin API listening on http:\/\/[^:]+:(\d+)/, 60_000))[1]);
}, 90_000);

afterAll(async () => {
  if (gw && gw.proc.exitCode === null) {
    gw.proc.kill('SIGTERM');
    await gw.exited;
  }
  if (echo && echo.exitCode === null) {
    echo.kill('SIGTERM');
    await new Promise((r) => echo.once('exit', r));
  }
  rmSync(work, { recursive: true, force: true });
});

function localise(s: string): string {
  return s
    .replaceAll('127.0.0.1:9180', `127.0.0.1:${ports.admin}`)
    .replaceAll('127.0.0.1:9080', `127.0.0.1:${ports.data}`)
    .replaceAll('127.0.0.1:1980', `127.0.0.1:${ports.echo}`)
    .replace(/\b9443\b/g, String(ports.tls));
}

/** Checks one answer against what the README says of it. */
function check(cmd: Command, status: number, output: string): void {
  const what = `${cmd.text}${cmd.says ? `   # ${cmd.says}` : ''}\n-> ${status}\n${output}`;
  // With -i the head comes first; the body is what follows the blank line.
  const body = cmd.text.includes(' -i ') ? output.slice(output.indexOf('\r\n\r\n') + 4) : output;
  if (!cmd.says) {
    expect(status, what).toBeGreaterThanOrEqual(200);
    expect(status, what).toBeLessThan(300);
    return;
  }
  const proxied = cmd.says.match(/^proxied to ([\d.]+:\d+)(\/\S*)$/);
  if (proxied) {
    expect(status, what).toBe(200);
    const echoed = JSON.parse(body) as { path: string; upstream: string };
    expect(echoed.upstream, what).toBe(localise(proxied[1]!));
    expect(echoed.path, what).toBe(proxied[2]);
    return;
  }
  if (cmd.says.startsWith('{')) {
    expect(status, what).toBe(200);
    // `[...]` stands for "a list of something".
    const expected = JSON.parse(cmd.says.replaceAll('[...]', '[]')) as Record<string, unknown>;
    const got = JSON.parse(body) as Record<string, unknown>;
    for (const [k, v] of Object.entries(expected)) {
      if (Array.isArray(v)) expect(Array.isArray(got[k]), `${what}\n(${k} is a list)`).toBe(true);
      else expect(got[k], `${what}\n(${k})`).toEqual(v);
    }
    return;
  }
  throw new Error(`the README says "${cmd.says}" of \`${cmd.text}\`, which this test does not know how to check: teach it`);
}

test('every curl line of the quick start answers as the README says', async () => {
  const blocks = quickStartBlocks();
  expect(blocks.length).toBeGreaterThanOrEqual(1);
  let checked = 0;
  for (const { script, curls } of blocks) {
    // Each curl also prints its status after a marker, so one bash run yields every answer in order.
    const run = localise(script).replace(/^curl /gm, `curl -sS -w '\\n${MARK} %{http_code}\\n' `);
    const r = spawnSync('bash', ['-e', '-c', run], { cwd: work, env: { PATH: process.env.PATH, KEY }, encoding: 'utf8', timeout: 30_000 });
    expect(r.status, `bash exited ${r.status}:\n${run}\n${r.stdout}\n${r.stderr}`).toBe(0);
    const parts = r.stdout.split(new RegExp(`\\n${MARK} (\\d{3})\\n`));
    expect((parts.length - 1) / 2, `one answer per curl in:\n${r.stdout}`).toBe(curls.length);
    curls.forEach((cmd, i) => check(cmd, Number(parts[2 * i + 1]), parts[2 * i]!));
    checked += curls.length;
  }
  // The HTTP block has four curl lines and the HTTPS one two: a README that lost them fails here.
  expect(checked).toBeGreaterThanOrEqual(6);
}, 90_000);
