/**
 * kafkajs and the protobuf codec load only once a config has a Kafka upstream,
 * so the request path of a gateway without one runs in a smaller process
 * (README, Performance). Checked in a fresh process on the compiled data
 * plane, since this test runner's own module cache already holds both.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';

const run = promisify(execFile);
const DIST = fileURLToPath(new URL('../../dist/src/', import.meta.url));

const PROBE = `
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const loaded = (pkg) => Object.keys(require.cache).some((k) => k.includes('/node_modules/' + pkg + '/'));
const { ConfigSnapshot } = await import(${JSON.stringify(DIST + 'core/snapshot/snapshot.js')});
await import(${JSON.stringify(DIST + 'core/dataplane/server.js')});
await import(${JSON.stringify(DIST + 'pubsub/index.js')});
const { pino } = await import('pino');
const out = {};
const { loadConfig } = await import(${JSON.stringify(DIST + 'core/config/file.js')});
const snapshots = new ConfigSnapshot({ registry: { get: () => undefined }, config: loadConfig({ overrides: {}, env: {} }), logger: pino({ level: 'silent' }) });
const put = (key, value) => ({ type: 'put', key, value, createRevision: 1, modRevision: 1 });
snapshots.apply([put('/apisix/upstreams/web', { id: 'web', type: 'roundrobin', nodes: { '127.0.0.1:1': 1 } })], 1);
snapshots.compile();
out.upstreams = [...snapshots.current.upstreams.keys()];
out.afterHttp = { kafkajs: loaded('kafkajs'), protobufjs: loaded('protobufjs') };
snapshots.apply([put('/apisix/upstreams/mq', { id: 'mq', type: 'none', scheme: 'kafka', nodes: { '127.0.0.1:9092': 1 } })], 2);
snapshots.compile();
out.upstreams.push(...snapshots.current.upstreams.keys());
// The handler module's graph loads asynchronously: either package may show up first.
for (let i = 0; i < 100 && !(loaded('kafkajs') && loaded('protobufjs')); i++) await new Promise((r) => setTimeout(r, 20));
out.afterKafka = { kafkajs: loaded('kafkajs'), protobufjs: loaded('protobufjs') };
console.log(JSON.stringify(out));
process.exit(0);
`;

test('a gateway loads kafkajs and protobufjs only once a Kafka upstream is configured', async () => {
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', PROBE], { cwd: fileURLToPath(new URL('../..', import.meta.url)) });
  const out = JSON.parse(stdout.trim().split('\n').pop()!);
  // Both compiles took effect, so a missing load is not a compile that never ran.
  expect(out.upstreams).toEqual(['web', 'web', 'mq']);
  expect(out.afterHttp).toEqual({ kafkajs: false, protobufjs: false });
  expect(out.afterKafka).toEqual({ kafkajs: true, protobufjs: true });
});
