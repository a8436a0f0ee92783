/**
 * Property-based fuzzing through real sockets, bounded to a few seconds each:
 * Admin API bodies shaped like the resources' schemas (routes with `vars`
 * expressions and `filter_func`, services, consumers, upstreams of every
 * scheme, ssls, plugin_configs, global_rules, plugin confs of many plugins),
 * then mutated (fields replaced by arbitrary JSON, deep nesting, wrong types);
 * requests to the routes that were stored; and pub/sub frames generated from
 * proto/pubsub.proto's messages, then mutated byte-wise. Every answer is 2xx or
 * 4xx, never 5xx; the process stays up; nothing answered 4xx is stored.
 *
 * Reproducible: every property runs from a fixed seed (t/helpers/fuzz.ts), so CI
 * runs the same cases each time. A failure prints `seed` and `path`; replay it with
 *   FUZZ_SEED=<seed> FUZZ_PATH=<path> npx vitest run t/faults/fuzz.test.ts
 * A longer hunt with fresh cases (each property runs FUZZ_RUNS cases, no time bound):
 *   FUZZ_SEED=random FUZZ_RUNS=3000 npx vitest run t/faults/fuzz.test.ts
 */
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { WebSocket } from 'ws';
import { pino } from 'pino';
import { fuzzParameters, settings as fuzzSeed, fuzzTestTimeout } from '../helpers/fuzz.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

/** The gateway's own log lines that mean a fault of its own (a 5xx it caused) or an accepted object it could not compile. */
const faults: string[] = [];
const skipped: string[] = [];
const FAULT = /admin request failed|answering 500|scheme handler failed|plugin failed/;

let gw: TestGateway;
beforeAll(async () => {
  const logger = pino(
    { level: 'warn' },
    {
      write(line: string) {
        const { msg, key, err } = JSON.parse(line) as { msg: string; key?: string; err?: unknown };
        if (FAULT.test(msg)) faults.push(`${msg}: ${JSON.stringify(err).slice(0, 300)}`);
        if (msg === 'config: skipping invalid object') skipped.push(`${key}: ${JSON.stringify(err).slice(0, 300)}`);
      },
    },
  );
  gw = await startTestGateway({ logger });
});
afterAll(() => gw?.close());

/** Nothing listens on port 1 of loopback: proxied requests fail fast with 502, which the data-plane property allows. */
const node = fc.constantFrom('127.0.0.1:1', '127.0.0.1:1981', 'localhost:80', '[::1]:1', '127.0.0.1');
const nodeList = fc.array(
  fc.record({ host: fc.constantFrom('127.0.0.1', 'localhost', '::1', '[::1]'), port: fc.oneof(fc.integer({ min: 0, max: 70000 }), fc.constant(1)), weight: fc.integer({ min: -1, max: 100 }), priority: fc.integer({ min: -2, max: 2 }) }, { requiredKeys: ['host'] }),
  { maxLength: 3 },
);
const healthChecks = fc.record(
  {
    active: fc.record(
      {
        type: fc.constantFrom('http', 'https', 'tcp'),
        http_path: fc.constantFrom('/', '/status', ''),
        timeout: fc.double({ min: 0, max: 5, noNaN: true }),
        healthy: fc.record({ interval: fc.integer({ min: 0, max: 5 }), successes: fc.integer({ min: 0, max: 3 }) }, { requiredKeys: [] }),
        unhealthy: fc.record({ interval: fc.integer({ min: 0, max: 5 }), http_failures: fc.integer({ min: 0, max: 3 }) }, { requiredKeys: [] }),
      },
      { requiredKeys: [] },
    ),
    passive: fc.record({ healthy: fc.record({ http_statuses: fc.array(fc.integer({ min: 100, max: 600 }), { maxLength: 2 }) }), unhealthy: fc.record({ http_failures: fc.integer({ min: 0, max: 3 }) }) }, { requiredKeys: [] }),
  },
  { requiredKeys: [] },
);
const upstream = fc.record(
  {
    type: fc.constantFrom('roundrobin', 'chash', 'ewma', 'least_conn', 'none'),
    nodes: fc.oneof(fc.dictionary(node, fc.integer({ min: 0, max: 100 }), { minKeys: 1, maxKeys: 3 }), nodeList),
    timeout: fc.record({ connect: fc.double({ min: 0, max: 60, noNaN: true }), send: fc.integer({ min: 0, max: 60 }), read: fc.integer({ min: 0, max: 60 }) }),
    retries: fc.integer({ min: -1, max: 10 }),
    retry_timeout: fc.integer({ min: -1, max: 10 }),
    scheme: fc.constantFrom('http', 'https', 'grpc', 'grpcs', 'kafka', 'redis', 'tcp', 'tls', 'udp'),
    hash_on: fc.constantFrom('vars', 'header', 'cookie', 'consumer', 'vars_combinations'),
    key: fc.constantFrom('remote_addr', 'uri', 'arg_x', 'x', '$host$uri'),
    pass_host: fc.constantFrom('pass', 'node', 'rewrite'),
    upstream_host: fc.constantFrom('example.com', ''),
    tls: fc.record({ verify: fc.boolean(), client_cert_id: fc.constantFrom('1', 'nope') }, { requiredKeys: [] }),
    checks: healthChecks,
    keepalive_pool: fc.record({ size: fc.integer({ min: 0, max: 4 }), idle_timeout: fc.integer({ min: 0, max: 4 }), requests: fc.integer({ min: 0, max: 4 }) }, { requiredKeys: [] }),
    service_name: fc.constantFrom('svc'),
    discovery_type: fc.constantFrom('dns', 'nacos'),
  },
  { requiredKeys: ['nodes'] },
);

