/**
 * hmac-auth (APISIX priority 2530, type auth), APISIX 3.x's scheme
 * (apisix/plugins/hmac-auth.lua): the client signs its key id, the headers it
 * names (and `@request-target`) with the consumer's secret and sends
 *   Authorization: Signature keyId="...",algorithm="hmac-sha256",headers="@request-target date",signature="<base64>"
 * The gateway rebuilds the signing string from the request it received and
 * compares; a Date within clock_skew and the route's signed_headers are
 * required, and with validate_request_body a `Digest: SHA-256=<base64>` of
 * the body. The key_id → consumer table is built when consumers change.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
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
import { parseHttpTime } from './hmac-auth/http-time.js';

const ALLOWED_ALGORITHMS = ['hmac-sha1', 'hmac-sha256', 'hmac-sha512'] as const;
type Algorithm = (typeof ALLOWED_ALGORITHMS)[number];
const DIGEST: Readonly<Record<Algorithm, string>> = { 'hmac-sha1': 'sha1', 'hmac-sha256': 'sha256', 'hmac-sha512': 'sha512' };

export const schema = {
  type: 'object',
  title: 'work with route or service object',
  properties: {
    allowed_algorithms: { type: 'array', minItems: 1, items: { type: 'string', enum: [...ALLOWED_ALGORITHMS] }, default: [...ALLOWED_ALGORITHMS] },
    clock_skew: { type: 'integer', default: 300, minimum: 1 },
    signed_headers: { type: 'array', default: ['date'], items: { type: 'string', minLength: 1, maxLength: 50 } },
    validate_request_body: { type: 'boolean', default: false },
    max_req_body_size: { type: 'integer', minimum: 1, default: 67108864 },
    hide_credentials: { type: 'boolean', default: false },
    realm: realmSchema('hmac'),
    anonymous_consumer: anonymousConsumerSchema,
  },
};

export const consumer_schema = {
  type: 'object',
  title: 'work with consumer object',
  properties: {
    key_id: { type: 'string', minLength: 1, maxLength: 256 },
    secret_key: { type: 'string', minLength: 1, maxLength: 256 },
  },
  required: ['key_id', 'secret_key'],
};

export interface HmacAuthConf {
  allowed_algorithms: Algorithm[];
  clock_skew: number;
  signed_headers: string[];
  validate_request_body: boolean;
  max_req_body_size: number;
  hide_credentials: boolean;
  realm: string;
  anonymous_consumer?: string;
}

interface Compiled {
  readonly conf: HmacAuthConf;
  readonly allowed: ReadonlySet<string>;
  readonly missingHeader: PluginExit;
  readonly notSignature: PluginExit;
  /** Every other failure: APISIX names no reason to the client (it logs it). */
  readonly refused: PluginExit;
  readonly badUser: PluginExit;
}

function compile(conf: HmacAuthConf): Compiled {
  const realm = conf.realm;
  return {
    conf,
    allowed: new Set(conf.allowed_algorithms),
    missingHeader: exit401('hmac', realm, "client request can't be validated: missing Authorization header"),
    notSignature: exit401('hmac', realm, "client request can't be validated: Authorization header does not start with 'Signature'"),
    refused: exit401('hmac', realm, "client request can't be validated"),
    badUser: exit401('hmac', realm, 'Invalid user authorization'),
  };
}

// Replaced wholesale on each consumer change; requests in flight keep the table they read.
let index: ConsumerIndex = { byKey: new Map(), byName: new Map() };

function consumers(list: readonly ConsumerConf[]): void {
  index = indexConsumers(list, 'hmac-auth', 'key_id');
}

interface SignatureParams {
  keyId?: string;
  algorithm?: string;
  signature?: string;
  headers?: string[];
}

// As APISIX reads each comma-separated field: `%s*(%w+)="(.-)"`, found anywhere in the field.
const FIELD = /\s*([A-Za-z0-9]+)="([^"]*)"/;

/** The Authorization value's fields, after the `Signature` prefix. */
export function parseSignatureHeader(value: string): SignatureParams {
  const params: SignatureParams = {};
  for (const field of value.slice(9).split(',')) {
    const m = FIELD.exec(field);
    if (m === null) continue;
    const [, key, v] = m as unknown as [string, string, string];
    if (key === 'keyId' || key === 'algorithm' || key === 'signature') params[key] = v;
    else if (key === 'headers') params.headers = v.split(' ');
  }
  return params;
}

