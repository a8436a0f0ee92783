/**
 * The data dir holds the config (TLS keys among it) and the generated keys:
 * it is created 0700 and every file in it 0600, whatever the umask, and an
 * existing dir or store left readable by others is tightened on start.
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestGateway } from '../helpers/gateway.js';

const root = mkdtempSync(join(tmpdir(), 'portico-perm-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const mode = (p: string): number => statSync(p).mode & 0o777;

async function writeThroughAdmin(dataDir: string): Promise<void> {
  const gw = await startTestGateway({ dataDir, config: { deployment: { admin: { admin_key: [{ name: 'admin', key: '', role: 'admin' }] } } } });
  try {
    const key = gw.gateway.config.deployment.admin.admin_key[0]!.key;
    const res = await gw.admin('PUT', '/apisix/admin/upstreams/1', { nodes: { '127.0.0.1:1980': 1 } }, key);
    expect(res.status, res.text).toBe(201);
    // While the store is open its WAL and shared-memory files exist too.
    for (const f of readdirSync(dataDir)) expect(mode(join(dataDir, f)), f).toBe(0o600);
    expect(readdirSync(dataDir)).toEqual(expect.arrayContaining(['portico.db', 'portico.db-wal', 'secrets.json']));
  } finally {
    await gw.close();
  }
}

describe('data dir permissions', () => {
  it('a new data dir is 0700 and its files 0600, even under umask 000', async () => {
    const dir = join(root, 'fresh', 'data');
    const old = process.umask(0);
    try {
      await writeThroughAdmin(dir);
    } finally {
      process.umask(old);
    }
    expect(mode(dir)).toBe(0o700);
    for (const f of readdirSync(dir)) expect(mode(join(dir, f)), f).toBe(0o600);
  });

  it('an existing dir and store readable by others are tightened', async () => {
    const dir = join(root, 'old');
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'portico.db'), '');
    chmodSync(join(dir, 'portico.db'), 0o644);
    await writeThroughAdmin(dir);
    expect(mode(dir)).toBe(0o700);
    for (const f of readdirSync(dir)) expect(mode(join(dir, f)), f).toBe(0o600);
  });
});
