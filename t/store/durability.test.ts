/**
 * An acknowledged Admin API write survives kill -9 of the gateway at any moment.
 * A client streams PUTs through real HTTP; the gateway is SIGKILLed mid-stream
 * several times; after each restart every write that got a 2xx is there, with
 * the value that was acknowledged last.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { startListening, testConfigYaml, writeTempConfig } from '../helpers/process.js';

const dataDir = mkdtempSync(join(tmpdir(), 'portico-durable-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

test('every acknowledged write survives repeated kill -9', async () => {
  const config = writeTempConfig(testConfigYaml(dataDir));
  const key = 'durability-test-key-0123456789abcdef';
  const acked = new Map<string, number>(); // upstream id -> last acknowledged weight
  let seq = 0;

  for (let round = 0; round < 3; round++) {
    const gw = await startListening(['--config', config], { PORTICO_ADMIN_KEY: key });
    const base = `http://127.0.0.1:${gw.adminPort}/apisix/admin`;

    // Everything acknowledged before this start must still be there.
    for (const [id, weight] of acked) {
      const res = await fetch(`${base}/upstreams/${id}`, { headers: { 'X-API-KEY': key } });
      expect(res.status, `upstream ${id} after restart ${round}`).toBe(200);
      const body = (await res.json()) as { value: { nodes: Record<string, number> } };
      // The write in flight at the kill may have committed without its 2xx reaching us.
      expect(body.value.nodes['127.0.0.1:1980']).toBeGreaterThanOrEqual(weight);
    }

    // Stream writes from several concurrent clients; kill -9 while they are in flight.
    let stop = false;
    // Each writer owns its ids, so per id the acknowledgement order is the commit order.
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const n = seq++;
        const id = `w${w}-${i % 12}`;
        try {
          const res = await fetch(`${base}/upstreams/${id}`, {
            method: 'PUT',
            headers: { 'X-API-KEY': key, 'content-type': 'application/json' },
            body: JSON.stringify({ type: 'roundrobin', nodes: { '127.0.0.1:1980': n } }),
          });
          if (res.status === 200 || res.status === 201) acked.set(id, n);
        } catch {
          return; // the process died under us: this write was never acknowledged
        }
      }
    };
    const writers = [0, 1, 2, 3].map(writer);
    await new Promise((r) => setTimeout(r, 300 + round * 150));
    gw.proc.kill('SIGKILL');
    stop = true;
    await Promise.all(writers);
    await gw.exited;
  }

  expect(acked.size).toBeGreaterThan(10);
  const gw = await startListening(['--config', config], { PORTICO_ADMIN_KEY: key });
  try {
    const res = await fetch(`http://127.0.0.1:${gw.adminPort}/apisix/admin/upstreams`, { headers: { 'X-API-KEY': key } });
    const body = (await res.json()) as { total: number; list: Array<{ value: { id: string; nodes: Record<string, number> } }> };
    const stored = new Map(body.list.map((i) => [String(i.value.id), i.value.nodes['127.0.0.1:1980']]));
    for (const [id, weight] of acked) {
      // Never an earlier value than the one acknowledged.
      expect(stored.get(id), `upstream ${id}`).toBeGreaterThanOrEqual(weight);
    }
  } finally {
    gw.proc.kill('SIGTERM');
    await gw.exited;
  }
}, 60_000);
