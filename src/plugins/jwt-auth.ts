/**
 * jwt-auth (APISIX priority 2510, type auth): identifies the consumer by a
 * JWT read from a header, else the query string, else a cookie, whose key
 * claim names the consumer's `key` (apisix/plugins/jwt-auth.lua and
 * jwt-auth/parser.lua). Only verifies: APISIX 3.x no longer signs tokens.
 *
 * The key → consumer table and each consumer's verification key (HMAC secret
 * bytes, or a parsed public key) are built in `consumers()` whenever
 * consumers change, so a request parses the token, does one Map lookup and
 * one signature check. The token's `alg` must equal the consumer's
 * `algorithm`, which closes alg `none` and HS-with-a-public-key confusion.
 */
import { createHmac, createPublicKey, timingSafeEqual, verify as cryptoVerify, constants, type KeyObject } from 'node:crypto';
import {
  dataKey,
  definePlugin,
  isSecretRef,
  queryArg,
  withoutArg,
  type ConsumerConf,
  type PluginDefinition,
  type PluginExit,
  type RequestContext,
  type SchemaType,
} from '../core/plugin/index.js';
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

const HS_ALGS = ['HS256', 'HS384', 'HS512'];
const PK_ALGS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'EdDSA'];

export const schema = {
  type: 'object',
  properties: {
    header: { type: 'string', default: 'authorization' },
    query: { type: 'string', default: 'jwt' },
    cookie: { type: 'string', default: 'jwt' },
    hide_credentials: { type: 'boolean', default: false },
    key_claim_name: { type: 'string', default: 'key', minLength: 1 },
    store_in_ctx: { type: 'boolean', default: false },
    realm: realmSchema('jwt'),
    anonymous_consumer: anonymousConsumerSchema,
    claims_to_verify: {
      type: 'array',
      items: { type: 'string', enum: ['exp', 'nbf'] },
      uniqueItems: true,
    },
  },
};

export const consumer_schema = {
  type: 'object',
  // can't use additionalProperties with dependencies
  properties: {
    key: { type: 'string', minLength: 1 },
    secret: { type: 'string', minLength: 1 },
    algorithm: { type: 'string', enum: [...HS_ALGS, ...PK_ALGS], default: 'HS256' },
    exp: { type: 'integer', minimum: 1, default: 86400 },
    base64_secret: { type: 'boolean', default: false },
    lifetime_grace_period: { type: 'integer', minimum: 0, default: 0 },
  },
  dependencies: {
    algorithm: {
      oneOf: [
        { properties: { algorithm: { enum: HS_ALGS, default: 'HS256' } } },
        {
          properties: {
            public_key: { type: 'string', minLength: 1 },
            algorithm: { enum: PK_ALGS },
          },
          required: ['public_key'],
        },
      ],
    },
  },
  required: ['key'],
};

export interface JwtAuthConf {
  header?: string;
  query?: string;
  cookie?: string;
  hide_credentials?: boolean;
  key_claim_name?: string;
  store_in_ctx?: boolean;
  realm?: string;
  anonymous_consumer?: string;
  claims_to_verify?: Array<'exp' | 'nbf'>;
}

interface JwtAuthCompiled extends JwtAuthConf {
  readonly rt: Runtime;
}

/** `store_in_ctx`: the verified token's payload, under APISIX's ctx name. */
const JWT_AUTH_PAYLOAD = dataKey<Record<string, unknown>>('jwt_auth_payload');

interface Runtime {
  header: string;
  missing: PluginExit;
  invalid: PluginExit;
  missingKey: PluginExit;
  invalidKey: PluginExit;
  failed: PluginExit;
  anonymousFailed: PluginExit;
}

interface ConsumerJwtConf {
  key: string;
  secret?: string;
  public_key?: string;
  algorithm: string;
  base64_secret?: boolean;
  lifetime_grace_period?: number;
}

function check(conf: Record<string, unknown>, type: SchemaType): string | undefined {
  if (type !== 'consumer') return undefined;
  const c = conf as unknown as ConsumerJwtConf;
  const isHs = c.algorithm.startsWith('HS');
  if (isHs && c.secret === undefined) return 'property "secret" is required when using HS based algorithms';
  if (c.base64_secret && typeof c.secret === 'string' && !isSecretRef(c.secret) && decodeBase64Strict(c.secret) === undefined) {
    return 'base64_secret required but the secret is not in base64 format';
  }
  if (!isHs && c.public_key === undefined) return 'missing valid public key';
  return undefined;
}

