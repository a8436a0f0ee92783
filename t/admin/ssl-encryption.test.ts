/**
 * Private keys at rest (APISIX's aes_encrypt_pkey, apisix/admin/resource.lua):
 * an ssl's `key` and `keys`, and an upstream's `tls.client_key`, are stored
 * encrypted with the data_encryption keyring; checks, PATCH merges, admin
 * reads and the data plane see them decrypted. Nothing on disk holds a PEM
 * private key in the clear.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selfSigned } from '../helpers/tls.js';
import { decryptValue } from '../../src/core/secrets/encryption.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

let gw: TestGateway;
let dir: string;
let server: https.Server;
let port: number;
let a: { cert: string; key: string };
let b: { cert: string; key: string };
const authorized: boolean[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portico-sslenc-'));
  a = selfSigned(dir, 'a', 'a.example');
  b = selfSigned(dir, 'b', 'portico-client');
  const srv = selfSigned(dir, 'srv', 'localhost');
  server = https.createServer({ cert: srv.cert, key: srv.key, requestCert: true, rejectUnauthorized: false, ca: [b.cert] }, (req, res) => {
    authorized.push((req.socket as TLSSocket).authorized);
    res.end('secure');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  // The helper's config keeps data encryption on (the default) with no keyring: one is generated.
  gw = await startTestGateway();
});

afterAll(async () => {
  await gw?.close();
  server?.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

const keyring = (): string[] => gw.gateway.config.apisix.data_encryption.keyring;
const stored = async (key: string) => (await gw.gateway.store.get(key))!.value as Record<string, any>;
const PEM_KEY = /PRIVATE KEY/;

function onDisk(): string {
  return readdirSync(gw.dataDir)
    .map((f) => readFileSync(join(gw.dataDir, f)).toString('latin1'))
    .join('\n');
}

describe('ssl private keys', () => {
  it('are stored encrypted with the keyring, and decrypt to what was sent', async () => {
    expect(keyring().length).toBe(1);
    const res = await gw.admin('PUT', '/apisix/admin/ssls/1', { sni: 'a.example', cert: a.cert, key: a.key, certs: [b.cert], keys: [b.key] });
    expect(res.status, res.text).toBe(201);
    const value = await stored('/apisix/ssls/1');
    expect(value.key).not.toMatch(PEM_KEY);
    expect(decryptValue(value.key, keyring())).toBe(a.key);
    expect(value.keys[0]).not.toMatch(PEM_KEY);
    expect(decryptValue(value.keys[0], keyring())).toBe(b.key);
    expect(value.cert).toBe(a.cert);
    expect(onDisk()).not.toMatch(PEM_KEY);
  });

  it('are left out of the answers to writes, as out of reads: a key sent once is never echoed', async () => {
    const put = await gw.admin('PUT', '/apisix/admin/ssls/echo', { sni: 'echo.example', cert: a.cert, key: a.key, certs: [b.cert], keys: [b.key] });
    expect(put.status, put.text).toBe(201);
    expect(put.text).not.toMatch(PEM_KEY);
    expect(put.body.value).not.toHaveProperty('key');
    expect(put.body.value).not.toHaveProperty('keys');
    expect(put.body.value.cert).toBe(a.cert);
    const post = await gw.admin('POST', '/apisix/admin/ssls', { sni: 'echo2.example', cert: a.cert, key: a.key });
    expect(post.status, post.text).toBe(201);
    expect(post.text).not.toMatch(PEM_KEY);
    const patch = await gw.admin('PATCH', '/apisix/admin/ssls/echo', { key: a.key, cert: a.cert });
    expect(patch.status, patch.text).toBe(200);
    expect(patch.text).not.toMatch(PEM_KEY);
    expect(patch.body.value.sni).toBe('echo.example');
    // Stored all the same, and served.
    expect(decryptValue((await stored('/apisix/ssls/echo')).key, keyring())).toBe(a.key);
  });

  it('a PATCH checks the decrypted pair and keeps the key encrypted once', async () => {
    const res = await gw.admin('PATCH', '/apisix/admin/ssls/1', { desc: 'patched' });
    expect(res.status, res.text).toBe(200);
    expect(decryptValue((await stored('/apisix/ssls/1')).key, keyring())).toBe(a.key);
    const sub = await gw.admin('PATCH', '/apisix/admin/ssls/1/key', JSON.stringify(a.key));
    expect(sub.status, sub.text).toBe(200);
    expect(decryptValue((await stored('/apisix/ssls/1')).key, keyring())).toBe(a.key);
    // A key that does not match the certificate is still refused after the merge.
    const bad = await gw.admin('PATCH', '/apisix/admin/ssls/1', { key: b.key });
    expect(bad.status).toBe(400);
  });

  it('a secret reference is stored as written', async () => {
    const res = await gw.admin('PUT', '/apisix/admin/ssls/2', { sni: 'c.example', cert: '$env://CERT', key: '$env://KEY' });
    expect(res.status, res.text).toBe(201);
    expect((await stored('/apisix/ssls/2')).key).toBe('$env://KEY');
  });
});

describe('upstream tls.client_key', () => {
  it('is stored encrypted, shown decrypted to admins, and presented by the data plane', async () => {
    const upstream = { scheme: 'https', nodes: { [`127.0.0.1:${port}`]: 1 }, tls: { verify: false, client_cert: b.cert, client_key: b.key } };
    expect((await gw.admin('PUT', '/apisix/admin/upstreams/m', upstream)).status).toBe(201);
    expect((await gw.admin('PUT', '/apisix/admin/routes/m', { uri: '/m', upstream_id: 'm' })).status).toBe(201);
    expect((await gw.admin('PUT', '/apisix/admin/routes/inline', { uri: '/inline', upstream })).status).toBe(201);
    const up = await stored('/apisix/upstreams/m');
    expect(up.tls.client_key).not.toMatch(PEM_KEY);
    expect(decryptValue(up.tls.client_key, keyring())).toBe(b.key);
    expect((await stored('/apisix/routes/inline')).upstream.tls.client_key).not.toMatch(PEM_KEY);
    expect(onDisk()).not.toMatch(PEM_KEY);

    expect((await gw.admin('GET', '/apisix/admin/upstreams/m')).body.value.tls.client_key).toBe(b.key);
    expect((await gw.admin('GET', '/apisix/admin/upstreams/m', undefined, gw.viewerKey)).body.value.tls.client_key).not.toMatch(PEM_KEY);

    for (const path of ['/m', '/inline']) {
      let res: Response | undefined;
      for (let i = 0; i < 100; i++) {
        res = await fetch(gw.dataUrl + path);
        if (res.status !== 404) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(res!.status, path).toBe(200);
      expect(await res!.text()).toBe('secure');
      expect(authorized.at(-1), path).toBe(true);
    }
  });
});