/**
 * lua-resty-expr rules (src/core/match/expr.ts): leaves with and without `!`, every operator and some that do not
 * exist, operands of every JSON type, regexes that do not compile, logic nodes nested a few levels.
 */
const exprVar = fc.oneof(fc.constantFrom('arg_x', 'http_x', 'cookie_x', 'remote_addr', 'uri', 'post_arg.x', 'uri_param_id', 'route_id', ''), fc.jsonValue({ maxDepth: 1 }));
const exprOp = fc.oneof(fc.constantFrom('==', '~=', '>', '<', '>=', '<=', '~~', '~*', 'in', 'has', 'ipmatch', 'IN', '!', '!=', '===', 'AND', '!OR'), fc.jsonValue({ maxDepth: 1 }));
const exprValue = fc.oneof(
  fc.constantFrom('1', 'a', '', '127.0.0.1', '::1/64', '0.0.0.0/0', '10.0.0.0/33', '^/a', '(', '[', 'a{2,1}', '(?<n>x)', '(?i)x', '\\'),
  fc.array(fc.constantFrom('1', 'a', '127.0.0.1', '1.1.1.1/8'), { maxLength: 3 }),
  fc.jsonValue({ maxDepth: 2 }),
);
const exprLeaf = fc.oneof(
  fc.tuple(exprVar, exprOp, exprValue),
  fc.tuple(exprVar, fc.constant('!'), exprOp, exprValue),
  fc.tuple(exprVar, exprValue),
  fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 5 }),
);
const { exprRule } = fc.letrec((tie) => ({
  exprRule: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    exprLeaf,
    fc.tuple(fc.constantFrom('AND', 'OR', '!AND', '!OR', 'and', '!or', '!', 'XOR'), fc.array(tie('exprRule'), { maxLength: 3 })).map(([op, rules]) => [op, ...rules]),
    fc.array(tie('exprRule'), { maxLength: 3 }),
  ),
}));
const vars = fc.oneof(fc.array(exprRule, { maxLength: 3 }), exprRule, fc.constant([]), fc.jsonValue({ maxDepth: 2 }));

const filterFunc = fc.oneof(fc.constantFrom('function(vars) return true end', 'function(vars) return vars.arg_x == "1" end', 'function', 'return true', 'function(' + 'x'.repeat(20)), fc.string(), fc.jsonValue({ maxDepth: 1 }));

