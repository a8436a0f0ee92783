/**
 * The local configuration (conf/config.yaml), shaped like APISIX's config.yaml
 * so operators' habits carry over. Loaded and validated by file.ts.
 */
import type { HttpRouterName } from '../match/router.js';

export interface AdminKey {
  name: string;
  key: string;
  role: 'admin' | 'viewer';
}

/** One HTTPS listener (apisix.ssl.listen[]). */
export interface SslListen {
  ip: string;
  port: number;
  /** HTTP/2 by ALPN (h2, with http/1.1 beside it); apisix.enable_http2 when not set. */
  enable_http2?: boolean;
}

export interface PorticoConfig {
  apisix: {
    /** enable_http2: h2c (HTTP/2 with prior knowledge) beside HTTP/1.1 on this port; off unless set. */
    node_listen: { ip: string; port: number; enable_http2?: boolean };
    /** APISIX 3.9+'s switch: HTTP/2 by ALPN on the HTTPS listeners (a listener's own enable_http2 wins). */
    enable_http2: boolean;
    /** TLS termination with the certificates of the `ssls` objects, picked by SNI (src/core/tls/). */
    ssl: {
      enable: boolean;
      listen: SslListen[];
      /** Space-separated, as nginx's ssl_protocols: a contiguous range of TLSv1 … TLSv1.3. */
      ssl_protocols: string;
      /** OpenSSL cipher list for TLS 1.2 and below (TLS 1.3 suites keep OpenSSL's defaults, as nginx's do). */
      ssl_ciphers: string;
      ssl_session_tickets: boolean;
      /** The SNI assumed for a client that sends none. */
      fallback_sni?: string;
    };
    /** /status and /status/ready; served only when the section is set (as in APISIX). */
    status?: { ip: string; port: number };
    /** The control API (src/core/control/server.ts): what the node runs and its upstreams' health, on loopback by default. */
    enable_control: boolean;
    control: { ip: string; port: number };
    /**
     * Peers (CIDRs) whose X-Forwarded-For chain is kept and appended to (a load
     * balancer in front of Portico). From any other peer the header is
     * overwritten with the socket address, so a client cannot forge the chain.
     */
    trusted_addresses: string[];
    router: {
      /**
       * APISIX's route matcher: `radixtree_host_uri` ranks routes with hosts
       * before host-less ones; `radixtree_uri` and `radixtree_uri_with_parameter`
       * rank by path and priority alone and check hosts per route, the latter
       * with `:name` parameters (see router.ts, routerOptionsFor).
       */
      http: HttpRouterName;
      /** APISIX's SNI matcher; `radixtree_sni` is the only value APISIX (and Portico) accepts. */
      ssl?: 'radixtree_sni';
    };
    /** Route (and plugins see `uri`) without one trailing `/`; the upstream still receives it. */
    delete_uri_tail_slash: boolean;
    /**
     * Route on the path as a servlet container reads it: `;params` stripped from
     * each segment, `/..;/`-style tricks refused with 400. The upstream still
     * receives the path with its parameters.
     */
    normalize_uri_like_servlet: boolean;
    /** Adds `Server: Portico/<version>`; false sends `Server: Portico`. */
    enable_server_tokens: boolean;
    data_encryption: {
      /** Encrypt plugin fields listed in a plugin's `encrypt_fields` (e.g. kafka-proxy sasl.password). */
      enable_encrypt_fields: boolean;
      /** 16 or 32 character keys; the first encrypts, all are tried to decrypt. */
      keyring: string[];
    };
    pubsub: {
      /** Largest WebSocket frame accepted or sent, in bytes. */
      max_frame_size: number;
      /** Close a pub/sub session after this many seconds without a frame (0 = never). */
      idle_timeout: number;
    };
    /** APISIX's proxy-cache zones (conf/config.yaml); the memory strategy serves them. */
    proxy_cache?: ProxyCacheConf;
  };
  nginx_config: {
    /** Data-plane worker processes; `auto` = number of cores, 1 = serve in the main process. */
    worker_processes: number | 'auto';
    /**
     * Portico: V8's young-generation semi-space ceiling for each data-plane worker, in MB
     * (`--max-semi-space-size`); undefined leaves Node's default (16).
     */
    worker_semi_space_mb?: number;
    /** Connections each data-plane process holds at once, per listener (nginx's worker_connections); beyond, new ones are closed. */
    event: { worker_connections: number };
    /** Time a connection has to send a complete request head (nginx time or seconds); then it is closed. */
    http: { client_header_timeout: string | number };
  };
  deployment: {
    /**
     * Where routes and the rest live. APISIX's `role: traditional` with
     * `role_traditional.config_provider: etcd` is read into this (config/role.ts).
     * `yaml`/`json`: APISIX's standalone modes, the whole configuration in one
     * document (a file for a data_plane, PUT /apisix/admin/configs for traditional).
     */
    config_provider: 'embedded' | 'etcd' | 'yaml' | 'json';
    /** APISIX's deployment.role; `data_plane` serves `standalone_file` with the Admin API off. */
    role?: 'traditional' | 'data_plane';
    /** The file a data_plane serves: $PORTICO_STANDALONE_FILE or conf/apisix.yaml (set by the loader). */
    standalone_file?: string;
    admin: {
      enable_admin: boolean;
      admin_key_required: boolean;
      admin_key: AdminKey[];
      /** CIDRs allowed to reach the Admin API (socket address only). */
      allow_admin: string[];
      admin_listen: { ip: string; port: number };
      enable_admin_cors: boolean;
      /** Largest admin request body in bytes (APISIX: 1.5 MiB). */
      max_body_size: number;
    };
    embedded: { data_dir: string };
    etcd: { host: string[]; prefix: string; timeout: number };
  };
  /** Enabled plugin names; order does not matter, priority decides. */
  plugins: string[];
  /** Directories of external plugins (absolute once loaded): every top-level .ts/.mts/.js/.mjs file is a plugin. */
  plugin_dirs: string[];
  plugin_attr: Record<string, Record<string, unknown>>;
}

/** An nginx size: bytes, or `50m`-style with k, m or g. */
export type SizeValue = number | string;

export interface ProxyCacheZone {
  name: string;
  /** The zone's bound in bytes, bodies and headers included. */
  memory_size: SizeValue;
  /** APISIX's disk strategy's keys; Portico has no disk strategy, and says so at start-up. */
  disk_size?: SizeValue;
  disk_path?: string;
  cache_levels?: string;
  /** Portico's: a response larger than this is passed through, never held (default 1m, at most memory_size). */
  max_entry_size?: SizeValue;
}

export interface ProxyCacheConf {
  cache_ttl?: string;
  zones?: ProxyCacheZone[];
}
