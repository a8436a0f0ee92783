/**
 * Talking to the OpenID provider: its discovery document, its signing keys
 * (JWKS) and its endpoints, each call bounded by the conf's timeout and TLS
 * checked unless ssl_verify is off. Discovery documents and key sets are
 * cached per URL and shared by every conf that names it (lua-resty-openidc
 * caches them per worker too); a failed fetch is not cached.
 */
import { Agent, fetch, type RequestInit, type Response } from 'undici';
import { createRemoteJWKSet, customFetch, type JWTVerifyGetKey } from 'jose';

export interface Discovery {
  readonly issuer: string;
  readonly authorization_endpoint?: string;
  readonly token_endpoint?: string;
  readonly userinfo_endpoint?: string;
  readonly jwks_uri?: string;
  readonly introspection_endpoint?: string;
  readonly end_session_endpoint?: string;
}

/** lua-resty-openidc keeps a discovery document a day. */
const DISCOVERY_TTL_MS = 24 * 3600 * 1000;

const verifying = new Agent({ keepAliveTimeout: 60_000 });
const trusting = new Agent({ keepAliveTimeout: 60_000, connect: { rejectUnauthorized: false } });

export interface Transport {
  readonly sslVerify: boolean;
  /** Milliseconds for a whole exchange. */
  readonly timeoutMs: number;
}

export function call(t: Transport, url: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { ...init, dispatcher: t.sslVerify ? verifying : trusting, signal: AbortSignal.timeout(t.timeoutMs), redirect: 'manual' });
}

const discoveries = new Map<string, { doc: Discovery; at: number }>();

export async function discover(t: Transport, url: string): Promise<Discovery> {
  const cached = discoveries.get(url);
  if (cached !== undefined && Date.now() - cached.at < DISCOVERY_TTL_MS) return cached.doc;
  const res = await call(t, url, { headers: { accept: 'application/json' } });
  if (res.status !== 200) throw new Error(`discovery document ${url}: status ${res.status}`);
  const doc = (await res.json()) as Discovery;
  if (typeof doc !== 'object' || doc === null || typeof doc.issuer !== 'string') throw new Error(`discovery document ${url}: no issuer`);
  discoveries.set(url, { doc, at: Date.now() });
  return doc;
}

const keySets = new Map<string, JWTVerifyGetKey>();

/** The provider's keys, refetched when a token names a key id the cached set lacks (key rotation). */
export function keySet(t: Transport, jwksUri: string, cacheMaxAgeMs: number): JWTVerifyGetKey {
  const key = `${t.sslVerify}|${cacheMaxAgeMs}|${jwksUri}`;
  let set = keySets.get(key);
  if (set === undefined) {
    set = createRemoteJWKSet(new URL(jwksUri), {
      timeoutDuration: t.timeoutMs,
      cacheMaxAge: cacheMaxAgeMs,
      [customFetch]: (url, options) => fetch(url, { ...(options as RequestInit), dispatcher: t.sslVerify ? verifying : trusting }) as unknown as ReturnType<typeof globalThis.fetch>,
    });
    keySets.set(key, set);
  }
  return set;
}

/** Client authentication at the token and introspection endpoints. */
export function clientAuth(method: string, clientId: string, secret: string | undefined, form: URLSearchParams): Record<string, string> {
  if (method === 'client_secret_post') {
    form.set('client_id', clientId);
    if (secret !== undefined) form.set('client_secret', secret);
    return {};
  }
  if (secret === undefined) {
    form.set('client_id', clientId);
    return {};
  }
  // RFC 6749 section 2.3.1: each part form-encoded before the Basic encoding.
  const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
  return { authorization: `Basic ${Buffer.from(`${enc(clientId)}:${enc(secret)}`).toString('base64')}` };
}