/** Plugin confs shaped like each plugin's schema, with the odd field left arbitrary; `_meta` with its own `vars` filter. */
const pluginConfs: Record<string, fc.Arbitrary<Record<string, unknown>>> = {
  'key-auth': fc.record({ header: fc.constantFrom('apikey', ''), query: fc.string({ maxLength: 8 }), hide_credentials: fc.boolean() }, { requiredKeys: [] }),
  'basic-auth': fc.record({ hide_credentials: fc.boolean() }, { requiredKeys: [] }),
  'jwt-auth': fc.record({ header: fc.string({ maxLength: 8 }), cookie: fc.string({ maxLength: 8 }), key_claim_name: fc.string({ maxLength: 8 }) }, { requiredKeys: [] }),
  'limit-count': fc.record({ count: fc.integer({ min: -1, max: 100 }), time_window: fc.integer({ min: -1, max: 100 }), key: fc.constantFrom('remote_addr', 'http_x', '$remote_addr $uri'), key_type: fc.constantFrom('var', 'var_combination', 'constant', 'nope'), rejected_code: fc.integer({ min: 100, max: 700 }), policy: fc.constantFrom('local', 'redis') }, { requiredKeys: [] }),
  'limit-req': fc.record({ rate: fc.double({ min: -1, max: 10, noNaN: true }), burst: fc.double({ min: -1, max: 10, noNaN: true }), key: fc.constantFrom('remote_addr', 'http_x'), rejected_code: fc.integer({ min: 100, max: 700 }), nodelay: fc.boolean() }, { requiredKeys: [] }),
  'limit-conn': fc.record({ conn: fc.integer({ min: -1, max: 10 }), burst: fc.integer({ min: -1, max: 10 }), default_conn_delay: fc.double({ min: -1, max: 1, noNaN: true }), key: fc.constantFrom('remote_addr') }, { requiredKeys: [] }),
  cors: fc.record({ allow_origins: fc.constantFrom('*', '**', 'http://a.com', 'nope'), allow_methods: fc.constantFrom('*', 'GET,POST'), allow_origins_by_regex: fc.array(fc.constantFrom('^http://.*\\.com$', '('), { maxLength: 2 }), allow_credential: fc.boolean(), max_age: fc.integer({ min: -2, max: 100 }) }, { requiredKeys: [] }),
  'proxy-rewrite': fc.record({ uri: fc.constantFrom('/x', '/$arg_x', 'x'), regex_uri: fc.array(fc.constantFrom('^/(.*)', '/$1', '(', '\\'), { maxLength: 3 }), host: fc.string({ maxLength: 8 }), method: fc.constantFrom('GET', 'BREW'), headers: fc.dictionary(fc.constantFrom('x-a', 'set', 'add', 'remove', 'bad name'), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 2 }) }, { requiredKeys: [] }),
  'response-rewrite': fc.record({ status_code: fc.integer({ min: 100, max: 700 }), body: fc.string({ maxLength: 8 }), body_base64: fc.boolean(), vars, filters: fc.array(fc.record({ regex: fc.constantFrom('a', '(', '\\'), replace: fc.constantFrom('b', '$1', '$9'), scope: fc.constantFrom('once', 'global'), options: fc.constantFrom('jo', 'x', '') }, { requiredKeys: ['regex'] }), { maxLength: 2 }) }, { requiredKeys: [] }),
  'ip-restriction': fc.record({ whitelist: fc.array(fc.constantFrom('127.0.0.1', '::1', '10.0.0.0/8', '1.1.1.1/33', 'x'), { maxLength: 3 }), blacklist: fc.array(fc.constantFrom('127.0.0.2', 'x'), { maxLength: 2 }), message: fc.string({ maxLength: 8 }) }, { requiredKeys: [] }),
  'uri-blocker': fc.record({ block_rules: fc.array(fc.constantFrom('^/a', '(', '\\', 'a{2,1}', '.*'), { minLength: 1, maxLength: 3 }), rejected_code: fc.integer({ min: 100, max: 700 }), case_insensitive: fc.boolean() }, { requiredKeys: [] }),
  redirect: fc.record({ uri: fc.constantFrom('/x', '$uri', 'http://a'), regex_uri: fc.array(fc.constantFrom('^/(.*)', '/$1', '('), { maxLength: 2 }), ret_code: fc.integer({ min: 100, max: 700 }), http_to_https: fc.boolean(), append_query_string: fc.boolean() }, { requiredKeys: [] }),
  'fault-injection': fc.record({ abort: fc.record({ http_status: fc.integer({ min: 100, max: 700 }), body: fc.constantFrom('x', '$arg_x'), percentage: fc.integer({ min: -1, max: 101 }), vars: fc.array(fc.array(exprRule, { maxLength: 2 }), { maxLength: 2 }) }, { requiredKeys: ['http_status'] }), delay: fc.record({ duration: fc.double({ min: 0, max: 0.01, noNaN: true }), vars: fc.array(fc.array(exprRule, { maxLength: 2 }), { maxLength: 2 }) }, { requiredKeys: ['duration'] }) }, { requiredKeys: [] }),
  'traffic-split': fc.record({ rules: fc.array(fc.record({ match: fc.array(fc.record({ vars }, { requiredKeys: [] }), { maxLength: 2 }), weighted_upstreams: fc.array(fc.record({ upstream, upstream_id: fc.constantFrom('1', 'nope'), weight: fc.integer({ min: -1, max: 10 }) }, { requiredKeys: [] }), { maxLength: 2 }) }, { requiredKeys: [] }), { maxLength: 2 }) }),
  'api-breaker': fc.record({ break_response_code: fc.integer({ min: 100, max: 700 }), max_breaker_sec: fc.integer({ min: -1, max: 10 }), unhealthy: fc.record({ http_statuses: fc.array(fc.integer({ min: 100, max: 700 }), { maxLength: 2 }), failures: fc.integer({ min: -1, max: 3 }) }, { requiredKeys: [] }) }, { requiredKeys: [] }),
  'request-id': fc.record({ header_name: fc.constantFrom('X-Request-Id', '', 'bad name'), algorithm: fc.constantFrom('uuid', 'nanoid', 'range_id', 'nope'), include_in_response: fc.boolean() }, { requiredKeys: [] }),
  'real-ip': fc.record({ source: fc.constantFrom('http_x_forwarded_for', 'arg_ip', 'nope'), trusted_addresses: fc.array(fc.constantFrom('127.0.0.1', '::/0', 'x'), { maxLength: 2 }), recursive: fc.boolean() }, { requiredKeys: [] }),
  'consumer-restriction': fc.record({ type: fc.constantFrom('consumer_name', 'service_id', 'route_id', 'consumer_group_id', 'nope'), whitelist: fc.array(fc.string({ maxLength: 6 }), { maxLength: 2 }), blacklist: fc.array(fc.string({ maxLength: 6 }), { maxLength: 2 }), rejected_code: fc.integer({ min: 100, max: 700 }) }, { requiredKeys: [] }),
  'request-validation': fc.record({ body_schema: fc.oneof(fc.constant({ type: 'object', required: ['a'] }), fc.jsonValue({ maxDepth: 2 })), header_schema: fc.oneof(fc.constant({ type: 'object' }), fc.jsonValue({ maxDepth: 2 })), rejected_code: fc.integer({ min: 100, max: 700 }) }, { requiredKeys: [] }),
  gzip: fc.record({ types: fc.oneof(fc.constant('*'), fc.array(fc.constantFrom('text/html', ''), { maxLength: 2 })), min_length: fc.integer({ min: -1, max: 100 }), comp_level: fc.integer({ min: 0, max: 10 }) }, { requiredKeys: [] }),
  'kafka-proxy': fc.record({ sasl: fc.record({ username: fc.string({ maxLength: 6 }), password: fc.string({ maxLength: 6 }) }, { requiredKeys: [] }) }, { requiredKeys: [] }),
  'pubsub-acl': fc.record({ allow: fc.array(fc.constantFrom('*', 'a*', ''), { maxLength: 2 }) }, { requiredKeys: [] }),
  prometheus: fc.record({ prefer_name: fc.boolean() }, { requiredKeys: [] }),
  'forward-auth': fc.record({ uri: fc.constantFrom('http://127.0.0.1:1/auth', 'nope'), request_headers: fc.array(fc.string({ maxLength: 6 }), { maxLength: 2 }), timeout: fc.integer({ min: 0, max: 100 }) }, { requiredKeys: [] }),
  'no-such-plugin': fc.constant({}),
};
const meta = fc.record({ disable: fc.boolean(), priority: fc.integer(), filter: vars, error_response: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] });
const plugins = fc
  .array(
    fc.constantFrom(...Object.keys(pluginConfs)).chain((name) =>
      fc.tuple(fc.constant(name), fc.oneof(pluginConfs[name]!, fc.tuple(pluginConfs[name]!, meta).map(([c, m]) => ({ ...c, _meta: m })), fc.constant({}))),
    ),
    { maxLength: 3 },
  )
  .map((entries) => Object.fromEntries(entries));
