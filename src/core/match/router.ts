/**
 * The compiled HTTP route matcher: APISIX's default `radixtree_host_uri`
 * router over lua-resty-radixtree, compiled once per config change.
 *
 * Precedence, as APISIX has it:
 * 1. Routes with hosts come before host-less routes. Among host lists, an exact
 *    host is tried first, then wildcard hosts (`*.example.com`, `*` alone
 *    matches any host) from the longest suffix to the shortest. Hosts compare
 *    case-insensitively. If nothing under a host matches, the next host level
 *    and finally the host-less routes are tried.
 * 2. Within one host level, an exact path (no `*`, no `:`) is looked up first,
 *    whatever the priorities; then prefix paths from the longest prefix to the
 *    shortest. A prefix path is the part before the first `*` (or `:` when
 *    parameters are on): `/api/*` is the prefix `/api/`, `/api*` is `/api`.
 * 3. Routes sharing the same exact path or the same prefix are ordered by
 *    `priority` (higher first), then by the length of the path as written
 *    (longer first), then by the order of the entries given.
 * 4. A candidate must then pass, in order: methods (none = any), remote_addrs,
 *    vars, an optional filter, and the parameter pattern.
 *
 * Parameters: `/user/:name` captures one non-empty segment, `*name` (and a
 * bare `*` segment, captured as `:ext`) captures the rest, slashes included.
 * APISIX's default router treats `:` literally (`no_param_match`); parameters
 * here are on by default, as radixtree_uri_with_parameter has them, and
 * `{ params: false }` gives the literal behaviour.
 *
 * With `{ hostLevels: false }` (APISIX's `radixtree_uri`) there is one path
 * table and hosts are a per-route check; `routerOptionsFor` maps APISIX's
 * `apisix.router.http` names to options.
 *
 * Routes with `status: 0` are left out. A route whose vars or remote_addrs do
 * not compile is left out and reported in `errors`, so one bad route cannot
 * take down routing for the others.
 */
import type { Vars } from '../plugin/ctx.js';
import { compileExpr, type CompiledExpr } from './expr.js';
import { compileIpMatcher, type IpMatcher } from './ip-match.js';
import type { RouteConf } from '../model.js';
import { RadixTree } from './radix-tree.js';

export interface RouterEntry<T> {
  id: string;
  route: RouteConf;
  /** Effective hosts: the route's host/hosts, else its service's hosts. Defaults to the route's own. */
  hosts?: string[];
  data: T;
  /** Extra predicate run after vars (APISIX's `filter_func` slot). */
  filter?: (vars: Vars) => boolean;
}

export interface MatchInput {
  /** Upper-case method. */
  method: string;
  /** Normalised path. */
  path: string;
  /** Host without port. */
  host: string;
  remoteAddr: string;
  vars: Vars;
}

export interface RouteMatch<T> {
  data: T;
  /** Captured path parameters; a shared empty object when none. */
  params: Readonly<Record<string, string>>;
  /** The route path as written that matched (APISIX's `matched._path`). */
  matchedPath: string;
}

/** Pass one to `match` to count the candidate routes it examined. */
export interface MatchProbe {
  candidates: number;
}

export interface RouterOptions {
  /** Treat `:name` segments as parameters (default true). */
  params?: boolean;
  /**
   * Rank routes by host before path, as `radixtree_host_uri` (default true).
   * False gives `radixtree_uri`: one path table, hosts checked per route.
   */
  hostLevels?: boolean;
}

/** The `apisix.router.http` values APISIX ships, and so the ones config.yaml accepts. */
export const HTTP_ROUTER_NAMES = ['radixtree_host_uri', 'radixtree_uri', 'radixtree_uri_with_parameter'] as const;
export type HttpRouterName = (typeof HTTP_ROUTER_NAMES)[number];

/**
 * Options for an APISIX `apisix.router.http` name; undefined for unknown
 * names. `radixtree_host_uri` keeps parameters on, as Portico's default.
 */
export function routerOptionsFor(name: string): RouterOptions | undefined {
  switch (name) {
    case 'radixtree_host_uri':
      return { hostLevels: true, params: true };
    case 'radixtree_uri':
      return { hostLevels: false, params: false };
    case 'radixtree_uri_with_parameter':
      return { hostLevels: false, params: true };
  }
  return undefined;
}

