/**
 * A write the Admin API answers with 2xx must never make the data plane drop
 * the object. Bodies are drawn from valid seeds and mutated at paths taken
 * from the schemas (core and plugin schemas alike) with hostile values:
 * non-finite and huge numbers, secret references, host-like junk, wrong
 * types. Each is PUT through the Admin API (real HTTP) into the store a data
 * plane watches; when it is accepted, the data plane must compile it: no
 * "skipping invalid object" or "left out of the router" for it, and an
 * enabled route or an upstream present in the snapshot. Bounded: a fixed
 * seed and a few hundred bodies, a few seconds.
 */
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDataPlane } from '../../src/core/process/launch.js';
import type { DataPlane } from '../../src/core/dataplane/types.js';
import { PluginRegistry } from '../../src/core/plugin/registry.js';
import { MemoryStore } from '../../src/core/store/memory.js';
import { getCoreSchema } from '../../src/schema/index.js';
import { startAdmin, type AdminHarness } from './harness.js';

const PLUGINS = ['cors', 'limit-count', 'response-rewrite', 'proxy-rewrite', 'key-auth', 'ip-restriction', 'request-id', 'basic-auth', 'jwt-auth'];
const INF = '__INFINITY__';
const NEG_INF = '__NEG_INFINITY__';

const warnings: Array<{ msg: string; key?: string; route?: string; err?: unknown; error?: unknown }> = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const line of chunk.toString().split('\n').filter(Boolean)) warnings.push(JSON.parse(line));
    done();
  },
});

let h: AdminHarness;
let dp: DataPlane;
let store: MemoryStore;

beforeAll(async () => {
  store = new MemoryStore();
  h = await startAdmin({ store, plugins: PLUGINS });
  dp = await startDataPlane({
    config: { ...h.config, apisix: { ...h.config.apisix, node_listen: { ip: '127.0.0.1', port: 0 } } },
    registry: await PluginRegistry.load(PLUGINS),
    store,
    logger: pino({ level: 'warn' }, sink),
    inProcess: true,
  });
});

afterAll(async () => {
  await dp?.close();
  await h?.close();
  await store?.close();
});

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const NODES = { '127.0.0.1:1980': 1 };
const SEEDS: Record<'routes' | 'upstreams' | 'services', Json[]> = {
  routes: [
    { uri: '/f/*', upstream: { nodes: NODES } },
    {
      uri: '/g',
      methods: ['GET'],
      hosts: ['a.example'],
      priority: 1,
      upstream: { nodes: [{ host: '127.0.0.1', port: 1980, weight: 1 }], timeout: { connect: 1, send: 1, read: 1 }, retries: 1 },
      plugins: { cors: { max_age: 5 }, 'limit-count': { count: 1, time_window: 60 }, 'response-rewrite': { status_code: 200 }, 'proxy-rewrite': { uri: '/x' } },
    },
    { uris: ['/k', '/l'], plugins: { 'key-auth': {}, 'ip-restriction': { whitelist: ['127.0.0.1'] }, 'request-id': {} }, upstream: { nodes: NODES, keepalive_pool: { size: 2 } } },
  ],
  upstreams: [
    { nodes: NODES },
    { nodes: [{ host: '127.0.0.1', port: 1980, weight: 1 }], type: 'chash', key: 'remote_addr', retry_timeout: 1, checks: { active: { http_path: '/' } } },
  ],
  services: [{ upstream: { nodes: NODES }, plugins: { 'limit-count': { count: 2, time_window: 1 } } }, {}],
};

interface Field {
  path: string[];
  schema: Record<string, unknown>;
}

/** The fields a schema names (into objects, array items and composite branches), to `depth`, with their schemas. */
function schemaFields(schema: unknown, prefix: string[], depth: number, out: Field[]): void {
  if (depth === 0 || typeof schema !== 'object' || schema === null) return;
  const s = schema as Record<string, unknown>;
  for (const k of ['allOf', 'anyOf', 'oneOf']) if (Array.isArray(s[k])) for (const b of s[k] as unknown[]) schemaFields(b, prefix, depth, out);
  if (s.items) schemaFields(s.items, [...prefix, '0'], depth - 1, out);
  const props = s.properties as Record<string, unknown> | undefined;
  if (!props) return;
  for (const [name, sub] of Object.entries(props)) {
    out.push({ path: [...prefix, name], schema: (sub ?? {}) as Record<string, unknown> });
    schemaFields(sub, [...prefix, name], depth - 1, out);
  }
}

function fieldsFor(resource: 'routes' | 'upstreams' | 'services', registry: PluginRegistry): Field[] {
  const out: Field[] = [];
  schemaFields(getCoreSchema(resource === 'routes' ? 'route' : resource === 'upstreams' ? 'upstream' : 'service'), [], 4, out);
  if (resource !== 'upstreams') for (const p of PLUGINS) schemaFields(registry.get(p)?.schema, ['plugins', p], 3, out);
  return out;
}