const route = fc.record(
  {
    uri: fc.oneof(fc.constantFrom('/a', '/b/*', '/c/:id', '/fz'), fc.string()),
    uris: fc.array(fc.string(), { maxLength: 3 }),
    methods: fc.array(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'BREW'), { maxLength: 3 }),
    hosts: fc.array(fc.domain(), { maxLength: 2 }),
    remote_addrs: fc.array(fc.constantFrom('127.0.0.1', '::1', '10.0.0.0/8', '1.1.1.1/33', 'x'), { maxLength: 2 }),
    priority: fc.integer(),
    vars,
    filter_func: filterFunc,
    timeout: fc.record({ connect: fc.double({ min: 0, max: 60, noNaN: true }), send: fc.integer({ min: 0, max: 60 }), read: fc.integer({ min: 0, max: 60 }) }, { requiredKeys: [] }),
    upstream,
    upstream_id: fc.constantFrom('1', 'nope'),
    service_id: fc.constantFrom('1', 'nope'),
    plugin_config_id: fc.constantFrom('1', 'nope'),
    plugins,
    status: fc.constantFrom(0, 1, 2),
    enable_websocket: fc.boolean(),
  },
  { requiredKeys: [] },
);
/** Routes the schema accepts more often (one uri, one plain upstream), so the data-plane property has `vars` and plugins to run. */
const likelyRoute = fc.record(
  {
    uri: fc.constantFrom('/a', '/b/*', '/c/:id', '/fz'),
    upstream: fc.constant({ type: 'roundrobin', nodes: { '127.0.0.1:1': 1 } }),
    vars,
    plugins,
    priority: fc.integer({ min: -5, max: 5 }),
  },
  { requiredKeys: ['uri', 'upstream'] },
);
const service = fc.record({ name: fc.string(), upstream, upstream_id: fc.constantFrom('1', 'nope'), plugins, hosts: fc.array(fc.domain(), { maxLength: 2 }), enable_websocket: fc.boolean() }, { requiredKeys: [] });
const consumer = fc.record({ username: fc.stringMatching(/^[a-zA-Z0-9_]{0,12}$/), plugins, desc: fc.string(), group_id: fc.constantFrom('1', 'nope') }, { requiredKeys: [] });
const pluginConfig = fc.record({ plugins, desc: fc.string({ maxLength: 8 }) }, { requiredKeys: [] });
const globalRule = fc.record({ plugins }, { requiredKeys: [] });
const ssl = fc.record(
  {
    cert: fc.constantFrom('-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----', '', 'x'.repeat(128)),
    key: fc.constantFrom('-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----', '', 'x'.repeat(128)),
    snis: fc.array(fc.oneof(fc.domain(), fc.constantFrom('*.a.com', '*', '')), { maxLength: 2 }),
    type: fc.constantFrom('server', 'client', 'nope'),
    client: fc.record({ ca: fc.string({ maxLength: 8 }), depth: fc.integer({ min: -1, max: 3 }) }, { requiredKeys: [] }),
  },
  { requiredKeys: [] },
);

