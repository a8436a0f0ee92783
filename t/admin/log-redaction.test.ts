/**
 * Credentials never reach a log line: the admin key sent as `?api_key=`, in
 * X-API-KEY or its cookie, an Authorization header, or a key-auth key in the
 * query. The gateway logs at info (the Admin API's access log included) into
 * a buffer, and no line may hold a secret sent on the wire. The logger is a
 * plain pino one, as an embedding program would pass: the masking must not
 * depend on who built it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, mergeConfig } from '../../src/core/config/file.js';
import { pino } from 'pino';
import { startGateway, type Gateway } from '../../src/gateway.js';

const lines: string[] = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    lines.push(...chunk.toString().split('\n').filter(Boolean));
    done();
  },
});

const adminKey = randomBytes(16).toString('hex');
const secrets = { adminKey, wrong: 'wrong-' + randomBytes(8).toString('hex'), basic: randomBytes(8).toString('hex'), consumer: 'ck-' + randomBytes(8).toString('hex') };
let gw: Gateway;
let dir: string;
let admin: string;
let data: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portico-logs-'));
  const config = loadConfig({
    overrides: mergeConfig(
      {
        apisix: { node_listen: { ip: '127.0.0.1', port: 0 }, ssl: { listen: [{ ip: '127.0.0.1', port: 0 }] } },
        nginx_config: { worker_processes: 1 },
        plugin_attr: { prometheus: { export_addr: { ip: '127.0.0.1', port: 0 } } },
        deployment: { admin: { admin_listen: { ip: '127.0.0.1', port: 0 }, admin_key: [{ name: 'admin', key: adminKey, role: 'admin' }] }, embedded: { data_dir: dir } },
      },
      {},
    ),
    env: {},
  });
  gw = await startGateway(config, { logger: pino({ level: 'info' }, sink), inProcess: true });
  admin = `http://127.0.0.1:${gw.adminAddress!.port}/apisix/admin`;
  data = `http://127.0.0.1:${gw.dataAddress.port}`;
});

afterAll(async () => {
  await gw?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('log lines', () => {
  it('hold no credential sent to the Admin API or the data plane', async () => {
    expect((await fetch(`${admin}/routes?api_key=${adminKey}`)).status).toBe(200);
    expect((await fetch(`${admin}/routes?page=1&api_key=${secrets.wrong}`)).status).toBe(401);
    expect((await fetch(`${admin}/routes`, { headers: { 'X-API-KEY': adminKey } })).status).toBe(200);
    expect((await fetch(`${admin}/routes`, { headers: { cookie: `X-API-KEY=${adminKey}` } })).status).toBe(200);
    expect((await fetch(`${admin}/routes`, { headers: { authorization: `Basic ${secrets.basic}`, 'X-API-KEY': adminKey } })).status).toBe(200);
    expect((await fetch(`${admin}/nothing-here?api_key=${adminKey}`)).status).toBe(404);

    const put = (path: string, body: unknown) => fetch(`${admin}${path}`, { method: 'PUT', headers: { 'X-API-KEY': adminKey, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await put('/consumers', { username: 'jack', plugins: { 'key-auth': { key: secrets.consumer } } })).status).toBeLessThan(300);
    // A key-auth query name of the operator's choosing, and a dead upstream so the proxy logs its failure.
    expect((await put('/routes/k', { uri: '/k', plugins: { 'key-auth': { query: 'my_token' } }, upstream: { nodes: { '127.0.0.1:1': 1 } } })).status).toBeLessThan(300);
    let status = 404;
    for (let i = 0; i < 100 && status === 404; i++) {
      status = (await fetch(`${data}/k?my_token=${secrets.consumer}`)).status;
      if (status === 404) await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe(502);

    // The access log is on (so the test can fail), and shows where a key was masked.
    expect(lines.some((l) => l.includes('api_key=[REDACTED]'))).toBe(true);
    for (const [what, secret] of Object.entries(secrets)) {
      const leaked = lines.filter((l) => l.includes(secret));
      expect(leaked, what).toEqual([]);
    }
  });
});