const NUMBERS: Json[] = [INF, NEG_INF, 0, -1, 1, 0.5, 1e300, 2 ** 31, 2 ** 53 + 2, 65536, -1e15, 1e-9];
const STRINGS: Json[] = [
  '', ' ', '$env://PATH', '$secret://vault/x', '$ENV://HOME/x', 'not a host!!', 'a/b:80', '__proto__', '*', '127.0.0.1', '[::1]', '::1',
  'x'.repeat(3000), 'GET', '/a', 'a.example', 'a.example.', '.*', '(', 'remote_addr', 'arg_x',
];
const ANYTHING: Json[] = [...NUMBERS, ...STRINGS, null, true, false, [], {}, [1], ['a'], { a: 1 }, { '127.0.0.1:1': INF }, { 'a.example:80x': 1 }];

/** Values for a field: mostly of its own type (so the body has a chance to pass), sometimes anything. */
function valuesFor(schema: Record<string, unknown>): fc.Arbitrary<Json> {
  const own: Json[] = [];
  const type = schema.type;
  if (type === 'integer' || type === 'number') {
    own.push(...NUMBERS);
    for (const k of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']) {
      const v = schema[k];
      if (typeof v === 'number') own.push(v, v - 1, v + 1, v + 0.5);
    }
  }
  if (type === 'string' || schema.pattern !== undefined) own.push(...STRINGS);
  if (Array.isArray(schema.enum)) own.push(...(schema.enum as Json[]).map((v) => v), ...STRINGS.slice(2, 5));
  if (schema.default !== undefined) own.push(schema.default as Json);
  if (type === 'boolean') own.push(true, false);
  if (type === 'array') own.push([], ['a'], [1], [INF], ['$env://PATH']);
  if (type === 'object') own.push({}, { a: 1 }, { a: INF });
  return own.length === 0 ? fc.constantFrom(...ANYTHING) : fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...own) }, { weight: 1, arbitrary: fc.constantFrom(...ANYTHING) });
}

function setAt(root: Json, path: string[], value: Json): Json {
  const copy = structuredClone(root) as Record<string, Json>;
  let node: Record<string, Json> = copy;
  for (const seg of path.slice(0, -1)) {
    const next = node[seg];
    if (typeof next !== 'object' || next === null) node[seg] = /^\d+$/.test(seg) ? ([] as unknown as Json) : {};
    node = node[seg] as Record<string, Json>;
  }
  node[path.at(-1)!] = value;
  return copy;
}

function encode(body: Json): string {
  return JSON.stringify(body).replaceAll(`"${INF}"`, '1e309').replaceAll(`"${NEG_INF}"`, '-1e309');
}

async function applied(): Promise<void> {
  const { revision } = await store.list('/apisix/');
  const until = Date.now() + 5000;
  while (dp.appliedRevision() < revision) {
    if (Date.now() > until) throw new Error(`data plane never reached revision ${revision}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('accepted writes compile', () => {
  let n = 0;
  for (const resource of ['routes', 'upstreams', 'services'] as const) {
    it(`${resource}: every body the Admin API accepts, the data plane compiles`, async () => {
      const registry = await PluginRegistry.load(PLUGINS);
      const fields = fieldsFor(resource, registry);
      const mutation = fc.constantFrom(...fields).chain((f) => valuesFor(f.schema).map((v) => [f.path, v] as const));
      const accepted: string[] = [];
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...SEEDS[resource]),
          fc.array(mutation, { minLength: 1, maxLength: 2 }),
          async (seed, mutations) => {
            let body = seed;
            for (const [path, value] of mutations) body = setAt(body, [...path], value);
            const id = `fz${++n}`;
            const text = encode(body);
            const res = await h.req('PUT', `/apisix/admin/${resource}/${id}`, { body: text });
            if (res.status >= 300) {
              expect(res.status, `${text} -> ${res.text}`).toBe(400);
              return;
            }
            accepted.push(text);
            const key = `/apisix/${resource}/${id}`;
            const from = warnings.length;
            await applied();
            const snap = dp.snapshot();
            const dropped = warnings.slice(from).filter((w) => w.key === key || w.key?.startsWith(`${key}#`) || w.route === id);
            expect(dropped, `accepted ${text}, then the data plane logged: ${JSON.stringify(dropped)}`).toEqual([]);
            const stored = (await store.get(key))!.value as Record<string, unknown>;
            if (resource === 'routes' && stored.status !== 0) expect(snap.routes.has(id), `route ${text} not compiled`).toBe(true);
            if (resource === 'upstreams') expect(snap.upstreams.has(id), `upstream ${text} not compiled`).toBe(true);
            await store.delete(key);
          },
        ),
        { numRuns: 250, seed: 18, endOnFailure: true },
      );
      // The property is only worth something if some hostile bodies got through the checks.
      expect(accepted.length).toBeGreaterThan(25);
    });
  }
});