export interface Router<T> {
  match(input: MatchInput, probe?: MatchProbe): RouteMatch<T> | undefined;
  /** Number of enabled routes compiled in. */
  readonly size: number;
  /** Routes left out because a field did not compile. */
  readonly errors: ReadonlyArray<{ id: string; error: string }>;
}

const METHOD_BITS: Record<string, number> = {
  GET: 1,
  POST: 2,
  PUT: 4,
  DELETE: 8,
  PATCH: 16,
  HEAD: 32,
  OPTIONS: 64,
  CONNECT: 128,
  TRACE: 256,
  PURGE: 512,
};

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

/** What the candidates of one route share: compiled once, whatever the number of paths and hosts. */
interface Compiled<T> {
  data: T;
  priority: number;
  order: number;
  methods: number;
  ip: IpMatcher | undefined;
  /** Only without host levels (`radixtree_uri`), where hosts are a per-route check. */
  hosts: HostCheck | undefined;
  vars: CompiledExpr | undefined;
  filter: ((vars: Vars) => boolean) | undefined;
}

/** One (route, path) pair, as lua-resty-radixtree stores it. */
interface Candidate<T> extends Compiled<T> {
  pathOrg: string;
  pattern: RegExp | undefined;
  names: string[] | undefined;
  /** The match result of a candidate that captures nothing, built once: such a match allocates nothing. */
  fixed: RouteMatch<T> | undefined;
}

type HostCheck = (lowerHost: string) => boolean;

/** lua-resty-radixtree's match_host over a route's host list: exact, or `*suffix`. */
function compileHostCheck(hosts: string[]): HostCheck {
  const exact = new Set<string>();
  const suffixes: string[] = [];
  for (const h of hosts) {
    const l = h.toLowerCase();
    if (l.charCodeAt(0) === 42 /* * */) suffixes.push(l.slice(1));
    else exact.add(l);
  }
  return (host) => {
    if (exact.has(host)) return true;
    for (let i = 0; i < suffixes.length; i++) if (host.endsWith(suffixes[i]!)) return true;
    return false;
  };
}

function byPrecedence<T>(a: Candidate<T>, b: Candidate<T>): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  if (a.pathOrg.length !== b.pathOrg.length) return b.pathOrg.length - a.pathOrg.length;
  return a.order - b.order;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** The parameter pattern for a path, as lua-resty-radixtree's fetch_pat builds it. */
function paramPattern(path: string, colonParams: boolean): { pattern: RegExp; names: string[] } | undefined {
  // Most prefix routes (`/api/*`) capture nothing: skip building a pattern for them.
  const starSeg = path.startsWith('*') || path.includes('/*');
  const colonSeg = colonParams && (path.startsWith(':') || path.includes('/:'));
  if (!starSeg && !colonSeg) return undefined;
  const names: string[] = [];
  const parts = path.split('/').map((seg) => {
    if (colonParams && seg.charCodeAt(0) === 58 /* : */) {
      names.push(seg.slice(1));
      return '([^/]+)';
    }
    if (seg.charCodeAt(0) === 42 /* * */) {
      names.push(seg.length > 1 ? seg.slice(1) : ':ext');
      return '([\\s\\S]*)';
    }
    return escapeRe(seg);
  });
  if (names.length === 0) return undefined;
  return { pattern: new RegExp(`^${parts.join('/')}$`), names };
}

interface MatchState<T> {
  input: MatchInput;
  /** Lower-cased once per match. */
  host: string;
  methodBit: number;
  probe: MatchProbe | undefined;
  result: RouteMatch<T> | undefined;
}