/** A value with one field replaced by arbitrary JSON, a deep nest, or a wrong type. */
function mutated<T extends Record<string, unknown>>(arb: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  // Deeper than the Admin API's nesting limit (src/admin/nesting.ts, 128) as well as under it.
  const nested = fc.integer({ min: 5, max: 300 }).map((depth) => {
    let v: unknown = 1;
    for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
    return v;
  });
  const junk = fc.oneof(fc.jsonValue(), nested, fc.string(), fc.constant(null), fc.integer());
  return fc.oneof(
    arb,
    arb,
    fc.tuple(arb, fc.string({ maxLength: 12 }), junk).map(([v, k, j]) => ({ ...v, [k]: j })),
    fc.tuple(arb, fc.nat(), junk).map(([v, at, j]) => {
      const keys = Object.keys(v);
      return keys.length === 0 ? j : { ...v, [keys[at % keys.length]!]: j };
    }),
    junk,
  );
}

const kinds = [
  ['routes', mutated(fc.oneof(route, likelyRoute))],
  ['upstreams', mutated(upstream)],
  ['services', mutated(service)],
  ['consumers', mutated(consumer)],
  ['plugin_configs', mutated(pluginConfig)],
  ['global_rules', mutated(globalRule)],
  ['ssls', mutated(ssl)],
] as const;