/** What checks a token for one consumer: its algorithm, key and leeway, prepared when consumers change. */
interface Verifier {
  alg: string;
  /** Undefined when the secret or public key cannot be used: every token fails (APISIX: `failed to verify jwt`). */
  check?: (signingInput: string, signature: Buffer) => boolean;
  leeway: number;
}

const HASH: Record<string, string> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' };
// ES signatures are raw r||s (JWS), of exactly this many bytes (parser.lua's asserts).
const ES_SIG_BYTES: Record<string, number> = { ES256: 64, ES384: 96, ES512: 132 };

function hmacCheck(hash: string, secret: Buffer): Verifier['check'] {
  return (input, sig) => {
    const want = createHmac(hash, secret).update(input).digest();
    return sig.length === want.length && timingSafeEqual(sig, want);
  };
}

function publicKeyCheck(alg: string, key: KeyObject): Verifier['check'] {
  const hash = HASH[alg.slice(2)];
  return (input, sig) => {
    try {
      const data = Buffer.from(input);
      if (alg === 'EdDSA') return cryptoVerify(null, data, key, sig);
      if (alg.startsWith('ES')) return sig.length === ES_SIG_BYTES[alg] && cryptoVerify(hash, data, { key, dsaEncoding: 'ieee-p1363' }, sig);
      if (alg.startsWith('PS')) {
        return cryptoVerify(hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, sig);
      }
      // RS*: a key of another type (EC for an RS consumer) throws or fails here; either way the token is refused.
      return key.asymmetricKeyType === 'rsa' && cryptoVerify(hash, data, key, sig);
    } catch {
      return false;
    }
  };
}

function makeVerifier(conf: ConsumerJwtConf): Verifier {
  const alg = conf.algorithm;
  const leeway = conf.lifetime_grace_period ?? 0;
  if (alg.startsWith('HS')) {
    if (typeof conf.secret !== 'string') return { alg, leeway };
    const secret = conf.base64_secret ? decodeBase64Strict(conf.secret) : Buffer.from(conf.secret, 'utf8');
    return { alg, leeway, check: secret && hmacCheck(HASH[alg.slice(2)]!, secret) };
  }
  try {
    return { alg, leeway, check: publicKeyCheck(alg, createPublicKey(conf.public_key ?? '')) };
  } catch {
    return { alg, leeway };
  }
}

// Replaced wholesale on each consumer change; requests in flight keep the tables they read.
let index: ConsumerIndex = { byKey: new Map(), byName: new Map() };
let verifiers = new Map<ConsumerConf, Verifier>();

function consumers(list: readonly ConsumerConf[]): void {
  const next = indexConsumers(list, 'jwt-auth', 'key');
  const v = new Map<ConsumerConf, Verifier>();
  for (const c of next.byKey.values()) v.set(c, makeVerifier(c.plugins!['jwt-auth'] as unknown as ConsumerJwtConf));
  index = next;
  verifiers = v;
}

function compile(conf: JwtAuthConf): JwtAuthCompiled {
  const realm = conf.realm ?? 'jwt';
  const e = (message: string) => exit401('Bearer', realm, message);
  return {
    ...conf,
    rt: {
      header: (conf.header ?? 'authorization').toLowerCase(),
      missing: e('Missing JWT token in request'),
      invalid: e('JWT token invalid'),
      missingKey: e('missing user key in JWT token'),
      invalidKey: e('Invalid user key in JWT token'),
      failed: e('failed to verify jwt'),
      anonymousFailed: e('Invalid user authorization'),
    },
  };
}

// APISIX's remove_specified_cookie keeps the `name=value` pairs matching these classes, joined by "; ".
const COOKIE_PAIR = /([a-zA-Z0-9\-_]*)=([a-zA-Z0-9\-._]*)/g;

function withoutCookie(header: string, name: string): string {
  const kept: string[] = [];
  for (const m of header.matchAll(COOKIE_PAIR)) if (m[1] !== name) kept.push(m[0]);
  return kept.join('; ');
}

