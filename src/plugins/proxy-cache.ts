/**
 * proxy-cache (APISIX priority 1085) with the memory strategy
 * (apisix/plugins/proxy-cache/init.lua, memory_handler.lua): access answers a
 * fresh entry itself (HIT) or lets the request through (MISS, EXPIRED,
 * BYPASS); header_filter decides whether the upstream's answer may be kept;
 * body_filter holds a copy while the body streams to the client and stores it
 * at the end. A body that grows past the zone's `max_entry_size` stops being
 * held and streams on untouched. PURGE deletes an entry (200) or answers 404.
 *
 * Where Portico differs: an expired entry reads EXPIRED (nginx's word; APISIX's
 * memory strategy drops it and says MISS, or STALE for a client's
 * Cache-Control); responses carrying Set-Cookie are not stored (as nginx's
 * proxy_cache); a HEAD miss is not stored (its answer has no body); zones live
 * per data-plane process; `cache_strategy: disk` is refused.
 */
import { dataKey, definePlugin, type PluginExit, type RequestContext, type Vars } from '../core/plugin/index.js';
import { ResponseVars } from './lib/response-vars.js';
import { NO_DIRECTIVES, parseDirectives, resourceTtl, seconds, type Directives } from './proxy-cache/cache-control.js';
import { declareZones, zone, zoneDeclared, type CacheEntry, type Zone } from './proxy-cache/zones.js';

const DEFAULT_CACHE_ZONE = 'disk_cache_one';
const complexValue = { type: 'string', pattern: '(^[^\\$].+$|^\\$[0-9a-zA-Z_]+$)' };

export const schema = {
  type: 'object',
  properties: {
    cache_zone: { type: 'string', minLength: 1, maxLength: 100, default: DEFAULT_CACHE_ZONE },
    cache_strategy: { type: 'string', enum: ['disk', 'memory'], default: 'disk' },
    cache_key: { type: 'array', minItems: 1, items: { description: 'a key for caching', ...complexValue }, default: ['$host', '$request_uri'] },
    cache_http_status: {
      type: 'array',
      minItems: 1,
      items: { description: 'http response status', type: 'integer', minimum: 200, maximum: 599 },
      uniqueItems: true,
      default: [200, 301, 404],
    },
    cache_method: {
      type: 'array',
      minItems: 1,
      items: { description: 'supported http method', type: 'string', enum: ['GET', 'POST', 'HEAD'] },
      uniqueItems: true,
      default: ['GET', 'HEAD'],
    },
    hide_cache_headers: { type: 'boolean', default: false },
    cache_control: { type: 'boolean', default: false },
    cache_bypass: { type: 'array', minItems: 1, items: complexValue },
    no_cache: { type: 'array', minItems: 1, items: complexValue },
    cache_ttl: { type: 'integer', minimum: 1, default: 300 },
  },
};

interface ProxyCacheConf {
  cache_zone: string;
  cache_strategy: 'disk' | 'memory';
  cache_key: string[];
  cache_http_status: number[];
  cache_method: string[];
  hide_cache_headers: boolean;
  cache_control: boolean;
  cache_bypass?: string[];
  no_cache?: string[];
  cache_ttl: number;
}

/** A list of literals and `$variables`, concatenated (util.lua's generate_complex_value). */
type ComplexValue = ReadonlyArray<string | { readonly name: string }>;

interface Compiled {
  readonly conf: ProxyCacheConf;
  readonly zone: Zone;
  readonly key: ComplexValue;
  readonly bypass: ComplexValue | undefined;
  readonly noCache: ComplexValue | undefined;
  readonly methods: ReadonlySet<string>;
  readonly statuses: ReadonlySet<number>;
}

type CacheStatus = 'MISS' | 'HIT' | 'EXPIRED' | 'BYPASS';

/** One request's dealings with the cache. */
interface Pending {
  status: CacheStatus;
  key: string;
  /** Still a candidate to be stored. */
  store: boolean;
  held: Buffer[];
  heldSize: number;
  entryStatus: number;
  headers: Record<string, string> | undefined;
  headerSize: number;
  ttl: number;
}

