/**
 * `npm start`'s process stops cleanly on SIGTERM: a request in flight when the
 * signal arrives still gets its whole answer, then the process exits 0.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { startListening, testConfigYaml, writeTempConfig } from '../helpers/process.js';

const dir = mkdtempSync(join(tmpdir(), 'portico-shutdown-'));
let upstream: Server | undefined;
afterAll(async () => {
  await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
  rmSync(dir, { recursive: true, force: true });
});

test('SIGTERM lets an in-flight proxied request finish, then exits 0', async () => {
  upstream = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first half, ');
    setTimeout(() => res.end('second half'), 800);
  });
  await new Promise<void>((r) => upstream!.listen(0, '127.0.0.1', r));
  const node = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const key = 'shutdown-test-key-0123456789abcdef';
  const gw = await startListening(['--config', writeTempConfig(testConfigYaml(dir))], { PORTICO_ADMIN_KEY: key });
  try {
    const put = await fetch(`http://127.0.0.1:${gw.adminPort}/apisix/admin/routes/slow`, {
      method: 'PUT',
      headers: { 'X-API-KEY': key, 'content-type': 'application/json' },
      body: JSON.stringify({ uri: '/slow', upstream: { type: 'roundrobin', nodes: { [node]: 1 } } }),
    });
    expect(put.status).toBe(201);
    await new Promise((r) => setTimeout(r, 100));

    const inFlight = fetch(`http://127.0.0.1:${gw.dataPort}/slow`).then(async (res) => ({ status: res.status, body: await res.text() }));
    await new Promise((r) => setTimeout(r, 300)); // the upstream has answered half
    gw.proc.kill('SIGTERM');
    const res = await inFlight;
    expect(res).toEqual({ status: 200, body: 'first half, second half' });
    expect((await gw.exited).code).toBe(0);
  } finally {
    if (gw.proc.exitCode === null) gw.proc.kill('SIGKILL');
  }
});
