/**
 * apisix.status as a readiness probe, on a gateway run as `npm start` runs it
 * (a real process with two data-plane workers): /status/ready answers 503
 * naming what is missing while the workers start, 200 once both serve, and
 * 503 again while a killed worker is replaced; /status answers 200 throughout.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { startGatewayProcess, testConfigYaml, writeTempConfig } from '../helpers/process.js';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function probe(url: string): Promise<{ status: number; body: { status: string; error?: string } } | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    return { status: res.status, body: (await res.json()) as { status: string; error?: string } };
  } catch {
    return undefined; // not listening yet
  }
}

test('/status/ready: 503 while the workers start, 200 once every worker serves, 503 while one is replaced', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'portico-status-'));
  const port = await freePort();
  // Fixed ports: a worker forked while another still holds port 0's shared handle cannot bind the resolved port.
  const [dataPort, tlsPort] = [await freePort(), await freePort()];
  const yaml = testConfigYaml(dir, 'nginx_config:\n  worker_processes: 2\n')
    .replace('node_listen: { ip: 127.0.0.1, port: 0 }', `node_listen: { ip: 127.0.0.1, port: ${dataPort} }`)
    .replace('listen: [{ ip: 127.0.0.1, port: 0 }]', `listen: [{ ip: 127.0.0.1, port: ${tlsPort} }]`)
    .replace('apisix:\n', `apisix:\n  status: { ip: 127.0.0.1, port: ${port} }\n`);
  const gp = startGatewayProcess(['--config', writeTempConfig(yaml)], { PORTICO_ADMIN_KEY: randomBytes(16).toString('hex') });
  try {
    const ready = `http://127.0.0.1:${port}/status/ready`;
    const seen: Array<{ status: number; error?: string }> = [];
    const until = Date.now() + 30_000;
    for (;;) {
      const r = await probe(ready);
      if (r !== undefined) {
        seen.push({ status: r.status, error: r.body.error });
        if (r.status === 200) {
          expect(r.body).toEqual({ status: 'ok' });
          break;
        }
        expect(r.body.status).toBe('error');
      }
      if (Date.now() > until) throw new Error(`never ready: ${JSON.stringify(seen.slice(-3))}\n${gp.output()}`);
      await new Promise((res) => setTimeout(res, 10));
    }
    const notReady = seen.filter((s) => s.status === 503);
    expect(notReady.length).toBeGreaterThan(0);
    expect(notReady[0]!.error).toMatch(/^(the data plane has not started|worker count: 2 but status report count: [01])$/);
    expect((await probe(`http://127.0.0.1:${port}/status`))?.status).toBe(200);

    // A worker dies: not ready until its replacement serves.
    await gp.waitFor(/data plane listening on http:\/\//);
    const { execFileSync } = await import('node:child_process');
    const children = execFileSync('pgrep', ['-P', String(gp.proc.pid)], { encoding: 'utf8' }).trim().split('\n').map(Number);
    expect(children.length).toBe(2);
    process.kill(children[0]!, 'SIGKILL');
    const states: number[] = [];
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const r = await probe(ready);
      if (r !== undefined) states.push(r.status);
      if (states.includes(503) && r?.status === 200) break;
      await new Promise((res) => setTimeout(res, 5));
    }
    expect(states).toContain(503);
    expect(states.at(-1), gp.output()).toBe(200);
  } finally {
    gp.proc.kill('SIGKILL');
    await gp.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