const PENDING = dataKey<Pending>('proxy_cache');
const responseVars = new ResponseVars();

function check(conf: ProxyCacheConf): string | undefined {
  for (const key of conf.cache_key) if (key === '$request_method') return `cache_key variable ${key} unsupported`;
  if (!zoneDeclared(conf.cache_zone)) return `cache_zone ${conf.cache_zone} not found`;
  if (conf.cache_strategy === 'memory' && conf.cache_zone === DEFAULT_CACHE_ZONE) return `invalid or empty cache_zone for cache_strategy: ${conf.cache_strategy}`;
  if (conf.cache_strategy === 'disk') return 'cache_strategy disk is not supported by Portico: use cache_strategy memory';
  return undefined;
}

function compileComplex(list: readonly string[]): ComplexValue {
  return list.map((v) => (v.charCodeAt(0) === 36 /* $ */ ? { name: v.slice(1) } : v));
}

function render(value: ComplexValue, vars: Vars): string {
  let out = '';
  for (const part of value) out += typeof part === 'string' ? part : (vars.get(part.name) ?? '');
  return out;
}

/** cache_bypass / no_cache: anything but empty or "0" says yes. */
function says(value: ComplexValue | undefined, vars: Vars): boolean {
  if (value === undefined) return false;
  const v = render(value, vars);
  return v !== '' && v !== '0';
}

function compile(conf: ProxyCacheConf): Compiled {
  return {
    conf,
    zone: zone(conf.cache_zone),
    key: compileComplex(conf.cache_key),
    bypass: conf.cache_bypass && compileComplex(conf.cache_bypass),
    noCache: conf.no_cache && compileComplex(conf.no_cache),
    methods: new Set(conf.cache_method),
    statuses: new Set(conf.cache_http_status),
  };
}

function pending(status: CacheStatus, key: string, store: boolean): Pending {
  return { status, key, store, held: [], heldSize: 0, entryStatus: 0, headers: undefined, headerSize: 0, ttl: 0 };
}

function now(): number {
  return Date.now() / 1000;
}

/** A client's Cache-Control may ask for fresher than the entry (memory_handler.lua's STALE cases). */
function expired(c: Compiled, entry: CacheEntry, age: number, cc: Directives): boolean {
  if (age > entry.ttl) return true;
  if (!c.conf.cache_control) return false;
  const maxAge = seconds(cc, 'max-age');
  if (maxAge !== undefined && age > maxAge) return true;
  const maxStale = seconds(cc, 'max-stale');
  if (maxStale !== undefined && age - entry.ttl > maxStale) return true;
  const minFresh = seconds(cc, 'min-fresh');
  return minFresh !== undefined && entry.ttl - age < minFresh;
}

const HIDDEN = new Set(['cache-control', 'expires']);

function hit(c: Compiled, entry: CacheEntry, age: number): PluginExit {
  const headers: Record<string, string> = {};
  for (const name in entry.headers) {
    // hide_cache_headers: APISIX sets them to "", which nginx leaves out.
    if (c.conf.hide_cache_headers && HIDDEN.has(name)) continue;
    headers[name] = entry.headers[name]!;
  }
  headers.age = String(Math.floor(age));
  headers['apisix-cache-status'] = 'HIT';
  return { status: entry.status, body: entry.body, headers };
}

function access(c: Compiled, ctx: RequestContext): PluginExit | void {
  const method = ctx.method;
  const key = render(c.key, ctx.var);
  const cc = c.conf.cache_control ? parseDirectives(ctx.requestHeader('cache-control')) : NO_DIRECTIVES;
  if (method !== 'PURGE') {
    if (!c.methods.has(method)) return void ctx.setData(PENDING, pending('MISS', key, false));
    if (says(c.bypass, ctx.var) || cc['no-store'] !== undefined || cc['no-cache'] !== undefined) {
      return void ctx.setData(PENDING, pending('BYPASS', key, false));
    }
  }
  const entries = c.zone.entries;
  const entry = entries.get(key);
  if (method === 'PURGE') {
    if (entry === undefined) return { status: 404 };
    entries.delete(key);
    return { status: 200 };
  }
  if (entry === undefined) {
    if (cc['only-if-cached'] !== undefined) return { status: 504 };
    return void ctx.setData(PENDING, pending('MISS', key, method !== 'HEAD'));
  }
  const age = now() - entry.storedAt;
  if (expired(c, entry, age, cc)) return void ctx.setData(PENDING, pending('EXPIRED', key, method !== 'HEAD'));
  ctx.setData(PENDING, pending('HIT', key, false));
  return hit(c, entry, age);
}

