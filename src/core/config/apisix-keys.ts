/**
 * APISIX's config.yaml key tree (conf/config.yaml.example, apisix/cli/schema.lua
 * and apisix/cli/config.lua), as data. A key found here that Portico does not
 * implement is accepted and named in one start-up warning (apisix-compat.ts);
 * a key found neither here nor in Portico's own schema is a typo and stops
 * start-up.
 *
 * `ANY` marks a leaf or a free-form map (plugin_attr.<plugin>, lua_shared_dict,
 * discovery.<kind>, snippets): nothing beneath it is checked.
 */
export const ANY = true;

export interface KeyTree {
  readonly [key: string]: KeyTree | typeof ANY;
}

const etcd: KeyTree = {
  host: ANY,
  prefix: ANY,
  timeout: ANY,
  watch_timeout: ANY,
  resync_delay: ANY,
  health_check_timeout: ANY,
  startup_retry: ANY,
  user: ANY,
  password: ANY,
  tls: { cert: ANY, key: ANY, verify: ANY, sni: ANY },
};

const listen: KeyTree = { ip: ANY, port: ANY };

const accessLog = {
  enable_access_log: ANY,
  access_log: ANY,
  access_log_format: ANY,
  access_log_format_escape: ANY,
  lua_shared_dict: ANY,
} as const;

export const APISIX_CONFIG_KEYS: KeyTree = {
  apisix: {
    id: ANY,
    node_listen: ANY,
    enable_admin: ANY,
    enable_dev_mode: ANY,
    enable_reuseport: ANY,
    show_upstream_status_in_response_header: ANY,
    enable_ipv6: ANY,
    enable_http2: ANY,
    proxy_protocol: {
      listen_http_port: ANY,
      listen_https_port: ANY,
      enable_tcp_pp: ANY,
      enable_tcp_pp_to_upstream: ANY,
    },
    enable_server_tokens: ANY,
    extra_lua_path: ANY,
    extra_lua_cpath: ANY,
    lua_module_hook: ANY,
    proxy_cache: { cache_ttl: ANY, zones: ANY },
    delete_uri_tail_slash: ANY,
    normalize_uri_like_servlet: ANY,
    match_uri_encoded_slash: ANY,
    max_post_args_readable_size: ANY,
    router: { http: ANY, ssl: ANY },
    proxy_mode: ANY,
    stream_proxy: { tcp: ANY, udp: ANY },
    dns_resolver: ANY,
    dns_resolver_valid: ANY,
    resolver_timeout: ANY,
    enable_resolv_search_opt: ANY,
    ssl: {
      enable: ANY,
      listen: ANY,
      ssl_trusted_certificate: ANY,
      ssl_protocols: ANY,
      ssl_ciphers: ANY,
      ssl_session_tickets: ANY,
      ssl_cert: ANY,
      ssl_cert_key: ANY,
      fallback_sni: ANY,
    },
    enable_control: ANY,
    control: listen,
    status: listen,
    disable_sync_configuration_during_start: ANY,
    worker_startup_time_threshold: ANY,
    data_encryption: { enable_encrypt_fields: ANY, keyring: ANY },
    disable_upstream_healthcheck: ANY,
    trusted_addresses: ANY,
    lru: { secret: { ttl: ANY, count: ANY, neg_ttl: ANY, neg_count: ANY } },
    tracing: ANY,
  },
  nginx_config: {
    user: ANY,
    error_log: ANY,
    error_log_level: ANY,
    worker_processes: ANY,
    enable_cpu_affinity: ANY,
    worker_rlimit_nofile: ANY,
    worker_shutdown_timeout: ANY,
    max_pending_timers: ANY,
    max_running_timers: ANY,
    event: { worker_connections: ANY },
    envs: ANY,
    meta: { lua_shared_dict: ANY },
    stream: { ...accessLog, real_ip_from: ANY, metrics_zone_size: ANY },
    main_configuration_snippet: ANY,
    http_configuration_snippet: ANY,
    http_server_configuration_snippet: ANY,
    http_server_location_configuration_snippet: ANY,
    http_admin_configuration_snippet: ANY,
    http_end_configuration_snippet: ANY,
    stream_configuration_snippet: ANY,
    http: {
      ...accessLog,
      access_log_buffer: ANY,
      keepalive_timeout: ANY,
      client_header_timeout: ANY,
      client_body_timeout: ANY,
      client_max_body_size: ANY,
      send_timeout: ANY,
      underscores_in_headers: ANY,
      real_ip_header: ANY,
      real_ip_recursive: ANY,
      real_ip_from: ANY,
      custom_lua_shared_dict: ANY,
      proxy_ssl_server_name: ANY,
      upstream: { keepalive: ANY, keepalive_requests: ANY, keepalive_timeout: ANY },
      charset: ANY,
      variables_hash_max_size: ANY,
    },
  },
  /** APISIX 2.x placed these at the top level; schema.lua still accepts them. */
  http: { custom_lua_shared_dict: ANY },
  etcd,
  discovery: ANY,
  graphql: { max_size: ANY },
  'ext-plugin': ANY,
  plugins: ANY,
  stream_plugins: ANY,
  wasm: ANY,
  xrpc: ANY,
  plugin_attr: ANY,
  deployment: {
    role: ANY,
    role_traditional: { config_provider: ANY },
    role_data_plane: { config_provider: ANY },
    role_control_plane: { config_provider: ANY },
    admin: {
      admin_key_required: ANY,
      admin_key: ANY,
      enable_admin_cors: ANY,
      enable_admin_ui: ANY,
      allow_admin: ANY,
      admin_listen: listen,
      https_admin: ANY,
      admin_api_mtls: { admin_ssl_cert: ANY, admin_ssl_cert_key: ANY, admin_ssl_ca_cert: ANY },
      admin_api_version: ANY,
    },
    etcd,
  },
};

/**
 * APISIX keys whose meaning is a Portico key at another path: the value is
 * moved there (a file giving both with different values is refused).
 */
export const APISIX_KEY_ALIASES: Readonly<Record<string, string>> = {
  'apisix.enable_admin': 'deployment.admin.enable_admin',
};

function isSet(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === '') return false;
  if (typeof v === 'object') return Object.values(v as Record<string, unknown>).some(isSet);
  return true;
}

/**
 * APISIX keys that ask for a protection Portico does not give: set, they are
 * refused at start-up, since ignoring them would run with less than the file
 * asked for (an Admin API in plain HTTP, an etcd session without its auth).
 */
export const APISIX_REFUSED_WHEN_SET: Readonly<Record<string, { set: (v: unknown) => boolean; why: string }>> = {
  'deployment.admin.https_admin': { set: (v) => v === true, why: 'the Admin API serves plain HTTP only: keep it on loopback (the default) or put a TLS proxy in front' },
  'deployment.admin.admin_api_mtls': { set: isSet, why: 'the Admin API has no TLS, so no mTLS either' },
  'deployment.etcd.user': { set: isSet, why: 'Portico connects to etcd without authentication' },
  'deployment.etcd.password': { set: isSet, why: 'Portico connects to etcd without authentication' },
  // `verify` alone (the example's `verify: true`) asks for nothing; client certificates do.
  'deployment.etcd.tls': {
    set: (v) => typeof v === 'object' && v !== null && (isSet((v as Record<string, unknown>).cert) || isSet((v as Record<string, unknown>).key)),
    why: 'Portico does not present etcd client certificates',
  },
};
