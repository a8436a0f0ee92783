/**
 * What APISIX's auth plugins share (apisix/consumer.lua): the per-plugin
 * lookup table built when consumers change, the anonymous-consumer table,
 * attach_consumer's upstream headers, and the 401 with its challenge. Not a
 * plugin: the registry never loads src/plugins/lib/.
 */
import type { ConsumerConf, PluginExit, RequestContext } from '../../core/plugin/index.js';

/** APISIX's schema_def.get_realm_schema: printable ASCII without `"` and `\`, so it is safe inside the quoted challenge. */
export function realmSchema(defaultRealm: string): Record<string, unknown> {
  return { type: 'string', pattern: '^[\\x20-\\x21\\x23-\\x5B\\x5D-\\x7E]+$', default: defaultRealm, minLength: 1, maxLength: 128 };
}

/** APISIX's schema_def.anonymous_consumer_schema. */
export const anonymousConsumerSchema = { type: 'string', minLength: 1 };

export interface ConsumerIndex {
  /** Consumers and credentials by the plugin's unique attribute (src/schema/consumer-keys.ts). */
  byKey: Map<string, ConsumerConf>;
  /** Consumers (never credentials) by username, for anonymous_consumer. */
  byName: Map<string, ConsumerConf>;
}

/** Builds both tables for `plugin`, keyed by its conf's `attr`; done at config-change time, never per request. */
export function indexConsumers(list: readonly ConsumerConf[], plugin: string, attr: string): ConsumerIndex {
  const byKey = new Map<string, ConsumerConf>();
  const byName = new Map<string, ConsumerConf>();
  for (const c of list) {
    // anonymous_consumer names a consumer, not one of its credentials.
    if (c.credential_id === undefined) byName.set(c.username, c);
    const key = c.plugins?.[plugin]?.[attr];
    // Admin writes refuse duplicate keys; should one slip in, the first consumer keeps it.
    if (typeof key === 'string' && !byKey.has(key)) byKey.set(key, c);
  }
  return { byKey, byName };
}

/** APISIX's 401: `{"message": ...}` with `WWW-Authenticate: <scheme> realm="<realm>"`; built once per conf. */
export function exit401(scheme: string, realm: string, message: string): PluginExit {
  return Object.freeze({
    status: 401,
    body: Object.freeze({ message }),
    headers: Object.freeze({ 'WWW-Authenticate': `${scheme} realm="${realm}"` }),
  });
}

/** As APISIX's consumer.attach_consumer: the request belongs to `consumer` and the upstream learns who called. */
export function attachConsumer(ctx: RequestContext, consumer: ConsumerConf): void {
  ctx.consumer = consumer;
  const h = ctx.upstreamRequest.headers;
  h.set('x-consumer-username', consumer.username);
  const customId = consumer.labels?.custom_id;
  if (customId !== undefined) h.set('x-consumer-custom-id', customId);
  else h.remove('x-consumer-custom-id');
  // Set from the credential that matched, or removed: a client must not be able to forge one.
  if (consumer.credential_id !== undefined) h.set('x-credential-identifier', consumer.credential_id);
  else h.remove('x-credential-identifier');
}

/**
 * The anonymous_consumer fallback after a failed authentication: attaches
 * the named consumer, or returns `failed` (APISIX's `Invalid user
 * authorization`) when no consumer has that name.
 */
export function attachAnonymous(ctx: RequestContext, index: ConsumerIndex, name: string, failed: PluginExit): PluginExit | void {
  const anonymous = index.byName.get(name);
  if (anonymous === undefined) return failed;
  attachConsumer(ctx, anonymous);
}

/**
 * ngx.decode_base64: the standard alphabet up to the first `=` (what follows
 * it is ignored), padding optional; anything else is refused.
 */
export function decodeBase64Strict(s: string): Buffer | undefined {
  const eq = s.indexOf('=');
  const body = eq < 0 ? s : s.slice(0, eq);
  if (!/^[A-Za-z0-9+/]*$/.test(body) || body.length % 4 === 1) return undefined;
  return Buffer.from(body, 'base64');
}
