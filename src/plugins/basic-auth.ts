/**
 * basic-auth (APISIX priority 2520, type auth): identifies the consumer by
 * HTTP Basic credentials in the Authorization header
 * (apisix/plugins/basic-auth.lua). The username → consumer table and each
 * password's digest are built in `consumers()` whenever consumers change; a
 * request costs a header parse, one Map lookup and one constant-time compare.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { definePlugin, type ConsumerConf, type PluginExit, type RequestContext } from '../core/plugin/index.js';
import {
  anonymousConsumerSchema,
  attachAnonymous,
  attachConsumer,
  decodeBase64Strict,
  exit401,
  indexConsumers,
  realmSchema,
  type ConsumerIndex,
} from './lib/auth-common.js';

export const schema = {
  type: 'object',
  title: 'work with route or service object',
  properties: {
    hide_credentials: { type: 'boolean', default: false },
    realm: realmSchema('basic'),
    anonymous_consumer: anonymousConsumerSchema,
  },
};

export const consumer_schema = {
  type: 'object',
  title: 'work with consumer object',
  properties: {
    username: { type: 'string' },
    password: { type: 'string' },
  },
  required: ['username', 'password'],
};

export interface BasicAuthConf {
  hide_credentials?: boolean;
  realm?: string;
  anonymous_consumer?: string;
}

interface BasicAuthCompiled extends BasicAuthConf {
  readonly rt: { missing: PluginExit; badHeader: PluginExit; badUser: PluginExit };
}

// Replaced wholesale on each consumer change; requests in flight keep the tables they read.
let index: ConsumerIndex = { byKey: new Map(), byName: new Map() };
let digests = new WeakMap<ConsumerConf, Buffer>();

/** Equal-length digests, so comparing them takes the same time whatever the password. */
function digest(password: Buffer): Buffer {
  return createHash('sha256').update(password).digest();
}

function consumers(list: readonly ConsumerConf[]): void {
  const next = indexConsumers(list, 'basic-auth', 'username');
  const d = new WeakMap<ConsumerConf, Buffer>();
  for (const c of next.byKey.values()) {
    const password = c.plugins?.['basic-auth']?.password;
    if (typeof password === 'string') d.set(c, digest(Buffer.from(password, 'utf8')));
  }
  index = next;
  digests = d;
}

function compile(conf: BasicAuthConf): BasicAuthCompiled {
  const realm = conf.realm ?? 'basic';
  return {
    ...conf,
    rt: {
      missing: exit401('Basic', realm, 'Missing authorization in request'),
      badHeader: exit401('Basic', realm, 'Invalid authorization in request'),
      badUser: exit401('Basic', realm, 'Invalid user authorization'),
    },
  };
}

// APISIX matches `(?i:basic)\s(.+)` anywhere in the header (PCRE: `\s` is ASCII whitespace, `.` all but \n).
const BASIC = /basic[ \t\n\v\f\r]([^\n]+)/i;
const WHITESPACE = /[ \t\n\v\f\r]+/g;

/**
 * Username and password from an Authorization value, as APISIX reads them:
 * the decoded text is split on every `:` and the first two fields kept, with
 * all whitespace removed from each. Undefined when the header cannot be read.
 */
export function parseBasic(header: string): { username: string; password: Buffer } | undefined {
  const m = BASIC.exec(header);
  if (m === null) return undefined;
  const decoded = decodeBase64Strict(m[1]!);
  if (decoded === undefined) return undefined;
  const fields = decoded.toString('latin1').split(':');
  if (fields.length < 2) return undefined;
  // Split as bytes (latin1 maps each byte to one char); the password stays bytes, compared as Lua compares strings.
  const clean = (f: string): Buffer => Buffer.from(f.replace(WHITESPACE, ''), 'latin1');
  return { username: clean(fields[0]!).toString('utf8'), password: clean(fields[1]!) };
}

function authenticate(rt: BasicAuthCompiled['rt'], ctx: RequestContext): ConsumerConf | PluginExit {
  const header = ctx.upstreamRequest.headers.get('authorization');
  if (header === undefined) return rt.missing;
  const creds = parseBasic(header);
  if (creds === undefined) return rt.badHeader;
  const consumer = index.byKey.get(creds.username);
  const want = consumer === undefined ? undefined : digests.get(consumer);
  if (consumer === undefined || want === undefined || !timingSafeEqual(digest(creds.password), want)) return rt.badUser;
  return consumer;
}

function rewrite(conf: BasicAuthCompiled, ctx: RequestContext): PluginExit | void {
  const rt = conf.rt;
  const found = authenticate(rt, ctx);
  if ('status' in found) {
    if (conf.anonymous_consumer === undefined) return found;
    const refused = attachAnonymous(ctx, index, conf.anonymous_consumer, rt.badUser);
    if (refused !== undefined) return refused;
  } else {
    attachConsumer(ctx, found);
  }
  // APISIX hides the header once the request is let through, by a consumer or the anonymous one.
  if (conf.hide_credentials) ctx.upstreamRequest.headers.remove('authorization');
}

export default definePlugin({
  name: 'basic-auth',
  priority: 2520,
  version: '0.1',
  type: 'auth',
  schema,
  consumer_schema,
  encrypt_fields: ['password'],
  compile,
  consumers,
  rewrite,
});