/** Headers a hit sets itself, or that would be wrong on a copy (memory_handler.lua's overwritable_header). */
function keptHeader(name: string): boolean {
  return name !== 'content-length' && name !== 'apisix-cache-status' && name !== 'age' && !name.includes('ratelimit-remaining');
}

function header_filter(c: Compiled, ctx: RequestContext): void {
  const p = ctx.getData(PENDING);
  if (p === undefined || p.status === 'HIT') return;
  const res = ctx.response;
  const headers = res.headers;
  headers.set('apisix-cache-status', p.status);
  if (!p.store) return;
  const cc = c.conf.cache_control ? parseDirectives(headers.get('cache-control')) : NO_DIRECTIVES;
  if (c.conf.hide_cache_headers) {
    headers.remove('cache-control');
    headers.remove('expires');
  }
  p.store = cacheable(c, ctx, cc);
  if (!p.store) return;
  const t = now();
  p.ttl = c.conf.cache_control ? resourceTtl(cc, headers.get('expires'), t) : c.conf.cache_ttl;
  p.entryStatus = res.status;
  const kept: Record<string, string> = {};
  const pairs = headers.pairs();
  let size = 0;
  for (let i = 0; i < pairs.length; i += 2) {
    const name = pairs[i]!.toLowerCase();
    if (!keptHeader(name)) continue;
    const value = pairs[i + 1]!;
    kept[name] = kept[name] === undefined ? value : `${kept[name]}, ${value}`;
    size += name.length + value.length;
  }
  p.headers = kept;
  p.headerSize = size;
}

/** memory_handler.lua's cacheable_response, plus: no Set-Cookie, and a known length that fits the zone. */
function cacheable(c: Compiled, ctx: RequestContext, cc: Directives): boolean {
  const res = ctx.response;
  if (!c.statuses.has(res.status)) return false;
  if (c.noCache !== undefined) {
    responseVars.ctx = ctx;
    const no = says(c.noCache, responseVars);
    responseVars.ctx = undefined;
    if (no) return false;
  }
  if (c.conf.cache_control) {
    if (cc.private !== undefined || cc['no-store'] !== undefined || cc['no-cache'] !== undefined) return false;
    if (resourceTtl(cc, res.headers.get('expires'), now()) <= 0) return false;
  }
  if (res.headers.get('set-cookie') !== undefined) return false;
  const length = Number(res.headers.get('content-length'));
  return !(length > c.zone.maxEntrySize);
}

function body_filter(c: Compiled, ctx: RequestContext, chunk: Buffer, eof: boolean): void {
  const p = ctx.getData(PENDING);
  if (p === undefined || !p.store) return;
  if (chunk.length > 0) {
    const size = p.heldSize + chunk.length;
    if (size + p.headerSize > c.zone.maxEntrySize) {
      // Too big to keep: let go of what was held; the rest streams on untouched.
      p.store = false;
      p.held = [];
      return;
    }
    p.held.push(chunk);
    p.heldSize = size;
  }
  if (!eof) return;
  p.store = false;
  const body = p.held.length === 1 ? p.held[0]! : Buffer.concat(p.held, p.heldSize);
  p.held = [];
  const entry: CacheEntry = { status: p.entryStatus, headers: p.headers!, body, ttl: p.ttl, storedAt: now(), size: body.length + p.headerSize };
  c.zone.entries.set(p.key, entry);
}

export default definePlugin({
  name: 'proxy-cache',
  priority: 1085,
  version: '0.2',
  schema,
  check,
  compile,
  access,
  header_filter,
  body_filter,
  init(init) {
    declareZones(init.proxyCache, init.logger, init.process === 'main');
  },
});