/** What `id` the store key of a PUT body gets: the URL's, or a consumer's username. */
function storedPath(kind: string, id: string, body: unknown): string | undefined {
  if (kind !== 'consumers') return `/apisix/admin/${kind}/${id}`;
  const username = (body as { username?: unknown } | null)?.username;
  return typeof username === 'string' && /^[a-zA-Z0-9_-]+$/.test(username) ? `/apisix/admin/consumers/${username}` : undefined;
}

describe('Admin API bodies', () => {
  let n = 0;
  beforeAll(async () => {
    // The ids the generators refer to ('1'), so references resolve as often as they fail.
    await gw.admin('PUT', '/apisix/admin/upstreams/1', { type: 'roundrobin', nodes: { '127.0.0.1:1': 1 } });
    await gw.admin('PUT', '/apisix/admin/services/1', { upstream_id: '1' });
    await gw.admin('PUT', '/apisix/admin/plugin_configs/1', { plugins: {} });
    await gw.admin('PUT', '/apisix/admin/consumer_groups/1', { plugins: {} });
  });

  for (const [kind, arb] of kinds) {
    test(
      `${kind}: every answer is 2xx or 4xx, a 4xx stores nothing, and the gateway keeps serving`,
      async () => {
        await fc.assert(
          fc.asyncProperty(arb, async (body) => {
            const id = `fz${n++}`;
            const path = kind === 'consumers' ? '/apisix/admin/consumers' : `/apisix/admin/${kind}/${id}`;
            const before = kind === 'consumers' ? storedPath(kind, id, body) : undefined;
            const existed = before !== undefined && (await gw.admin('GET', before)).status === 200;
            const res = await gw.admin('PUT', path, body);
            expect(res.status, `PUT ${kind} answered ${res.status}: ${res.text.slice(0, 300)}`).toBeLessThan(500);
            expect(faults).toEqual([]);
            expect(res.status).toBeGreaterThanOrEqual(200);
            const stored = storedPath(kind, id, body);
            if (res.status >= 400 && stored !== undefined && !existed) expect((await gw.admin('GET', stored)).status).toBe(404);
            // A global rule runs for every request (an auth plugin would answer 401 to all): one at a time.
            if (kind === 'global_rules' && res.status < 300) expect((await gw.admin('DELETE', path)).status).toBe(200);
          }),
          fuzzParameters({ numRuns: 150, timeMs: 2_500 }),
        );
        expect((await fetch(`${gw.dataUrl}/nowhere`)).status).toBe(404);
        // Accepted means applied: the data plane compiled every object the Admin API took (seed in the message: these
        // are found after the property ran, so fast-check has no path for them).
        await new Promise((r) => setTimeout(r, 100));
        expect(skipped, `accepted but not compiled (FUZZ_SEED=${fuzzSeed.seed})`).toEqual([]);
      },
      fuzzTestTimeout(30_000),
    );
  }

  test(
    'requests to the routes that were stored never meet a fault of the gateway (its own 500)',
    async () => {
      // The fuzzed plugins may answer any status their conf names (fault-injection's 500 among them), and the
      // nodes are unreachable (502): the gateway's own faults are told apart by the line it logs for each.
      const routes = (await gw.admin('GET', '/apisix/admin/routes')).body as { list: Array<{ value: { uri?: string; uris?: string[] } }> };
      const uris = routes.list.flatMap((r) => [r.value.uri, ...(r.value.uris ?? [])]).filter((u): u is string => typeof u === 'string' && u.startsWith('/'));
      // Some routes were accepted (the generators lean that way), or this property would test nothing.
      expect(uris.length).toBeGreaterThan(0);
      const request = fc.record({
        uri: fc.constantFrom(...uris),
        arg: fc.constantFrom('', '?x=1', '?x=a&x=b', '?x=', '?x=%zz'),
        header: fc.constantFrom('1', '127.0.0.1', 'a', ''),
        method: fc.constantFrom('GET', 'POST'),
      });
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          const path = r.uri.replace(/\*$/, 'x').replace(/:id/, '7').replace(/[^\x21-\x7e]/g, '');
          const res = await fetch(`${gw.dataUrl}${path}${r.arg}`, { method: r.method, headers: { x: r.header, cookie: `x=${r.header}` } });
          const text = await res.text();
          expect(faults, `${r.method} ${path}${r.arg} answered ${res.status}: ${text.slice(0, 200)}`).toEqual([]);
        }),
        fuzzParameters({ numRuns: 150, timeMs: 2_500 }),
      );
      expect((await fetch(`${gw.dataUrl}/nowhere`)).status).toBe(404);
    },
    fuzzTestTimeout(30_000),
  );
});

