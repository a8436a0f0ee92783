/**
 * openid-connect's conf: APISIX's schema (apisix/plugins/openid-connect.lua)
 * for the fields Portico applies. The other fields APISIX knows (PAR, DPoP,
 * proxy_opts, private_key_jwt, Redis session storage, token renewal and the
 * cache tuning knobs) are refused by name rather than accepted and ignored.
 */
export const schema = {
  type: 'object',
  properties: {
    client_id: { type: 'string' },
    client_secret: { type: 'string' },
    discovery: { type: 'string' },
    scope: { type: 'string', default: 'openid' },
    ssl_verify: { type: 'boolean', default: true },
    timeout: { type: 'integer', minimum: 1, default: 3 },
    introspection_endpoint: { type: 'string' },
    introspection_endpoint_auth_method: { type: 'string', default: 'client_secret_basic' },
    token_endpoint_auth_method: { type: 'string', default: 'client_secret_basic' },
    bearer_only: { type: 'boolean', default: false },
    session: {
      type: 'object',
      properties: {
        secret: { type: 'string', minLength: 16 },
        cookie_name: { type: 'string' },
        cookie_path: { type: 'string' },
        cookie_domain: { type: 'string' },
        cookie_secure: { type: 'boolean' },
        cookie_http_only: { type: 'boolean' },
        cookie_same_site: { type: 'string', enum: ['Strict', 'Lax', 'None', 'Default'] },
        idling_timeout: { type: 'integer' },
        rolling_timeout: { type: 'integer' },
        absolute_timeout: { type: 'integer' },
        cookie: { type: 'object', properties: { lifetime: { type: 'integer' } } },
        storage: { type: 'string', enum: ['cookie', 'redis'], default: 'cookie' },
        redis: { type: 'object' },
      },
      required: ['secret'],
      if: { properties: { storage: { enum: ['redis'] } } },
      then: { required: ['redis'] },
      additionalProperties: false,
    },
    realm: { type: 'string', default: 'apisix' },
    claim_validator: {
      type: 'object',
      properties: {
        issuer: { type: 'object', properties: { valid_issuers: { type: 'array', items: { type: 'string' } } } },
        audience: {
          type: 'object',
          properties: {
            claim: { type: 'string', default: 'aud' },
            required: { type: 'boolean', default: false },
            match_with_client_id: { type: 'boolean', default: false },
          },
        },
      },
    },
    logout_path: { type: 'string', default: '/logout' },
    redirect_uri: { type: 'string' },
    post_logout_redirect_uri: { type: 'string' },
    unauth_action: { type: 'string', default: 'auth', enum: ['auth', 'deny', 'pass'] },
    public_key: { type: 'string' },
    use_jwks: { type: 'boolean', default: false },
    token_signing_alg_values_expected: { type: 'string' },
    use_pkce: { type: 'boolean', default: false },
    set_access_token_header: { type: 'boolean', default: true },
    access_token_in_authorization_header: { type: 'boolean', default: false },
    set_id_token_header: { type: 'boolean', default: true },
    set_raw_id_token_header: { type: 'boolean', default: false },
    set_userinfo_header: { type: 'boolean', default: true },
    set_refresh_token_header: { type: 'boolean', default: false },
    authorization_params: { type: 'object' },
    iat_slack: { type: 'integer', default: 120 },
    use_nonce: { type: 'boolean', default: false },
    jwk_expires_in: { type: 'integer', default: 86400 },
    introspection_addon_headers: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^:]+$' } },
    required_scopes: { type: 'array', items: { type: 'string' } },
    claim_schema: { type: 'object' },
  },
  required: ['client_id', 'discovery'],
};

export interface OidcConf {
  client_id: string;
  client_secret?: string;
  discovery: string;
  scope: string;
  ssl_verify: boolean;
  timeout: number;
  introspection_endpoint?: string;
  introspection_endpoint_auth_method: string;
  token_endpoint_auth_method: string;
  bearer_only: boolean;
  session?: {
    secret: string;
    cookie_name?: string;
    cookie_path?: string;
    cookie_domain?: string;
    cookie_secure?: boolean;
    cookie_http_only?: boolean;
    cookie_same_site?: 'Strict' | 'Lax' | 'None' | 'Default';
    idling_timeout?: number;
    rolling_timeout?: number;
    absolute_timeout?: number;
    cookie?: { lifetime?: number };
    storage: 'cookie' | 'redis';
    redis?: Record<string, unknown>;
  };
  realm: string;
  claim_validator?: {
    issuer?: { valid_issuers?: string[] };
    audience?: { claim: string; required: boolean; match_with_client_id: boolean };
  };
  logout_path: string;
  redirect_uri?: string;
  post_logout_redirect_uri?: string;
  unauth_action: 'auth' | 'deny' | 'pass';
  public_key?: string;
  use_jwks: boolean;
  token_signing_alg_values_expected?: string;
  use_pkce: boolean;
  set_access_token_header: boolean;
  access_token_in_authorization_header: boolean;
  set_id_token_header: boolean;
  set_raw_id_token_header: boolean;
  set_userinfo_header: boolean;
  set_refresh_token_header: boolean;
  authorization_params?: Record<string, unknown>;
  iat_slack: number;
  use_nonce: boolean;
  jwk_expires_in: number;
  introspection_addon_headers?: string[];
  required_scopes?: string[];
  claim_schema?: Record<string, unknown>;
}

/** Client authentication methods Portico speaks at the token and introspection endpoints. */
const AUTH_METHODS = ['client_secret_basic', 'client_secret_post'];

/** APISIX's checks beyond the schema, and the refusals of what Portico does not apply. */
export function checkConf(conf: OidcConf & Record<string, unknown>): string | undefined {
  for (const key of Object.keys(conf)) {
    if (!(key in schema.properties)) return `property "${key}" is not supported by Portico's openid-connect`;
  }
  if (!conf.bearer_only && conf.session === undefined) return 'property "session.secret" is required when "bearer_only" is false';
  const secretOptional = conf.bearer_only ? conf.public_key !== undefined || conf.use_jwks : conf.use_pkce;
  if (!secretOptional && conf.client_secret === undefined) return 'property "client_secret" is required';
  for (const field of ['introspection_endpoint_auth_method', 'token_endpoint_auth_method'] as const) {
    if (!AUTH_METHODS.includes(conf[field])) return `property "${field}" is not supported by Portico: use one of ${AUTH_METHODS.join(', ')}`;
  }
  const s = conf.session;
  if (s !== undefined) {
    if (s.storage === 'redis') return 'property "session.storage" "redis" is not supported by Portico: sessions live in the cookie';
    for (const f of ['idling_timeout', 'rolling_timeout'] as const) {
      if (s[f] !== undefined) return `property "session.${f}" is not supported by Portico: use session.absolute_timeout`;
    }
  }
  for (const [field, value] of [['discovery', conf.discovery], ['introspection_endpoint', conf.introspection_endpoint]] as const) {
    if (value === undefined) continue;
    try {
      const u = new URL(value);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return `property "${field}" must be an http or https URL`;
    } catch {
      return `property "${field}" must be an http or https URL`;
    }
  }
  return undefined;
}