/** The token as APISIX's fetch_jwt_token finds it, hiding where it came from when asked (before it is checked). */
function fetchToken(conf: JwtAuthConf, rt: Runtime, ctx: RequestContext): string | undefined {
  const up = ctx.upstreamRequest;
  const fromHeader = up.headers.get(rt.header);
  if (fromHeader !== undefined) {
    if (conf.hide_credentials) up.headers.remove(rt.header);
    const prefix = fromHeader.slice(0, 7);
    return prefix === 'Bearer ' || prefix === 'bearer ' ? fromHeader.slice(7) : fromHeader;
  }
  const queryName = conf.query ?? 'jwt';
  const fromQuery = queryArg(up.query, queryName);
  if (fromQuery !== undefined) {
    if (conf.hide_credentials) up.query = withoutArg(up.query, queryName);
    return fromQuery;
  }
  const cookieName = conf.cookie ?? 'jwt';
  const fromCookie = ctx.var.get(`cookie_${cookieName}`);
  if (fromCookie === undefined) return undefined;
  if (conf.hide_credentials) {
    const rest = withoutCookie(up.headers.get('cookie') ?? '', cookieName);
    if (rest === '') up.headers.remove('cookie');
    else up.headers.set('cookie', rest);
  }
  return fromCookie;
}

/** base64url without padding, strictly (as decode_base64url); undefined when malformed. */
function b64url(s: string): Buffer | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return undefined;
  return Buffer.from(s, 'base64url');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function jsonPart(s: string): Record<string, unknown> | undefined {
  // resty.jwt pads and decodes header and payload with the standard decoder, so `=` padding is tolerated there.
  const raw = b64url(s.replace(/=+$/, ''));
  if (raw === undefined) return undefined;
  try {
    const v: unknown = JSON.parse(raw.toString('utf8'));
    return isObject(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

export interface ParsedJwt {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  signingInput: string;
  signature: string;
}

/** A compact JWS split and decoded (resty.jwt load_jwt); undefined when it is not one. */
export function parseJwt(token: string): ParsedJwt | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  const header = jsonPart(parts[0]!);
  const payload = header && jsonPart(parts[1]!);
  if (header === undefined || payload === undefined) return undefined;
  return { header, payload, signingInput: `${parts[0]}.${parts[1]}`, signature: parts[2]! };
}

/**
 * parser.lua's verify_claims: without claims_to_verify, `nbf` and `exp` are
 * checked when present; with it, the listed ones must be present. APISIX's
 * comparisons are kept exactly (`nbf < now + leeway`, `exp > now - leeway`).
 */
export function claimsValid(payload: Record<string, unknown>, claims: readonly string[] | undefined, leeway: number, now: number): boolean {
  const required = claims !== undefined && claims.length > 0;
  for (const name of required ? claims : ['nbf', 'exp']) {
    const v = payload[name];
    if (v === undefined) {
      if (required) return false;
      continue;
    }
    if (typeof v !== 'number') return false;
    if (name === 'nbf' ? !(v < now + leeway) : !(v > now - leeway)) return false;
  }
  return true;
}

function authenticate(conf: JwtAuthConf, rt: Runtime, ctx: RequestContext): ConsumerConf | PluginExit {
  const token = fetchToken(conf, rt, ctx);
  if (token === undefined) return rt.missing;
  const jwt = parseJwt(token);
  if (jwt === undefined) return rt.invalid;

  const userKey = jwt.payload[conf.key_claim_name ?? 'key'];
  if (userKey === undefined || userKey === false) return rt.missingKey;
  const consumer = typeof userKey === 'string' ? index.byKey.get(userKey) : undefined;
  if (consumer === undefined) return rt.invalidKey;

  const v = verifiers.get(consumer);
  if (v?.check === undefined || jwt.header.alg !== v.alg) return rt.failed;
  const sig = b64url(jwt.signature);
  if (sig === undefined || !v.check(jwt.signingInput, sig)) return rt.failed;
  if (!claimsValid(jwt.payload, conf.claims_to_verify, v.leeway, Math.floor(Date.now() / 1000))) return rt.failed;

  if (conf.store_in_ctx) ctx.setData(JWT_AUTH_PAYLOAD, jwt.payload);
  return consumer;
}

function rewrite(conf: JwtAuthCompiled, ctx: RequestContext): PluginExit | void {
  const rt = conf.rt;
  const found = authenticate(conf, rt, ctx);
  if (!('status' in found)) {
    attachConsumer(ctx, found);
    return;
  }
  if (conf.anonymous_consumer === undefined) return found;
  return attachAnonymous(ctx, index, conf.anonymous_consumer, rt.anonymousFailed);
}

export default definePlugin({
  name: 'jwt-auth',
  priority: 2510,
  version: '0.1',
  type: 'auth',
  schema,
  consumer_schema,
  encrypt_fields: ['secret'],
  check: check as PluginDefinition<JwtAuthConf>['check'],
  compile,
  consumers,
  rewrite,
});
