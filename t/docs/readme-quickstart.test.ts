/**
 * The README's quick start, run as written: its `sh` blocks that call curl are
 * read from README.md (so the test breaks when the README drifts), run by bash
 * against a gateway process and the echo upstream that `npm run echo-upstream`
 * starts, and every curl's answer is checked against what the README says next
 * to it. Only the addresses change: 9180, 9080, 9443 and 1980 become the
 * ephemeral ports the test's processes listen on.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { freePort } from '../helpers/ports.js';
import {
  localise as localiseAddresses,
  readmeCommands,
  readmeSection,
  ROOT,
  runReadmeScript,
  shBlocks,
  startReadmeGateway,
  stopGroup,
  type Answer,
  type ReadmeCommand,
  type ReadmeGateway,
} from '../helpers/readme.js';

const KEY = 'readme-quickstart-key-0123456789abcdef';

/** The quick start's `sh` blocks that call curl, each with its curl commands; the HTTPS recipe is the one calling https://. */
function quickStartBlocks(): Array<{ script: string; curls: ReadmeCommand[]; https: boolean }> {
  return shBlocks(readmeSection('Quick start'))
    .filter((b) => /^curl /m.test(b))
    .map((script) => ({ script, curls: readmeCommands(script, (l) => l.startsWith('curl ')), https: script.includes('https://') }));
}

let gw: ReadmeGateway;
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

  gw = await startReadmeGateway(join(work, 'data'), KEY);
  Object.assign(ports, gw.ports);
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  if (echo && echo.exitCode === null) {
    echo.kill('SIGTERM');
    await new Promise((r) => echo.once('exit', r));
  }
  rmSync(work, { recursive: true, force: true });
});

const localise = (s: string): string => localiseAddresses(s, ports);

/** Checks one answer against what the README says of it. */
function check(cmd: ReadmeCommand, answer: Answer): void {
  const { code: status, output } = answer;
  const what = `${cmd.text}${cmd.says ? `   # ${cmd.says}` : ''}\n-> ${status} (HTTP/${answer.httpVersion})\n${output}`;
  // With -i the head comes first; the body is what follows the blank line.
  const body = cmd.text.includes(' -i ') ? output.slice(output.indexOf('\r\n\r\n') + 4) : output;
  if (!cmd.says) {
    expect(status, what).toBeGreaterThanOrEqual(200);
    expect(status, what).toBeLessThan(300);
    return;
  }
  const proxied = cmd.says.match(/^proxied to ([\d.]+:\d+)(\/\S*?),?(?: over HTTP\/(\S+))?$/);
  if (proxied) {
    expect(status, what).toBe(200);
    const echoed = JSON.parse(body) as { path: string; upstream: string };
    expect(echoed.upstream, what).toBe(localise(proxied[1]!));
    expect(echoed.path, what).toBe(proxied[2]);
    if (proxied[3]) expect(answer.httpVersion, what).toBe(proxied[3]);
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

/** Runs one block with bash and checks each curl's answer; returns the answers. */
async function runBlock({ script, curls }: { script: string; curls: ReadmeCommand[] }): Promise<Answer[]> {
  const run = await runReadmeScript(localise(script), { cwd: work, env: { KEY }, timeoutMs: 30_000 });
  stopGroup(run.pgid);
  expect(run.status, `bash exited ${run.status}:\n${localise(script)}\n${run.stdout}\n${run.stderr}`).toBe(0);
  expect(run.answers.length, `one answer per curl in:\n${run.stdout}`).toBe(curls.length);
  curls.forEach((cmd, i) => check(cmd, run.answers[i]!));
  return run.answers;
}

test('every curl line of the quick start answers as the README says', async () => {
  const blocks = quickStartBlocks().filter((b) => !b.https);
  expect(blocks.length).toBeGreaterThanOrEqual(1);
  let checked = 0;
  for (const block of blocks) {
    await runBlock(block);
    checked += block.curls.length;
  }
  // The HTTP block has four curl lines: a README that lost them fails here.
  expect(checked).toBeGreaterThanOrEqual(4);
}, 90_000);

// Uses the route the quick start's lines created, as a reader following the README has it.
test('the HTTPS recipe serves the stored certificate by SNI and proxies over HTTP/2, as the README says', async () => {
  const blocks = quickStartBlocks().filter((b) => b.https);
  expect(blocks.length, 'the quick start has an HTTPS block').toBe(1);
  const block = blocks[0]!;
  // The ssls PUT and the HTTPS call, which says over what it is proxied.
  expect(block.curls.length).toBeGreaterThanOrEqual(2);
  expect(block.script, 'the recipe makes its own certificate').toMatch(/^openssl req /m);
  expect(block.curls.some((c) => c.text.includes('https://') && / over HTTP\/2$/.test(c.says ?? ''))).toBe(true);
  // curl checks the served certificate against the recipe's own (--cacert, no -k): a wrong one fails the run.
  await runBlock(block);
  // "The Admin API never shows the private key back" (the PUT's answer is covered by t/admin/ssl-encryption.test.ts).
  const ssl = block.curls.find((c) => c.text.includes('/apisix/admin/ssls/'))!.text.match(/\/apisix\/admin\/ssls\/\S+/)![0];
  for (const path of [ssl, '/apisix/admin/ssls']) {
    const res = await fetch(`http://127.0.0.1:${ports.admin}${path}`, { headers: { 'X-API-KEY': KEY } });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    expect(text).toContain('BEGIN CERTIFICATE');
    expect(text).not.toMatch(/PRIVATE KEY/);
  }
}, 90_000);