describe('pub/sub frames', () => {
  const root = protobuf.loadSync(fileURLToPath(new URL('../../proto/pubsub.proto', import.meta.url)));
  const Req = root.lookupType('PubSubReq');

  /** A value for every field of `type`, by the proto's own field types. */
  function messageArb(type: protobuf.Type, depth = 0): fc.Arbitrary<Record<string, unknown>> {
    const fields: Record<string, fc.Arbitrary<unknown>> = {};
    for (const f of type.fieldsArray) {
      f.resolve();
      let a: fc.Arbitrary<unknown>;
      if (f.resolvedType instanceof protobuf.Type) a = depth > 2 ? fc.constant({}) : messageArb(f.resolvedType, depth + 1);
      else if (f.resolvedType instanceof protobuf.Enum) a = fc.constantFrom(...Object.values(f.resolvedType.values));
      else if (f.type === 'string') a = fc.string({ maxLength: 40 });
      else if (f.type === 'bytes') a = fc.uint8Array({ maxLength: 64 });
      else if (f.type === 'bool') a = fc.boolean();
      else if (f.type.includes('64')) a = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((b) => b.toString());
      else a = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
      fields[f.name] = f.repeated ? fc.array(a, { maxLength: 3 }) : a;
    }
    return fc.record(fields, { requiredKeys: [] });
  }

  const oneof = Req.oneofsArray[0]!;
  const reqArb = fc.oneof(
    ...oneof.fieldsArray.map((f) => {
      f.resolve();
      return fc.tuple(fc.bigInt({ min: 0n, max: 2n ** 40n }), messageArb(f.resolvedType as protobuf.Type)).map(([seq, cmd]) => ({ sequence: seq.toString(), [f.name]: cmd }));
    }),
  );
  const frameArb = fc.oneof(
    reqArb.map((r) => Req.encode(Req.fromObject(r)).finish()),
    fc.tuple(reqArb, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([r, at, byte]) => {
      const b = Buffer.from(Req.encode(Req.fromObject(r)).finish());
      if (b.length > 0) b[at % b.length] = byte;
      return b;
    }),
    reqArb.map((r) => Req.encode(Req.fromObject(r)).finish().subarray(0, 3)),
    fc.uint8Array({ maxLength: 256 }),
  );

  test('generated and mutated frames never take the process down, and HTTP keeps answering', async () => {
    const put = await gw.admin('PUT', '/apisix/admin/routes/fuzz-kafka', { uri: '/kafka', upstream: { type: 'none', scheme: 'kafka', nodes: { '127.0.0.1:1': 1 } } });
    expect(put.status).toBe(201);
    const ws = new WebSocket(`ws://127.0.0.1:${gw.dataPort}/kafka`);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    let answers = 0;
    ws.on('message', () => answers++);
    // A session that refuses a frame closes the socket; ws reports a close it did not expect as an error.
    ws.on('error', () => undefined);
    let sockets = 1;
    let current = ws;
    await fc.assert(
      fc.asyncProperty(frameArb, async (frame) => {
        if (current.readyState !== WebSocket.OPEN) {
          // A frame the session refuses may close it (a protocol error): reconnect and go on.
          current = new WebSocket(`ws://127.0.0.1:${gw.dataPort}/kafka`);
          current.on('message', () => answers++);
          current.on('error', () => undefined);
          await new Promise((resolve, reject) => {
            current.once('open', resolve);
            current.once('error', reject);
          });
          sockets++;
        }
        current.send(frame);
      }),
      fuzzParameters({ numRuns: 300, timeMs: 5_000 }),
    );
    await new Promise((r) => setTimeout(r, 300));
    current.close();
    // The broker (127.0.0.1:1) is unreachable, so sessions may answer nothing in this window: what is checked is
    // that every handshake succeeded and the process took every frame and kept serving.
    expect(sockets).toBeGreaterThanOrEqual(1);
    expect(answers).toBeGreaterThanOrEqual(0);
    expect((await fetch(`${gw.dataUrl}/nowhere`)).status).toBe(404);
    expect((await gw.admin('GET', '/apisix/admin/routes/fuzz-kafka')).status).toBe(200);
  }, fuzzTestTimeout(60_000));
});
