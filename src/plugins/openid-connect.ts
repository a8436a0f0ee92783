/**
 * openid-connect (APISIX priority 2599): OpenID Connect relying party
 * (apisix/plugins/openid-connect.lua over lua-resty-openidc).
 *
 * - Bearer tokens (bearer_only, introspection_endpoint, use_jwks or
 *   public_key): a JWT is verified against the provider's JWKS (or the
 *   public key) and its issuer must be one of claim_validator's
 *   valid_issuers, else the issuer the discovery document names; without
 *   either the request fails closed (APISIX's CVE-2025-46647: a token from
 *   another issuer holding the same key must not pass). Otherwise the token
 *   goes to the introspection endpoint.
 * - Browsers: the authorization-code flow (state, optional nonce and PKCE),
 *   the ID token verified (signature, issuer, audience), userinfo fetched,
 *   the session kept in a sealed cookie (openid-connect/session.ts); logout
 *   clears it and sends the browser to the provider's end_session_endpoint.
 * - The upstream learns the user through X-Access-Token (or Authorization),
 *   X-ID-Token, X-Userinfo, X-Refresh-Token and X-Raw-ID-Token, per the
 *   set_*_header options; whatever the client sent under those names is
 *   removed first.
 */
import { createHash, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { compileUserSchema, definePlugin, type PluginExit, type RequestContext } from '../core/plugin/index.js';
import { call, clientAuth, discover, keySet, type Discovery, type Transport } from './openid-connect/provider.js';
import { checkConf, schema, type OidcConf } from './openid-connect/schema.js';
import { readCookie, seal, sessionKey, unseal, type SessionData } from './openid-connect/session.js';

interface Compiled {
  readonly conf: OidcConf;
  readonly t: Transport;
  readonly bearer: boolean;
  readonly publicKey: KeyObject | undefined;
  readonly algorithms: string[] | undefined;
  readonly claims: ((value: unknown) => string | undefined) | undefined;
  readonly key: Buffer | undefined;
  readonly cookieName: string;
  readonly cookieAttrs: string;
  readonly lifetime: number;
  readonly challenge: string;
}

function check(conf: OidcConf): string | undefined {
  const err = checkConf(conf as OidcConf & Record<string, unknown>);
  if (err !== undefined) return err;
  if (conf.claim_schema !== undefined) {
    try {
      compileUserSchema(conf.claim_schema);
    } catch (e) {
      return `check claim_schema failed: ${(e as Error).message}`;
    }
  }
  if (conf.public_key !== undefined) {
    try {
      createPublicKey(conf.public_key);
    } catch {
      return 'property "public_key" is not a valid public key';
    }
  }
  return undefined;
}

function compile(conf: OidcConf): Compiled {
  const err = check(conf);
  if (err !== undefined) throw new Error(err);
  const s = conf.session;
  // Earlier APISIX releases stored the timeout already in milliseconds.
  const timeoutMs = conf.timeout >= 1000 && conf.timeout % 1000 === 0 ? conf.timeout : conf.timeout * 1000;
  let attrs = `; Path=${s?.cookie_path ?? '/'}`;
  if (s?.cookie_domain !== undefined) attrs += `; Domain=${s.cookie_domain}`;
  if (s?.cookie_secure === true) attrs += '; Secure';
  if (s?.cookie_http_only !== false) attrs += '; HttpOnly';
  const sameSite = s?.cookie_same_site ?? 'Lax';
  if (sameSite !== 'Default') attrs += `; SameSite=${sameSite}`;
  return {
    conf,
    t: { sslVerify: conf.ssl_verify, timeoutMs },
    bearer: conf.bearer_only || conf.introspection_endpoint !== undefined || conf.public_key !== undefined || conf.use_jwks,
    publicKey: conf.public_key === undefined ? undefined : createPublicKey(conf.public_key),
    algorithms: conf.token_signing_alg_values_expected === undefined ? undefined : [conf.token_signing_alg_values_expected],
    claims: conf.claim_schema === undefined ? undefined : compileUserSchema(conf.claim_schema),
    key: s === undefined ? undefined : sessionKey(s.secret),
    cookieName: s?.cookie_name ?? 'session',
    cookieAttrs: attrs,
    lifetime: s?.absolute_timeout ?? s?.cookie?.lifetime ?? 86400,
    challenge: `Bearer realm="${conf.realm}"`,
  };
}

/** The headers this plugin speaks for; a client's own values never reach the upstream. */
const OUTPUTS = ['x-access-token', 'x-userinfo', 'x-id-token', 'x-refresh-token', 'x-raw-id-token'];

const b64json = (v: unknown): string => Buffer.from(JSON.stringify(v), 'utf8').toString('base64');

function invalidToken(c: Compiled, description: string): PluginExit {
  // The description goes inside a quoted header parameter: no quotes or line breaks from an error message.
  const safe = description.replace(/["\\\r\n]/g, ' ');
  return { status: 401, headers: { 'WWW-Authenticate': `${c.challenge}, error="invalid_token", error_description="${safe}"` } };
}

type Token = { token: string } | { error: PluginExit } | undefined;

/** APISIX's get_bearer_access_token: `Authorization: Bearer x`, else the client's X-Access-Token. */
function bearerToken(ctx: RequestContext, clientXAccessToken: string | undefined): Token {
  const header = ctx.upstreamRequest.headers.get('authorization');
  if (header === undefined) return clientXAccessToken === undefined ? undefined : { token: clientXAccessToken };
  const sp = header.indexOf(' ');
  if (sp < 0) return { error: { status: 400 } };
  if (header.slice(0, sp).toLowerCase() !== 'bearer') return undefined;
  return { token: header.slice(sp + 1) };
}

type Checked = { claims: Record<string, unknown> } | { exit: PluginExit };

async function verifyJwt(c: Compiled, token: string): Promise<Checked> {
  const conf = c.conf;
  let issuers = conf.claim_validator?.issuer?.valid_issuers;
  let doc: Discovery | undefined;
  if (issuers === undefined || c.publicKey === undefined) {
    try {
      doc = await discover(c.t, conf.discovery);
    } catch {
      // The discovery document is the only source of the trusted issuer (or keys): fail closed.
      if (issuers === undefined) return { exit: invalidToken(c, 'issuer validation unavailable') };
    }
  }
  issuers ??= [doc!.issuer];
  let key: KeyObject | JWTVerifyGetKey;
  if (c.publicKey !== undefined) key = c.publicKey;
  else if (doc?.jwks_uri !== undefined) key = keySet(c.t, doc.jwks_uri, conf.jwk_expires_in * 1000);
  else return { exit: invalidToken(c, 'no jwks_uri in the discovery document') };
  try {
    const { payload } = await jwtVerify(token, key as JWTVerifyGetKey, { issuer: issuers, algorithms: c.algorithms });
    return { claims: payload as Record<string, unknown> };
  } catch (err) {
    return { exit: invalidToken(c, (err as Error).message) };
  }
}

async function introspect(c: Compiled, ctx: RequestContext, token: string): Promise<Checked> {
  const conf = c.conf;
  let endpoint = conf.introspection_endpoint;
  try {
    endpoint ??= (await discover(c.t, conf.discovery)).introspection_endpoint;
  } catch {
    return { exit: invalidToken(c, 'introspection endpoint unavailable') };
  }
  if (endpoint === undefined) return { exit: invalidToken(c, 'no introspection endpoint') };
  const form = new URLSearchParams({ token, token_type_hint: 'access_token' });
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
    ...clientAuth(conf.introspection_endpoint_auth_method, conf.client_id, conf.client_secret, form),
  };
  for (const name of conf.introspection_addon_headers ?? []) {
    const v = ctx.requestHeader(name.toLowerCase());
    if (v !== undefined) headers[name.toLowerCase()] = v;
  }
  try {
    const res = await call(c.t, endpoint, { method: 'POST', headers, body: form.toString() });
    const body = (await res.json()) as Record<string, unknown>;
    if (res.status !== 200) return { exit: invalidToken(c, `introspection answered ${res.status}`) };
    if (body.active !== true) return { exit: invalidToken(c, 'invalid token') };
    return { claims: body };
  } catch (err) {
    return { exit: invalidToken(c, `introspection failed: ${(err as Error).message}`) };
  }
}

function forbidden(error: string): PluginExit {
  return { status: 403, body: JSON.stringify({ error }) };
}

function scopesOf(v: unknown): string[] {
  return typeof v === 'string' ? v.split(' ').filter((s) => s !== '') : [];
}

/** required_scopes and the audience rules, as APISIX applies them to a validated bearer token. */
function authorize(c: Compiled, claims: Record<string, unknown>): PluginExit | undefined {
  const conf = c.conf;
  const required = conf.required_scopes;
  if (required !== undefined) {
    const granted = new Set(scopesOf(claims.scope));
    if (!required.every((s) => granted.has(s))) return forbidden(`required scopes ${required.join(', ')} not present`);
  }
  const aud = conf.claim_validator?.audience;
  if (aud !== undefined) {
    const value = claims[aud.claim];
    if ((aud.required || aud.match_with_client_id) && value === undefined) return forbidden('required audience claim not present');
    if (aud.match_with_client_id && !(Array.isArray(value) ? value.includes(conf.client_id) : value === conf.client_id)) return forbidden('mismatched audience');
  }
  if (c.claims !== undefined) {
    const err = c.claims(claims);
    if (err !== undefined) return invalidToken(c, err);
  }
  return undefined;
}

function setAccessToken(c: Compiled, ctx: RequestContext, token: string | undefined): void {
  if (token === undefined || !c.conf.set_access_token_header) return;
  if (c.conf.access_token_in_authorization_header) ctx.upstreamRequest.headers.set('authorization', `Bearer ${token}`);
  else ctx.upstreamRequest.headers.set('x-access-token', token);
}

/** The bearer path; undefined when the request carries no token and may go on to the session flow. */
async function bearer(c: Compiled, ctx: RequestContext, clientXAccessToken: string | undefined): Promise<PluginExit | 'ok' | undefined> {
  const found = bearerToken(ctx, clientXAccessToken);
  if (found === undefined) {
    if (c.conf.bearer_only) return { status: 401, headers: { 'WWW-Authenticate': c.challenge } };
    return undefined;
  }
  if ('error' in found) return found.error;
  const checked = c.conf.public_key !== undefined || c.conf.use_jwks ? await verifyJwt(c, found.token) : await introspect(c, ctx, found.token);
  if ('exit' in checked) return checked.exit;
  const claims = checked.claims;
  const refused = authorize(c, claims);
  if (refused !== undefined) return refused;
  setAccessToken(c, ctx, found.token);
  if (c.conf.set_userinfo_header) ctx.upstreamRequest.headers.set('x-userinfo', b64json(claims));
  return 'ok';
}

// ---- the browser flow ------------------------------------------------------

function setCookie(c: Compiled, data: SessionData | undefined): Record<string, string> {
  if (data === undefined) return { 'Set-Cookie': `${c.cookieName}=${c.cookieAttrs}; Max-Age=0` };
  return { 'Set-Cookie': `${c.cookieName}=${seal(c.key!, data)}${c.cookieAttrs}` };
}

function redirectPath(c: Compiled, ctx: RequestContext): string {
  if (c.conf.redirect_uri !== undefined) {
    try {
      return new URL(c.conf.redirect_uri, 'http://x').pathname;
    } catch {
      return c.conf.redirect_uri;
    }
  }
  // lua-resty-openidc needs a redirect_uri other than the page itself: APISIX appends this suffix.
  const suffix = '/.apisix/redirect';
  const uri = ctx.path;
  if (uri.endsWith(suffix)) return uri;
  return (uri.endsWith('/') ? uri.slice(0, -1) : uri) + suffix;
}

function absolute(ctx: RequestContext, pathOrUrl: string): string {
  if (/^https?:\/\//i.test(pathOrUrl)) return pathOrUrl;
  const host = ctx.requestHeader('host') ?? ctx.host;
  return `${ctx.var.get('scheme') ?? 'http'}://${host}${pathOrUrl}`;
}

function redirect(location: string, headers: Record<string, string> = {}): PluginExit {
  return { status: 302, headers: { ...headers, Location: location } };
}

const random = (): string => randomBytes(24).toString('base64url');

function startAuthorization(c: Compiled, ctx: RequestContext, doc: Discovery, redirectTo: string): PluginExit {
  const conf = c.conf;
  if (doc.authorization_endpoint === undefined) return { status: 500 };
  const data: SessionData = { exp: Math.floor(Date.now() / 1000) + c.lifetime, state: random(), original_url: ctx.var.get('request_uri') ?? ctx.path };
  const url = new URL(doc.authorization_endpoint);
  const p = url.searchParams;
  p.set('response_type', 'code');
  p.set('client_id', conf.client_id);
  p.set('scope', conf.scope);
  p.set('redirect_uri', redirectTo);
  p.set('state', data.state!);
  if (conf.use_nonce) p.set('nonce', (data.nonce = random()));
  if (conf.use_pkce) {
    data.verifier = random() + random();
    p.set('code_challenge', createHash('sha256').update(data.verifier).digest('base64url'));
    p.set('code_challenge_method', 'S256');
  }
  for (const [k, v] of Object.entries(conf.authorization_params ?? {})) p.set(k, String(v));
  return redirect(url.toString(), setCookie(c, data));
}

async function callback(c: Compiled, ctx: RequestContext, doc: Discovery, session: SessionData | undefined, redirectTo: string): Promise<PluginExit> {
  const conf = c.conf;
  const code = ctx.var.get('arg_code');
  const state = ctx.var.get('arg_state');
  // A callback without a code, or whose state is not the one this browser's session started: nothing to finish.
  if (code === undefined || state === undefined || session?.state === undefined || session.state !== state) return { status: 500 };
  if (doc.token_endpoint === undefined || doc.jwks_uri === undefined) return { status: 500 };
  const form = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectTo });
  if (session.verifier !== undefined) form.set('code_verifier', session.verifier);
  const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...clientAuth(conf.token_endpoint_auth_method, conf.client_id, conf.client_secret, form) };
  let tokens: Record<string, unknown>;
  try {
    const res = await call(c.t, doc.token_endpoint, { method: 'POST', headers, body: form.toString() });
    tokens = (await res.json()) as Record<string, unknown>;
    if (res.status !== 200 || typeof tokens.id_token !== 'string') return { status: 500 };
  } catch {
    return { status: 500 };
  }
  let idToken: JWTPayload;
  try {
    // The ID token must come from the issuer discovery names, for this client.
    ({ payload: idToken } = await jwtVerify(tokens.id_token as string, keySet(c.t, doc.jwks_uri, conf.jwk_expires_in * 1000), {
      issuer: doc.issuer,
      audience: conf.client_id,
      clockTolerance: conf.iat_slack,
    }));
  } catch {
    return { status: 500 };
  }
  if (session.nonce !== undefined && idToken.nonce !== session.nonce) return { status: 500 };
  const accessToken = typeof tokens.access_token === 'string' ? tokens.access_token : undefined;
  let user: Record<string, unknown> | undefined;
  if (doc.userinfo_endpoint !== undefined && accessToken !== undefined) {
    try {
      const res = await call(c.t, doc.userinfo_endpoint, { headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' } });
      if (res.status === 200) user = (await res.json()) as Record<string, unknown>;
      else await res.body?.cancel();
    } catch {
      return { status: 500 };
    }
  }
  const now = Math.floor(Date.now() / 1000);
  const data: SessionData = {
    exp: now + c.lifetime,
    access_token: accessToken,
    refresh_token: typeof tokens.refresh_token === 'string' ? tokens.refresh_token : undefined,
    id_token: idToken as Record<string, unknown>,
    enc_id_token: tokens.id_token as string,
    user,
    access_exp: typeof tokens.expires_in === 'number' ? now + tokens.expires_in : undefined,
    ...(typeof tokens.scope === 'string' ? { scope: tokens.scope } : {}),
  };
  return redirect(session.original_url ?? '/', setCookie(c, data));
}

function logout(c: Compiled, doc: Discovery, session: SessionData | undefined): PluginExit {
  const conf = c.conf;
  const clear = setCookie(c, undefined);
  if (doc.end_session_endpoint !== undefined) {
    const url = new URL(doc.end_session_endpoint);
    if (session?.enc_id_token !== undefined) url.searchParams.set('id_token_hint', session.enc_id_token);
    if (conf.post_logout_redirect_uri !== undefined) url.searchParams.set('post_logout_redirect_uri', conf.post_logout_redirect_uri);
    return redirect(url.toString(), clear);
  }
  if (conf.post_logout_redirect_uri !== undefined) return redirect(conf.post_logout_redirect_uri, clear);
  return { status: 200, body: '<html><body>Logged Out</body></html>\n', headers: { ...clear, 'Content-Type': 'text/html' } };
}

async function browser(c: Compiled, ctx: RequestContext): Promise<PluginExit | void> {
  const conf = c.conf;
  const session = c.key === undefined ? undefined : unseal(c.key, readCookie(ctx.requestHeader('cookie'), c.cookieName) ?? '');
  const isLogout = ctx.var.get('request_uri') === conf.logout_path;
  const path = redirectPath(c, ctx);
  const isCallback = ctx.path === path;
  const authenticated = session?.id_token !== undefined && (session.access_exp === undefined || session.access_exp > Date.now() / 1000);
  if (!isLogout && !isCallback && authenticated) return pass(c, ctx, session!);
  if (!isLogout && !isCallback && conf.unauth_action !== 'auth') return conf.unauth_action === 'pass' ? undefined : { status: 401 };
  let doc: Discovery;
  try {
    doc = await discover(c.t, conf.discovery);
  } catch {
    return { status: isLogout ? 503 : 500 };
  }
  if (isLogout) return logout(c, doc, session);
  const redirectTo = absolute(ctx, conf.redirect_uri ?? path);
  if (isCallback) return callback(c, ctx, doc, session, redirectTo);
  return startAuthorization(c, ctx, doc, redirectTo);
}

/** An authenticated session: the user's tokens to the upstream, as configured. */
function pass(c: Compiled, ctx: RequestContext, s: SessionData): PluginExit | void {
  const conf = c.conf;
  if (conf.required_scopes !== undefined) {
    const granted = new Set(scopesOf(s.scope));
    if (!conf.required_scopes.every((r) => granted.has(r))) return forbidden(`required scopes ${conf.required_scopes.join(', ')} not present`);
  }
  if (c.claims !== undefined) {
    const err = c.claims({ user: s.user, access_token: s.access_token, id_token: s.id_token });
    if (err !== undefined) return invalidToken(c, err);
  }
  const h = ctx.upstreamRequest.headers;
  setAccessToken(c, ctx, s.access_token);
  if (s.id_token !== undefined && conf.set_id_token_header) h.set('x-id-token', b64json(s.id_token));
  if (s.user !== undefined && conf.set_userinfo_header) h.set('x-userinfo', b64json(s.user));
  if (s.refresh_token !== undefined && conf.set_refresh_token_header) h.set('x-refresh-token', s.refresh_token);
  if (s.enc_id_token !== undefined && conf.set_raw_id_token_header) h.set('x-raw-id-token', s.enc_id_token);
}

async function rewrite(c: Compiled, ctx: RequestContext): Promise<PluginExit | void> {
  const h = ctx.upstreamRequest.headers;
  const clientXAccessToken = h.get('x-access-token');
  for (const name of OUTPUTS) h.remove(name);
  if (c.bearer) {
    const verdict = await bearer(c, ctx, clientXAccessToken);
    if (verdict === 'ok') return;
    if (verdict !== undefined) return verdict;
  }
  return browser(c, ctx);
}

export default definePlugin({
  name: 'openid-connect',
  priority: 2599,
  version: '0.2',
  schema,
  encrypt_fields: ['client_secret', 'session.secret'],
  check,
  compile,
  rewrite,
});
