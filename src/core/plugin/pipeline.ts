/**
 * Runs plugin phases over a compiled chain. Chains are built once per config
 * change (config.ts); here a request only walks arrays. A phase function that
 * returns a promise is awaited; a synchronous one is not, so a chain of sync
 * plugins runs without a single microtask.
 */
import type { PluginUpstream, RequestContext, Vars } from './ctx.js';
import type { AnyPlugin, MaybePromise, PhaseName, PluginExit } from './contract.js';

export interface ChainEntry {
  readonly name: string;
  readonly def: AnyPlugin;
  /** What the phases receive: what the plugin's compile() returned for the validated conf (or that conf). */
  readonly conf: unknown;
  readonly priority: number;
  /** `_meta.filter`, compiled; false skips the plugin for this request. */
  readonly filter: ((vars: Vars) => boolean) | undefined;
  /** `_meta.error_response`: replaces the body of an exit with status >= 400. */
  readonly errorResponse: unknown;
  /** Added by the consumer merge (runs in rewrite_in_consumer). */
  readonly fromConsumer: boolean;
  /** Upstreams the plugin's compile() built (CompileEnv.upstream): live while a snapshot holds this entry. */
  readonly upstreams?: readonly PluginUpstream[];
}

export type ExitPhase = 'rewrite' | 'access' | 'before_proxy';

export interface PluginChain {
  readonly entries: readonly ChainEntry[];
  readonly byName: ReadonlyMap<string, ChainEntry>;
  readonly rewrite: readonly ChainEntry[];
  readonly access: readonly ChainEntry[];
  readonly before_proxy: readonly ChainEntry[];
  readonly header_filter: readonly ChainEntry[];
  readonly body_filter: readonly ChainEntry[];
  readonly log: readonly ChainEntry[];
  /** Consumer-added, non-auth plugins with a rewrite phase (APISIX's rewrite_in_consumer). */
  readonly rewriteInConsumer: readonly ChainEntry[];
}

/** An exit decided by a plugin, with `_meta.error_response` already applied. */
export interface Exit {
  readonly status: number;
  readonly body: unknown;
  readonly headers: Record<string, string> | undefined;
  readonly plugin: string;
}

export type PhaseResult = Exit | undefined | Promise<Exit | undefined>;