function check<T>(c: Candidate<T>, st: MatchState<T>): boolean {
  if (st.probe !== undefined) st.probe.candidates++;
  const input = st.input;
  if (c.methods !== 0 && (c.methods & st.methodBit) === 0) return false;
  if (c.ip !== undefined && !c.ip(input.remoteAddr)) return false;
  if (c.hosts !== undefined && !c.hosts(st.host)) return false;
  if (c.vars !== undefined && !c.vars(input.vars)) return false;
  if (c.filter !== undefined && !c.filter(input.vars)) return false;
  if (c.fixed !== undefined) {
    st.result = c.fixed;
    return true;
  }
  const m = c.pattern!.exec(input.path);
  if (m === null) return false;
  const params: Record<string, string> = {};
  const names = c.names!;
  for (let i = 0; i < names.length; i++) {
    const v = m[i + 1];
    if (v !== undefined) params[names[i]!] = v;
  }
  st.result = { data: c.data, params, matchedPath: c.pathOrg };
  return true;
}

function firstOf<T>(list: Candidate<T>[], st: MatchState<T>): true | undefined {
  for (let i = 0; i < list.length; i++) if (check(list[i]!, st)) return true;
  return undefined;
}

function paramColon(path: string): number {
  if (path.charCodeAt(0) === 58 /* : */) return 0;
  const i = path.indexOf('/:');
  return i === -1 ? -1 : i + 1;
}

/** One lua-resty-radixtree instance: the routes of one host level. */
class PathTable<T> {
  private readonly exact = new Map<string, Candidate<T>[]>();
  private readonly prefix = new RadixTree<Candidate<T>[]>();

  add(path: string, r: Compiled<T>, params: boolean): void {
    let key = path;
    let isPrefix = false;
    // Only a `:` that starts a segment is a parameter. lua-resty-radixtree cuts
    // at any `:`, which turns `/v1/items:batchGet` into a prefix route for
    // `/v1/items…`; APISIX's default router keeps it literal, and so do we.
    const colon = params ? paramColon(path) : -1;
    if (colon !== -1) {
      key = path.slice(0, colon);
      isPrefix = true;
    } else {
      const star = path.indexOf('*');
      if (star !== -1) {
        key = path.slice(0, star);
        isPrefix = true;
      }
    }
    const pp = isPrefix ? paramPattern(path, params) : undefined;
    const c: Candidate<T> = {
      data: r.data,
      pathOrg: path,
      priority: r.priority,
      order: r.order,
      methods: r.methods,
      ip: r.ip,
      hosts: r.hosts,
      vars: r.vars,
      filter: r.filter,
      pattern: pp?.pattern,
      names: pp?.names,
      fixed: pp === undefined ? Object.freeze({ data: r.data, params: NO_PARAMS, matchedPath: path }) : undefined,
    };
    let list: Candidate<T>[];
    if (isPrefix) {
      list = this.prefix.upsert(key, () => []);
    } else {
      list = this.exact.get(key) ?? [];
      this.exact.set(key, list);
    }
    list.push(c);
  }

  /** Orders every bucket once, after all routes are added. */
  seal(): void {
    for (const list of this.exact.values()) list.sort(byPrecedence);
    this.prefix.forEachValue((list) => list.sort(byPrecedence));
  }

  match(st: MatchState<T>): true | undefined {
    const path = st.input.path;
    const list = this.exact.get(path);
    if (list !== undefined && firstOf(list, st)) return true;
    return this.prefix.longestPrefixFirst(path, firstOf, st);
  }
}

function visitTable<T>(t: PathTable<T>, st: MatchState<T>): true | undefined {
  return t.match(st);
}

function reverse(s: string): string {
  let out = '';
  for (let i = s.length - 1; i >= 0; i--) out += s[i];
  return out;
}

class HostRouter<T> implements Router<T> {
  readonly exactHosts = new Map<string, PathTable<T>>();
  /** Wildcard hosts keyed by their reversed suffix: `*.a.com` → `moc.a.`. */
  readonly wildcardHosts = new RadixTree<PathTable<T>>();
  readonly noHost = new PathTable<T>();
  size = 0;
  readonly errors: Array<{ id: string; error: string }> = [];
  /** Reused by every match (matching is synchronous); a nested match, should a filter ever route, gets its own. */
  private spare: MatchState<T> | undefined = { input: undefined!, host: '', methodBit: 0, probe: undefined, result: undefined };