/**
 * The string the client signed: the key id, then `name: value` for each
 * listed header the request has (named as the client listed it), or
 * `METHOD request_uri` for `@request-target`; a listed header the request
 * lacks is left out. Each item ends in a newline.
 */
export function signingString(ctx: RequestContext, params: SignatureParams): string {
  let s = params.keyId! + '\n';
  for (const h of params.headers ?? []) {
    const value = h === '' ? undefined : ctx.upstreamRequest.headers.get(h.toLowerCase());
    if (value !== undefined) s += `${h}: ${value}\n`;
    else if (h === '@request-target') s += `${ctx.method} ${ctx.var.get('request_uri') || '/'}\n`;
  }
  return s;
}

type Verdict = ConsumerConf | 'refused' | PluginExit;

/** Everything but the body's digest, in APISIX's order. */
function verify(c: Compiled, ctx: RequestContext, params: SignatureParams): ConsumerConf | 'refused' {
  const conf = c.conf;
  if (params.keyId === undefined || params.signature === undefined || params.algorithm === undefined) return 'refused';
  const consumer = index.byKey.get(params.keyId);
  if (consumer === undefined || !c.allowed.has(params.algorithm)) return 'refused';
  const date = ctx.upstreamRequest.headers.get('date');
  if (date === undefined) return 'refused';
  const time = parseHttpTime(date);
  if (time === undefined || Math.abs(Date.now() / 1000 - time) > conf.clock_skew) return 'refused';
  if (conf.signed_headers.length > 0) {
    const listed = new Set(params.headers ?? []);
    for (const h of conf.signed_headers) if (!listed.has(h)) return 'refused';
  }
  const secret = consumer.plugins?.['hmac-auth']?.secret_key;
  if (typeof secret !== 'string') return 'refused';
  const given = decodeBase64Strict(params.signature);
  const expected = createHmac(DIGEST[params.algorithm as Algorithm], secret).update(signingString(ctx, params)).digest();
  if (given === undefined || given.length !== expected.length || !timingSafeEqual(given, expected)) return 'refused';
  return consumer;
}

/** validate_request_body: `Digest: SHA-256=<base64 of the body's SHA-256>`, compared as APISIX does, exactly. */
async function verifyDigest(c: Compiled, ctx: RequestContext, consumer: ConsumerConf, digestHeader: string): Promise<Verdict> {
  const body = await ctx.readBody(c.conf.max_req_body_size);
  // APISIX answers a body it cannot read (too large, cut off) with 413 and the reason.
  if (!Buffer.isBuffer(body)) return { status: 413, body: { message: body.error } };
  const want = 'SHA-256=' + createHash('sha256').update(body).digest('base64');
  return digestHeader === want ? consumer : 'refused';
}

function finish(c: Compiled, ctx: RequestContext, verdict: Verdict): PluginExit | void {
  if (verdict === 'refused' || (typeof verdict === 'object' && 'status' in verdict)) {
    // A definite status (413) goes back as it is; a refusal may fall back to the anonymous consumer.
    if (verdict !== 'refused') return verdict;
    if (c.conf.anonymous_consumer === undefined) return c.refused;
    const failed = attachAnonymous(ctx, index, c.conf.anonymous_consumer, c.badUser);
    if (failed !== undefined) return failed;
  } else {
    attachConsumer(ctx, verdict);
  }
  if (c.conf.hide_credentials) ctx.upstreamRequest.headers.remove('authorization');
}

function rewrite(c: Compiled, ctx: RequestContext): PluginExit | void | Promise<PluginExit | void> {
  const header = ctx.upstreamRequest.headers.get('authorization');
  let early: PluginExit | undefined;
  if (header === undefined) early = c.missingHeader;
  else if (!header.startsWith('Signature')) early = c.notSignature;
  if (early !== undefined) {
    if (c.conf.anonymous_consumer === undefined) return early;
    return finish(c, ctx, 'refused');
  }
  const verdict = verify(c, ctx, parseSignatureHeader(header!));
  // Only a body check costs an await; the rest stays synchronous.
  if (verdict === 'refused' || !c.conf.validate_request_body) return finish(c, ctx, verdict);
  const digest = ctx.upstreamRequest.headers.get('digest');
  if (digest === undefined) return finish(c, ctx, 'refused');
  return verifyDigest(c, ctx, verdict, digest).then((v) => finish(c, ctx, v));
}

export default definePlugin({
  name: 'hmac-auth',
  priority: 2530,
  version: '0.1',
  type: 'auth',
  schema,
  consumer_schema,
  encrypt_fields: ['secret_key'],
  compile,
  consumers,
  rewrite,
});
