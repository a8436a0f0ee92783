/**
 * file-logger through real sockets and a real file: one JSON line per request,
 * `match`, the path and log_format from plugin_metadata, and rotation: the
 * file is renamed, SIGUSR1 reaches the gateway's main process, and new lines
 * go to a new file at the old path, in-process and with two forked workers
 * (main forwards the reopen to each worker).
 */
import { mkdtempSync, readFileSync, renameSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, startEnv, type Env } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'portico-file-logger-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function lines(path: string): Array<Record<string, any>> {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, any>);
}

async function until(what: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!what()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('file-logger', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  it('appends one JSON entry per request; match picks the requests', async () => {
    const path = join(dir, 'match.log');
    await env.route('fl-match', '/fl/match', { 'file-logger': { path, match: [[['arg_log', '==', 'yes']]] } });
    await send(`${env.gw.dataUrl}/fl/match?log=yes`);
    await send(`${env.gw.dataUrl}/fl/match?log=no`);
    await send(`${env.gw.dataUrl}/fl/match?log=yes&n=2`);
    await until(() => lines(path).length >= 2);
    await new Promise((r) => setTimeout(r, 100));
    const got = lines(path);
    expect(got.map((e) => e.request.uri)).toEqual(['/fl/match?log=yes', '/fl/match?log=yes&n=2']);
    expect(got[0]!.route_id).toBe('fl-match');
    expect(got[0]!.response.status).toBe(200);
  });

  it('takes path and log_format from plugin_metadata', async () => {
    const path = join(dir, 'meta.log');
    await env.put('/apisix/admin/plugin_metadata/file-logger', { path, log_format: { uri: '$uri', status: '$status' } });
    await env.route('fl-meta', '/fl/meta', { 'file-logger': {} });
    await send(`${env.gw.dataUrl}/fl/meta`);
    await until(() => lines(path).length >= 1);
    expect(lines(path)).toEqual([{ uri: '/fl/meta', status: '200', route_id: 'fl-meta' }]);
    await env.put('/apisix/admin/plugin_metadata/file-logger', { log_format: {} });
  });

  it('reopens the file on SIGUSR1: after a rename, new lines go to a new file', async () => {
    const path = join(dir, 'rotate.log');
    await env.route('fl-rot', '/fl/rot/*', { 'file-logger': { path } });
    await send(`${env.gw.dataUrl}/fl/rot/1`);
    await until(() => lines(path).length === 1);
    renameSync(path, `${path}.1`);
    await send(`${env.gw.dataUrl}/fl/rot/2`); // still the renamed file: nothing reopened yet
    await until(() => lines(`${path}.1`).length === 2);
    process.kill(process.pid, 'SIGUSR1');
    await new Promise((r) => setTimeout(r, 50));
    await send(`${env.gw.dataUrl}/fl/rot/3`);
    await until(() => lines(path).length === 1);
    expect(lines(path)[0]!.request.uri).toBe('/fl/rot/3');
    expect(lines(`${path}.1`).map((e) => e.request.uri)).toEqual(['/fl/rot/1', '/fl/rot/2']);
  });

  it('refuses a bad match expression, naming it', async () => {
    const r = await env.gw.admin('PUT', '/apisix/admin/routes/fl-bad', {
      uri: '/fl/bad',
      plugins: { 'file-logger': { path: join(dir, 'x.log'), match: [[['a', 'nope', 1]]] } },
      upstream: { type: 'roundrobin', nodes: { [env.up.node]: 1 } },
    });
    expect(r.status).toBe(400);
    expect(r.body.error_msg).toMatch(/failed to validate the 'match' expression/);
  });
});

describe('file-logger with two workers', () => {
  it('SIGUSR1 to the main process reopens the file in every worker', async () => {
    const env = await startEnv({ nginx_config: { worker_processes: 2 } } as never);
    try {
      const path = join(dir, 'workers.log');
      await env.route('fl-w', '/fl/w/*', { 'file-logger': { path } });
      // Fresh connections, so both workers serve some of them.
      for (let i = 0; i < 10; i++) await send(`${env.gw.dataUrl}/fl/w/before`);
      await until(() => lines(path).filter((e) => e.request.uri === '/fl/w/before').length === 10);
      renameSync(path, `${path}.1`);
      process.kill(process.pid, 'SIGUSR1');
      await new Promise((r) => setTimeout(r, 500));
      for (let i = 0; i < 10; i++) await send(`${env.gw.dataUrl}/fl/w/after`);
      await until(() => lines(path).length === 10);
      expect(lines(path).every((e) => e.request.uri === '/fl/w/after')).toBe(true);
      expect(lines(`${path}.1`).every((e) => e.request.uri !== '/fl/w/after')).toBe(true);
    } finally {
      await env.close();
    }
  }, 90_000);
});