/** Sorts entries by descending priority (`_meta.priority` already folded in); ties keep plugin name order stable. */
export function buildChain(entries: ChainEntry[]): PluginChain {
  const sorted = [...entries].sort((a, b) => b.priority - a.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const byPhase = (phase: PhaseName) => sorted.filter((e) => typeof e.def[phase] === 'function');
  return {
    entries: sorted,
    byName: new Map(sorted.map((e) => [e.name, e])),
    rewrite: byPhase('rewrite'),
    access: byPhase('access'),
    before_proxy: byPhase('before_proxy'),
    header_filter: byPhase('header_filter'),
    body_filter: byPhase('body_filter'),
    log: byPhase('log'),
    rewriteInConsumer: sorted.filter((e) => e.fromConsumer && e.def.type !== 'auth' && typeof e.def.rewrite === 'function'),
  };
}

export const EMPTY_CHAIN: PluginChain = buildChain([]);

function isPromise(v: unknown): v is Promise<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * A plugin's phase function threw (or its promise rejected): carries the
 * plugin's name and phase so the request's 500 is logged against the plugin
 * that caused it, not just the route.
 */
export class PluginFailure extends Error {
  constructor(
    readonly plugin: string,
    readonly phase: PhaseName,
    readonly error: unknown,
  ) {
    super(`plugin ${plugin} failed in ${phase}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** The fields a failure is logged with: the plugin and phase when known, and the original error. */
export function failureFields(err: unknown): { err: unknown; plugin?: string; phase?: PhaseName } {
  return err instanceof PluginFailure ? { err: err.error, plugin: err.plugin, phase: err.phase } : { err };
}

function toExit(result: PluginExit | void, entry: ChainEntry): Exit | undefined {
  if (result === undefined || result === null || typeof result !== 'object') return undefined;
  const status = result.status;
  if (typeof status !== 'number') return undefined;
  const body = status >= 400 && entry.errorResponse !== undefined ? entry.errorResponse : result.body;
  return { status, body, headers: result.headers, plugin: entry.name };
}

/**
 * Runs one exit-capable phase from `start`. Returns the first exit, or
 * undefined when every plugin let the request through; a promise only when
 * some plugin returned one. Throws (or rejects) when a plugin throws.
 */
export function runPhase(list: readonly ChainEntry[], phase: ExitPhase, ctx: RequestContext, start = 0): PhaseResult {
  for (let i = start; i < list.length; i++) {
    const entry = list[i]!;
    if (entry.filter !== undefined && !entry.filter(ctx.var)) continue;
    let result: MaybePromise<PluginExit | void>;
    try {
      result = entry.def[phase]!(entry.conf, ctx);
    } catch (err) {
      throw new PluginFailure(entry.name, phase, err);
    }
    if (result === undefined) continue;
    if (isPromise(result)) {
      return result.then(
        (r) => toExit(r, entry) ?? runPhase(list, phase, ctx, i + 1),
        (err: unknown) => {
          throw new PluginFailure(entry.name, phase, err);
        },
      );
    }
    const exit = toExit(result, entry);
    if (exit !== undefined) return exit;
  }
  return undefined;
}

/** header_filter / log: synchronous, return values ignored. Throws when a plugin throws. */
export function runNotify(list: readonly ChainEntry[], phase: 'header_filter' | 'log', ctx: RequestContext): void {
  for (let i = 0; i < list.length; i++) notifyOne(list[i]!, phase, ctx);
}

function notifyOne(entry: ChainEntry, phase: 'header_filter' | 'log', ctx: RequestContext): void {
  if (entry.filter !== undefined && !entry.filter(ctx.var)) return;
  try {
    entry.def[phase]!(entry.conf, ctx);
  } catch (err) {
    throw new PluginFailure(entry.name, phase, err);
  }
}

/** header_filter: global rules' plugins, then the route's. Throws when a plugin throws. */
export function runHeaderFilter(global: PluginChain, chain: PluginChain | undefined, ctx: RequestContext): void {
  runNotify(global.header_filter, 'header_filter', ctx);
  if (chain !== undefined) runNotify(chain.header_filter, 'header_filter', ctx);
}

/**
 * The log phase: global rules' plugins, then the route's. The request is
 * already answered, so a plugin that throws is reported and the next one
 * still runs (APISIX logs a failing log-phase plugin and goes on).
 */
export function runLog(global: PluginChain, chain: PluginChain | undefined, ctx: RequestContext, failed: (err: unknown, plugin: string) => void): void {
  logEach(global.log, ctx, failed);
  if (chain !== undefined) logEach(chain.log, ctx, failed);
}

function logEach(list: readonly ChainEntry[], ctx: RequestContext, failed: (err: unknown, plugin: string) => void): void {
  for (let i = 0; i < list.length; i++) {
    const entry = list[i]!;
    try {
      notifyOne(entry, 'log', ctx);
    } catch (err) {
      failed(err instanceof PluginFailure ? err.error : err, entry.name);
    }
  }
}

const combinedFilters = new WeakMap<PluginChain, { global: PluginChain; list: readonly ChainEntry[] }>();

/**
 * The body_filter plugins of a request: the global rules' first, then the
 * route's (APISIX runs global plugins first in every phase). Built once per
 * pair of chains (both are immutable and rebuilt on a config change), not per
 * response.
 */
export function bodyFilters(global: PluginChain, chain: PluginChain | undefined): readonly ChainEntry[] {
  if (chain === undefined || chain.body_filter.length === 0) return global.body_filter;
  if (global.body_filter.length === 0) return chain.body_filter;
  const cached = combinedFilters.get(chain);
  if (cached !== undefined && cached.global === global) return cached.list;
  const list = [...global.body_filter, ...chain.body_filter];
  combinedFilters.set(chain, { global, list });
  return list;
}

/** Passes one chunk through every body_filter plugin in order; returns what to write. */
export function runBodyFilter(list: readonly ChainEntry[], ctx: RequestContext, chunk: Buffer, eof: boolean): Buffer {
  let out = chunk;
  for (let i = 0; i < list.length; i++) {
    const entry = list[i]!;
    if (entry.filter !== undefined && !entry.filter(ctx.var)) continue;
    let replaced: Buffer | void;
    try {
      replaced = entry.def.body_filter!(entry.conf, ctx, out, eof);
    } catch (err) {
      throw new PluginFailure(entry.name, 'body_filter', err);
    }
    if (replaced !== undefined) out = replaced;
  }
  return out;
}
