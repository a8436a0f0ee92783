/**
 * openid-connect against a real OpenID provider: the `oidc-provider` package,
 * started here on a loopback port with its development login and consent
 * pages, which the test fills in as a browser would. Drives the whole
 * authorization-code flow through the gateway (redirect, login, consent,
 * callback, session cookie, the set_*_header outputs, logout), bearer tokens
 * verified against the provider's JWKS, token introspection, and the issuer
 * check of APISIX's CVE-2025-46647 (a token signed with the provider's own
 * key but naming another issuer is refused).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPair, exportJWK, SignJWT, type JWK } from 'jose';
import Provider from 'oidc-provider';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectRouteConfsRefused, send, startEnv, type Env, type RawResponse } from './helpers.js';
import { freePort } from '../helpers/ports.js';

let env: Env;
let op: Server;
let issuer: string;
let discovery: string;
let signingKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let kid: string;
const CLIENT = { client_id: 'portico', client_secret: 'portico-secret-value' };
const SESSION = { secret: 'a-session-secret-of-32-characters' };

beforeAll(async () => {
  const port = await freePort();
  issuer = `http://127.0.0.1:${port}`;
  discovery = `${issuer}/.well-known/openid-configuration`;
  env = await startEnv();
  const gw = env.gw.dataUrl;
  const pair = await generateKeyPair('RS256', { extractable: true });
  signingKey = pair.privateKey;
  const jwk: JWK = { ...(await exportJWK(pair.privateKey)), kid: 'test-key', use: 'sig', alg: 'RS256' };
  kid = jwk.kid!;
  const provider = new Provider(issuer, {
    clients: [
      {
        ...CLIENT,
        redirect_uris: [`${gw}/app/.apisix/redirect`, `${gw}/pkce/.apisix/redirect`, `${gw}/cb`],
        post_logout_redirect_uris: [`${gw}/bye`],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      },
    ],
    jwks: { keys: [jwk] },
    features: { devInteractions: { enabled: true }, introspection: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    findAccount: (_ctx: unknown, id: string) => ({ accountId: id, claims: () => ({ sub: id, email: `${id}@example.test`, email_verified: true }) }),
    pkce: { required: () => false },
    cookies: { keys: ['cookie-key-for-the-test-provider'] },
  });
  op = createServer(provider.callback());
  await new Promise<void>((resolve) => op.listen(port, '127.0.0.1', resolve));

  const base = { ...CLIENT, discovery, session: SESSION };
  await env.route('app', '/app*', { 'openid-connect': { ...base, redirect_uri: `${gw}/app/.apisix/redirect`, scope: 'openid email', set_refresh_token_header: true, set_raw_id_token_header: true, use_nonce: true } });
  await env.route('pkce', '/pkce*', { 'openid-connect': { ...base, redirect_uri: `${gw}/pkce/.apisix/redirect`, use_pkce: true, access_token_in_authorization_header: true } });
  await env.route('logout', '/logout', { 'openid-connect': { ...base, post_logout_redirect_uri: `${gw}/bye` } });
  // No redirect_uri: APISIX's default, the page's own path plus /.apisix/redirect.
  await env.route('default-cb', '/dflt/*', { 'openid-connect': base });
  await env.route('deny', '/deny', { 'openid-connect': { ...base, unauth_action: 'deny' } });
  await env.route('jwks', '/jwks', { 'openid-connect': { ...CLIENT, discovery, bearer_only: true, use_jwks: true } });
  await env.route('jwks-aud', '/jwks-aud', {
    'openid-connect': { ...CLIENT, discovery, bearer_only: true, use_jwks: true, claim_validator: { audience: { match_with_client_id: true } }, required_scopes: ['openid'] },
  });
  await env.route('introspect', '/introspect', { 'openid-connect': { ...CLIENT, discovery, bearer_only: true, introspection_endpoint: `${issuer}/token/introspection` } });
  const dead = await freePort();
  await env.route('nodisco', '/nodisco', { 'openid-connect': { ...CLIENT, discovery: `http://127.0.0.1:${dead}/.well-known/openid-configuration`, bearer_only: true, use_jwks: true, timeout: 1 } });
});
afterAll(async () => {
  await env?.close();
  op?.closeAllConnections();
  await new Promise<void>((resolve) => (op ? op.close(() => resolve()) : resolve()));
});
beforeEach(() => {
  env.up.seen.length = 0;
});

/** A browser's cookie jar, per origin, enough for the gateway and the provider. */
class Browser {
  private jar = new Map<string, Map<string, string>>();
  private cookieFor(url: URL): string | undefined {
    const c = this.jar.get(url.origin);
    return c === undefined || c.size === 0 ? undefined : [...c].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  private keep(url: URL, res: RawResponse): void {
    const set = res.headers['set-cookie'] ?? [];
    const c = this.jar.get(url.origin) ?? new Map<string, string>();
    for (const line of set) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (value === '' || attrs.some((a) => /max-age=0|expires=thu, 01 jan 1970/i.test(a.trim()))) c.delete(name);
      else c.set(name, value);
    }
    this.jar.set(url.origin, c);
  }
  cookies(origin: string): Map<string, string> {
    return this.jar.get(origin) ?? new Map();
  }
  async get(url: string, form?: Record<string, string>): Promise<RawResponse> {
    const u = new URL(url);
    const headers: Record<string, string> = {};
    const cookie = this.cookieFor(u);
    if (cookie !== undefined) headers.cookie = cookie;
    let body: string | undefined;
    if (form !== undefined) {
      body = new URLSearchParams(form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    }
    const res = await send(url, { method: form === undefined ? 'GET' : 'POST', headers, body });
    this.keep(u, res);
    return res;
  }
  /** Follows redirects, logging in and consenting on the provider's pages, until a non-redirect answer. */
  async visit(url: string, hops: string[] = []): Promise<{ res: RawResponse; url: string; hops: string[] }> {
    let current = url;
    let res = await this.get(current);
    for (let i = 0; i < 20; i++) {
      if (res.status >= 300 && res.status < 400) {
        current = new URL(res.headers.location!, current).toString();
        hops.push(current);
        res = await this.get(current);
        continue;
      }
      const prompt = /name="prompt" value="(\w+)"/.exec(res.body)?.[1];
      if (res.status === 200 && prompt !== undefined && current.startsWith(issuer)) {
        res = await this.get(current, prompt === 'login' ? { prompt, login: 'alice', password: 'x' } : { prompt });
        continue;
      }
      return { res, url: current, hops };
    }
    throw new Error('too many redirects');
  }
}

async function idTokenFromProvider(): Promise<{ idToken: string; accessToken: string }> {
  // The browser flow through the gateway puts the raw ID token and the access token in the upstream's headers.
  const b = new Browser();
  const { res } = await b.visit(`${env.gw.dataUrl}/app/tokens`);
  expect(res.status).toBe(200);
  const seen = env.up.seen.at(-1)!;
  return { idToken: seen.headers['x-raw-id-token'] as string, accessToken: seen.headers['x-access-token'] as string };
}

describe('openid-connect: Admin API', () => {
  it('is listed and refuses confs APISIX refuses, and fields Portico does not apply', async () => {
    const list = await env.gw.admin('GET', '/apisix/admin/plugins/list');
    expect(list.body).toContain('openid-connect');
    await expectRouteConfsRefused(env, 'openid-connect', [
      [{ discovery }, /property "client_id" is required/],
      [{ client_id: 'a', client_secret: 'b' }, /property "discovery" is required/],
      [{ ...CLIENT, discovery }, /property "session.secret" is required when "bearer_only" is false/],
      [{ client_id: 'a', discovery, session: SESSION }, /property "client_secret" is required/],
      [{ ...CLIENT, discovery, session: { secret: 'short' } }, /property "session" validation failed: property "secret" validation failed/],
      [{ ...CLIENT, discovery, bearer_only: true, unauth_action: 'maybe' }, /property "unauth_action" validation failed: matches none of the enum values/],
      [{ ...CLIENT, discovery, bearer_only: true, timeout: 0 }, /property "timeout" validation failed/],
      [{ ...CLIENT, discovery, bearer_only: true, renew_access_token_on_expiry: true }, /property "renew_access_token_on_expiry" is not supported by Portico/],
      [{ ...CLIENT, discovery, bearer_only: true, token_endpoint_auth_method: 'private_key_jwt' }, /"token_endpoint_auth_method" is not supported by Portico/],
      [{ ...CLIENT, discovery, session: { ...SESSION, storage: 'redis', redis: {} } }, /"session.storage" "redis" is not supported/],
      [{ ...CLIENT, discovery, bearer_only: true, public_key: 'not a key' }, /property "public_key" is not a valid public key/],
    ]);
    // client_secret and session.secret are stored encrypted.
    const stored = await env.gw.admin('GET', '/apisix/admin/routes/app', undefined, env.gw.viewerKey);
    expect(stored.body.value.plugins['openid-connect'].client_secret).not.toBe(CLIENT.client_secret);
    expect(stored.body.value.plugins['openid-connect'].session.secret).not.toBe(SESSION.secret);
  });
});

describe('openid-connect: authorization-code flow', () => {
  it('redirects to the provider, logs in, comes back through the callback and reaches the upstream with the user\'s tokens', async () => {
    const b = new Browser();
    const first = await b.get(`${env.gw.dataUrl}/app/page?x=1`);
    expect(first.status).toBe(302);
    const auth = new URL(first.headers.location!);
    expect(`${auth.origin}${auth.pathname}`).toBe(`${issuer}/auth`);
    expect(auth.searchParams.get('client_id')).toBe('portico');
    expect(auth.searchParams.get('response_type')).toBe('code');
    expect(auth.searchParams.get('scope')).toBe('openid email');
    expect(auth.searchParams.get('redirect_uri')).toBe(`${env.gw.dataUrl}/app/.apisix/redirect`);
    expect(auth.searchParams.get('state')).toBeTruthy();
    expect(auth.searchParams.get('nonce')).toBeTruthy();

    const { res, url, hops } = await b.visit(first.headers.location!);
    expect(res.status, JSON.stringify({ url, hops, body: res.body.slice(0, 800) })).toBe(200);
    expect(hops.some((h) => h.startsWith(`${env.gw.dataUrl}/app/.apisix/redirect?code=`))).toBe(true);
    expect(url).toBe(`${env.gw.dataUrl}/app/page?x=1`);
    expect(res.status).toBe(200);
    const seen = env.up.seen.at(-1)!;
    expect(seen.url).toBe('/app/page?x=1');
    const user = JSON.parse(Buffer.from(seen.headers['x-userinfo'] as string, 'base64').toString());
    expect(user).toMatchObject({ sub: 'alice', email: 'alice@example.test' });
    const id = JSON.parse(Buffer.from(seen.headers['x-id-token'] as string, 'base64').toString());
    expect(id).toMatchObject({ sub: 'alice', iss: issuer, aud: 'portico' });
    expect(seen.headers['x-access-token']).toBeTruthy();
    expect((seen.headers['x-raw-id-token'] as string).split('.')).toHaveLength(3);
    expect(seen.headers['x-refresh-token']).toBeUndefined(); // no offline_access asked for

    // The session cookie carries the browser from now on, with no trip to the provider.
    env.up.seen.length = 0;
    const again = await b.get(`${env.gw.dataUrl}/app/other`);
    expect(again.status).toBe(200);
    expect(env.up.seen[0]!.headers['x-userinfo']).toBe(seen.headers['x-userinfo']);
    // A client cannot plant the outputs itself.
    const forged = await send(`${env.gw.dataUrl}/app/other`, { headers: { 'x-userinfo': 'forged', cookie: 'session=forged' } });
    expect(forged.status).toBe(302);
  });

  it('defaults redirect_uri to the page\'s path plus /.apisix/redirect, as APISIX does', async () => {
    const first = await send(`${env.gw.dataUrl}/dflt/page/`);
    expect(first.status).toBe(302);
    expect(new URL(first.headers.location!).searchParams.get('redirect_uri')).toBe(`${env.gw.dataUrl}/dflt/page/.apisix/redirect`);
  });

  it('PKCE: sends an S256 challenge and the access token in Authorization', async () => {
    const b = new Browser();
    const first = await b.get(`${env.gw.dataUrl}/pkce/x`);
    const auth = new URL(first.headers.location!);
    expect(auth.searchParams.get('code_challenge_method')).toBe('S256');
    expect(auth.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const { res } = await b.visit(first.headers.location!);
    expect(res.status).toBe(200);
    expect(env.up.seen.at(-1)!.headers.authorization).toMatch(/^Bearer .+/);
  });

  it('refuses a callback whose state is not the session\'s, and unauth_action deny answers 401', async () => {
    const b = new Browser();
    await b.get(`${env.gw.dataUrl}/app/p`);
    const forged = await b.get(`${env.gw.dataUrl}/app/.apisix/redirect?code=abc&state=not-mine`);
    expect(forged.status).toBe(500);
    const deny = await send(`${env.gw.dataUrl}/deny`);
    expect(deny.status).toBe(401);
    expect(env.up.seen).toHaveLength(0);
  });

  it('logout clears the session and sends the browser to the provider\'s end_session_endpoint', async () => {
    const b = new Browser();
    const { res } = await b.visit(`${env.gw.dataUrl}/app/in`);
    expect(res.status).toBe(200);
    const cookie = b.cookies(env.gw.dataUrl).get('session');
    expect(cookie).toBeTruthy();
    const out = await send(`${env.gw.dataUrl}/logout`, { headers: { cookie: `session=${cookie}` } });
    expect(out.status).toBe(302);
    const loc = new URL(out.headers.location!);
    expect(`${loc.origin}${loc.pathname}`).toBe(`${issuer}/session/end`);
    expect(loc.searchParams.get('post_logout_redirect_uri')).toBe(`${env.gw.dataUrl}/bye`);
    expect(out.headers['set-cookie']?.[0]).toMatch(/^session=;.*Max-Age=0/);
  });
});

describe('openid-connect: bearer tokens', () => {
  it('verifies a JWT against the provider\'s JWKS and passes its claims upstream', async () => {
    const { idToken } = await idTokenFromProvider();
    env.up.seen.length = 0;
    const ok = await send(`${env.gw.dataUrl}/jwks`, { headers: { authorization: `Bearer ${idToken}` } });
    expect(ok.status).toBe(200);
    const claims = JSON.parse(Buffer.from(env.up.seen[0]!.headers['x-userinfo'] as string, 'base64').toString());
    expect(claims).toMatchObject({ iss: issuer, sub: 'alice' });
    expect(env.up.seen[0]!.headers['x-access-token']).toBe(idToken);
    // The client's X-Access-Token doubles as the bearer token, as in APISIX.
    expect((await send(`${env.gw.dataUrl}/jwks`, { headers: { 'x-access-token': idToken } })).status).toBe(200);

    const none = await send(`${env.gw.dataUrl}/jwks`);
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="apisix"');
    const tampered = await send(`${env.gw.dataUrl}/jwks`, { headers: { authorization: `Bearer ${idToken.slice(0, -4)}AAAA` } });
    expect(tampered.status).toBe(401);
    expect(tampered.headers['www-authenticate']).toMatch(/^Bearer realm="apisix", error="invalid_token", error_description=".+"$/);
    const malformed = await send(`${env.gw.dataUrl}/jwks`, { headers: { authorization: 'Bearer' } });
    expect(malformed.status).toBe(400);
  });

  it('refuses a token signed with the provider\'s key that names another issuer (CVE-2025-46647)', async () => {
    const mint = (iss: string) =>
      new SignJWT({ sub: 'mallory', scope: 'openid' })
        .setProtectedHeader({ alg: 'RS256', kid })
        .setIssuer(iss)
        .setAudience('portico')
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(signingKey);
    const foreign = await send(`${env.gw.dataUrl}/jwks`, { headers: { authorization: `Bearer ${await mint('https://evil.example')}` } });
    expect(foreign.status).toBe(401);
    expect(foreign.headers['www-authenticate']).toMatch(/error="invalid_token"/);
    const own = await send(`${env.gw.dataUrl}/jwks`, { headers: { authorization: `Bearer ${await mint(issuer)}` } });
    expect(own.status).toBe(200);
    // Discovery unreachable and no valid_issuers: fail closed.
    const blind = await send(`${env.gw.dataUrl}/nodisco`, { headers: { authorization: `Bearer ${await mint(issuer)}` } });
    expect(blind.status).toBe(401);
    expect(blind.headers['www-authenticate']).toContain('error_description="issuer validation unavailable"');
  });

  it('applies the audience and required_scopes rules with APISIX\'s 403 bodies', async () => {
    const mint = (claims: Record<string, unknown>) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).setIssuer(issuer).setIssuedAt().setExpirationTime('5m').sign(signingKey);
    expect((await send(`${env.gw.dataUrl}/jwks-aud`, { headers: { authorization: `Bearer ${await mint({ aud: 'portico', scope: 'openid email' })}` } })).status).toBe(200);
    const otherAud = await send(`${env.gw.dataUrl}/jwks-aud`, { headers: { authorization: `Bearer ${await mint({ aud: 'other', scope: 'openid' })}` } });
    expect(otherAud.status).toBe(403);
    expect(JSON.parse(otherAud.body)).toEqual({ error: 'mismatched audience' });
    const noAud = await send(`${env.gw.dataUrl}/jwks-aud`, { headers: { authorization: `Bearer ${await mint({ scope: 'openid' })}` } });
    expect(JSON.parse(noAud.body)).toEqual({ error: 'required audience claim not present' });
    const noScope = await send(`${env.gw.dataUrl}/jwks-aud`, { headers: { authorization: `Bearer ${await mint({ aud: 'portico', scope: 'email' })}` } });
    expect(noScope.status).toBe(403);
    expect(JSON.parse(noScope.body)).toEqual({ error: 'required scopes openid not present' });
  });

  it('introspects an opaque access token at the provider', async () => {
    const { accessToken } = await idTokenFromProvider();
    env.up.seen.length = 0;
    const ok = await send(`${env.gw.dataUrl}/introspect`, { headers: { authorization: `Bearer ${accessToken}` } });
    expect(ok.status).toBe(200);
    const info = JSON.parse(Buffer.from(env.up.seen[0]!.headers['x-userinfo'] as string, 'base64').toString());
    expect(info).toMatchObject({ active: true, sub: 'alice', client_id: 'portico' });
    const bad = await send(`${env.gw.dataUrl}/introspect`, { headers: { authorization: 'Bearer not-a-token' } });
    expect(bad.status).toBe(401);
    expect(bad.headers['www-authenticate']).toMatch(/error="invalid_token"/);
  });
});