  match(input: MatchInput, probe?: MatchProbe): RouteMatch<T> | undefined {
    let st = this.spare;
    this.spare = undefined;
    if (st === undefined) st = { input, host: '', methodBit: 0, probe: undefined, result: undefined };
    st.input = input;
    st.host = input.host.toLowerCase();
    st.methodBit = METHOD_BITS[input.method] ?? 0;
    st.probe = probe;
    st.result = undefined;
    try {
      return this.find(st);
    } finally {
      // Drop the references so a finished request is not kept alive by the router.
      st.input = undefined!;
      st.result = undefined;
      st.probe = undefined;
      this.spare = st;
    }
  }

  private find(st: MatchState<T>): RouteMatch<T> | undefined {
    if (this.exactHosts.size > 0 || this.wildcardHosts.size > 0) {
      const host = st.host;
      const t = this.exactHosts.get(host);
      if (t !== undefined && t.match(st)) return st.result;
      if (this.wildcardHosts.size > 0 && this.wildcardHosts.longestPrefixFirstOfReversed(host, visitTable, st)) {
        return st.result;
      }
    }
    if (this.noHost.match(st)) return st.result;
    return undefined;
  }
}

/**
 * Compiles the enabled routes into a matcher. `entries` order breaks ties
 * between routes of equal priority and path length (APISIX keeps insertion
 * order there too), so pass them in a stable order such as by id.
 */
export function compileRouter<T>(entries: ReadonlyArray<RouterEntry<T>>, opts: RouterOptions = {}): Router<T> {
  const params = opts.params ?? true;
  const hostLevels = opts.hostLevels ?? true;
  const router = new HostRouter<T>();
  const tables = new Set<PathTable<T>>([router.noHost]);

  entries.forEach((e, order) => {
    const route = e.route;
    if (route.status === 0) return;
    const paths = route.uris ?? (route.uri !== undefined ? [route.uri] : []);
    if (paths.length === 0) {
      router.errors.push({ id: e.id, error: 'missing uri or uris' });
      return;
    }

    let compiled: Compiled<T>;
    try {
      compiled = compileEntry(e, order, hostLevels);
    } catch (err) {
      router.errors.push({ id: e.id, error: (err as Error).message });
      return;
    }

    const hosts = e.hosts ?? route.hosts ?? (route.host !== undefined ? [route.host] : undefined);
    const targets: PathTable<T>[] = [];
    if (hosts === undefined || hosts.length === 0 || !hostLevels) {
      targets.push(router.noHost);
    } else {
      for (const raw of new Set(hosts.map((h) => h.toLowerCase()))) {
        let t: PathTable<T>;
        if (raw.charCodeAt(0) === 42 /* * */) {
          t = router.wildcardHosts.upsert(reverse(raw.slice(1)), () => new PathTable<T>());
        } else {
          t = router.exactHosts.get(raw) ?? new PathTable<T>();
          router.exactHosts.set(raw, t);
        }
        tables.add(t);
        targets.push(t);
      }
    }
    for (const t of targets) for (const p of new Set(paths)) t.add(p, compiled, params);
    router.size++;
  });

  for (const t of tables) t.seal();
  return router;
}

function compileEntry<T>(e: RouterEntry<T>, order: number, hostLevels: boolean): Compiled<T> {
  const route = e.route;
  let methods = 0;
  for (const m of route.methods ?? []) methods |= METHOD_BITS[m] ?? 0;

  const addrs = route.remote_addrs ?? (route.remote_addr !== undefined ? [route.remote_addr] : undefined);
  let ip: IpMatcher | undefined;
  if (addrs !== undefined && addrs.length > 0) {
    try {
      ip = compileIpMatcher(addrs);
    } catch (err) {
      throw new Error(`invalid IP address: ${(err as Error).message}`);
    }
  }

  let vars: CompiledExpr | undefined;
  if (route.vars !== undefined && route.vars !== null) {
    try {
      vars = compileExpr(route.vars);
    } catch (err) {
      throw new Error(`failed to handle expression: ${(err as Error).message}`);
    }
  }

  const hostList = e.hosts ?? route.hosts ?? (route.host !== undefined ? [route.host] : undefined);
  const hosts = !hostLevels && hostList !== undefined && hostList.length > 0 ? compileHostCheck(hostList) : undefined;

  return { data: e.data, priority: route.priority ?? 0, order, methods, ip, hosts, vars, filter: e.filter };
}
