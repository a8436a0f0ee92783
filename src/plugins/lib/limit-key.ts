/**
 * The key a limiting plugin counts by (limit-count, limit-req, limit-conn):
 * APISIX's `key` with `key_type` `var` (one variable), `var_combination` (a
 * template such as `$http_x_user $remote_addr`) or `constant`. A key that
 * resolves to nothing falls back to the client address, as in
 * apisix/plugins/limit-count/init.lua, so a missing header is not a free pass.
 */
import { createHash } from 'node:crypto';
import { compileTemplate, renderTemplate, type RequestContext, type Template } from '../../core/plugin/index.js';

export type KeyType = 'var' | 'var_combination' | 'constant';

export interface LimitKey {
  readonly type: KeyType;
  readonly key: string;
  readonly template?: Template;
}

/** Compiled once per conf. */
export function compileLimitKey(key: string, type: KeyType = 'var'): LimitKey {
  return { type, key, template: type === 'var_combination' ? compileTemplate(key) : undefined };
}

/** This request's key, before any route or conf prefix. */
export function resolveLimitKey(k: LimitKey, ctx: RequestContext): string {
  let key: string | undefined;
  if (k.type === 'constant') key = k.key;
  else if (k.template !== undefined) {
    const rendered = renderTemplate(k.template, ctx.var);
    key = rendered === '' ? undefined : rendered;
  } else key = ctx.var.get(k.key);
  return key ?? ctx.remoteAddr;
}

/**
 * A short digest of a conf's content. Counters are keyed by it, so
 * recompiling after an unrelated config change keeps them while editing the
 * plugin's conf starts afresh (APISIX keys them on the conf's version), and
 * every node sharing one Redis computes the same key.
 */
export function confDigest(conf: unknown): string {
  return createHash('sha1').update(JSON.stringify(conf)).digest('base64url').slice(0, 16);
}

/** The counter's key: the route, the conf and this request's key (APISIX's `resource_key:conf_version:key`). */
export function counterKey(ctx: RequestContext, digest: string, k: LimitKey): string {
  return `${ctx.route.id}:${digest}:${resolveLimitKey(k, ctx)}`;
}
