/**
 * Two gateway nodes on one etcd: a write through one node's Admin API is served
 * by the other; with etcd gone both keep serving their last config and admin
 * writes answer 503; etcd back, writes succeed and both nodes converge again.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startListening, testConfigYaml, writeTempConfig } from '../helpers/process.js';

let etcd: EtcdServer;
let a: TestGateway;
let b: TestGateway;
let upstream: Server;
let node = '';

async function until(fn: () => Promise<boolean>, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('condition not met in time');
}

const status = async (gw: TestGateway, path: string) => (await fetch(gw.dataUrl + path)).status;

beforeAll(async () => {
  etcd = await startEtcd();
  upstream = createServer((req, res) => res.end(`hello ${req.url}`));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  node = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  // Nodes of one cluster share the data_encryption keyring (as APISIX's do), or one could not read the
  // encrypted fields (key-auth keys) the other wrote.
  const keyring = [randomBytes(8).toString('hex')];
  const config = {
    apisix: { data_encryption: { keyring } },
    deployment: { config_provider: 'etcd' as const, etcd: { host: [etcd.endpoint], prefix: '/portico-cluster', timeout: 2 } },
  };
  a = await startTestGateway({ config });
  b = await startTestGateway({ config });
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  await etcd?.stop();
  await new Promise<void>((r) => upstream?.close(() => r()));
});

test('a write on one node is served by the other, and both survive etcd going away', async () => {
  expect((await a.admin('PUT', '/apisix/admin/upstreams/1', { type: 'roundrobin', nodes: { [node]: 1 } })).status).toBe(201);
  expect((await a.admin('PUT', '/apisix/admin/routes/1', { uri: '/one', upstream_id: '1' })).status).toBe(201);
  await until(async () => (await status(b, '/one')) === 200);
  // Both nodes read the same store through their own Admin API too.
  expect((await b.admin('GET', '/apisix/admin/routes/1')).body.value.uri).toBe('/one');

  await etcd.kill();
  // The data planes keep their last good config.
  expect(await status(a, '/one')).toBe(200);
  expect(await status(b, '/one')).toBe(200);
  // Admin writes fail clearly instead of hanging or crashing.
  const down = await a.admin('PUT', '/apisix/admin/routes/2', { uri: '/two', upstream_id: '1' });
  expect(down.status).toBe(503);
  expect(down.body.error_msg).toMatch(/etcd/);

  await etcd.restart();
  await until(async () => (await b.admin('PUT', '/apisix/admin/routes/2', { uri: '/two', upstream_id: '1' })).status === 201, 15_000);
  await until(async () => (await status(a, '/two')) === 200, 15_000);
  await until(async () => (await status(b, '/two')) === 200, 15_000);
}, 60_000);

test('consumer credentials and groups written on one node authenticate on the other; deleting the consumer revokes its credentials there', async () => {
  const auth = (gw: TestGateway, key: string) => fetch(gw.dataUrl + '/cred', { headers: { apikey: key } });
  expect((await a.admin('PUT', '/apisix/admin/upstreams/1', { type: 'roundrobin', nodes: { [node]: 1 } })).status).toBeLessThan(300);
  expect((await a.admin('PUT', '/apisix/admin/consumer_groups/team', { plugins: { 'response-rewrite': { headers: { set: { 'x-team': 'yes' } } } } })).status).toBe(201);
  expect((await a.admin('PUT', '/apisix/admin/consumers', { username: 'kim', group_id: 'team' })).status).toBe(201);
  expect((await a.admin('PUT', '/apisix/admin/consumers/kim/credentials/laptop', { plugins: { 'key-auth': { key: 'kim-laptop' } } })).status).toBe(201);
  expect((await a.admin('PUT', '/apisix/admin/routes/cred', { uri: '/cred', upstream_id: '1', plugins: { 'key-auth': {} } })).status).toBe(201);
  // The credential sits under the consumer's key in etcd, and node b reads it from there.
  expect((await b.admin('GET', '/apisix/admin/consumers/kim/credentials')).body.list.map((i: { key: string }) => i.key)).toEqual([
    '/apisix/consumers/kim/credentials/laptop',
  ]);
  await until(async () => (await auth(b, 'kim-laptop')).status === 200);
  expect((await auth(b, 'kim-laptop')).headers.get('x-team')).toBe('yes');

  expect((await b.admin('DELETE', '/apisix/admin/consumers/kim')).status).toBe(200);
  await until(async () => (await auth(a, 'kim-laptop')).status === 401);
  expect((await a.admin('GET', '/apisix/admin/consumers/kim/credentials/laptop')).status).toBe(404);
}, 30_000);

test('a node whose keyring differs cannot read encrypted keys the others wrote, and says so', async () => {
  // Its own process: plugins keep per-process state (key-auth's key table), as APISIX's workers do, so two
  // gateways with different views of the same consumers cannot share one test process.
  const dir = mkdtempSync(join(tmpdir(), 'portico-stranger-'));
  const yaml = testConfigYaml(
    dir,
    `  config_provider: etcd\n  etcd:\n    host: ["${etcd.endpoint}"]\n    prefix: /portico-cluster\n    timeout: 2\n` +
      'plugin_attr:\n  prometheus:\n    export_addr: { ip: 127.0.0.1, port: 0 }\n',
  ).replace('apisix:\n', `apisix:\n  data_encryption:\n    keyring: ["${randomBytes(8).toString('hex')}"]\n`);
  const stranger = await startListening(['--config', writeTempConfig(yaml)], { PORTICO_ADMIN_KEY: randomBytes(16).toString('hex') });
  try {
    expect((await a.admin('PUT', '/apisix/admin/upstreams/1', { type: 'roundrobin', nodes: { [node]: 1 } })).status).toBeLessThan(300);
    expect((await a.admin('PUT', '/apisix/admin/routes/lee', { uri: '/lee', upstream_id: '1', plugins: { 'key-auth': {} } })).status).toBe(201);
    expect((await a.admin('PUT', '/apisix/admin/consumers', { username: 'lee', plugins: { 'key-auth': { key: 'lee-key' } } })).status).toBe(201);
    const call = (url: string) => fetch(url + '/lee', { headers: { apikey: 'lee-key' } });
    await until(async () => (await call(b.dataUrl)).status === 200);
    await stranger.waitFor(/"plugin":"key-auth".*does not decrypt with apisix\.data_encryption\.keyring/, 5000);
    // It serves the route, but with a key it could not read no request authenticates.
    await until(async () => (await fetch(`http://127.0.0.1:${stranger.dataPort}/lee`)).status === 401);
    expect((await call(`http://127.0.0.1:${stranger.dataPort}`)).status).toBe(401);
  } finally {
    stranger.proc.kill('SIGTERM');
    await stranger.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}, 30_000);
