/**
 * The Admin API server (APISIX v3 compatible). Every request passes one
 * onRequest hook, registered before any route so that routes added later sit
 * behind it too: socket-address allow-list (403), CORS, then the admin token
 * (401). Bodies are JSON whatever their Content-Type, within max_body_size.
 * The caller listens (deployment.admin.admin_listen).
 */
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { PorticoConfig } from '../core/config/types.js';
import type { InvalidConf } from '../core/plugin/reload.js';
import type { PluginRegistry } from '../core/plugin/registry.js';
import type { ConfigStore } from '../core/store/types.js';
import { compileAllowList } from './allow-list.js';
import { compileAuth, type AdminRole } from './auth.js';
import { installBodyParser } from './body.js';
import { AdminError, adminError, sendAdminError, toAdminError } from './errors.js';
import { registerPluginRoutes } from './plugin-routes.js';
import { withStoreDeadline } from '../core/store/deadline.js';
import { createResourceHandler } from './resource-handler.js';
import type { AdminMethod } from './resources.js';
import { createCodec } from './stored-value.js';
import { CONFIGS_PATH, RawBody, registerConfigRoutes } from './configs.js';
import type { StandaloneStore } from '../core/store/standalone.js';
import { serverHeader as serverHeaderOf } from '../core/config/version.js';
import { loggerOptions, REDACT_PATHS, REDACTED, requestLogValue } from '../core/log/logger.js';

export interface AdminServerOptions {
  config: PorticoConfig;
  store: ConfigStore;
  registry: PluginRegistry;
  logger?: FastifyBaseLogger | boolean;
  /** PUT /apisix/admin/plugins/reload: resolves to the stored plugin confs the reloaded set refuses; rejects when it does not load. */
  reloadPlugins?: () => Promise<InvalidConf[]>;
  /**
   * API-driven standalone mode: the in-memory store PUT /configs replaces. The
   * Admin API then serves /configs only, as APISIX's does in this mode.
   */
  standalone?: StandaloneStore;
}

export interface AdminRoute {
  method: string;
  url: string;
}

const PREFIX = '/apisix/admin';
const CORS_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-allow-credentials': 'true',
  'access-control-expose-headers': '*',
  'access-control-max-age': '3600',
} as const;
const PREFLIGHT_HEADERS = {
  'access-control-allow-methods': 'POST, GET, PUT, OPTIONS, DELETE, PATCH',
  'access-control-allow-headers': '*',
  'content-type': 'text/plain',
  'content-length': '0',
} as const;

const registeredRoutes = new WeakMap<FastifyInstance, AdminRoute[]>();
const roles = new WeakMap<IncomingMessage, AdminRole>();

/** Every route registered on an admin server, for audits (and the route-enumeration test). */
export function adminRoutes(app: FastifyInstance): readonly AdminRoute[] {
  return registeredRoutes.get(app) ?? [];
}

function splitUrl(url: string): { path: string; query: string } {
  const q = url.indexOf('?');
  return q < 0 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q + 1) };
}

function segmentsOf(path: string): string[] {
  return path
    .slice(PREFIX.length + 1)
    .split('/')
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        throw adminError('invalid request path');
      }
    });
}

export async function createAdminServer(opts: AdminServerOptions): Promise<FastifyInstance> {
  const { config, store, registry } = opts;
  const admin = config.deployment.admin;
  const logger = opts.logger ?? false;
  // The access log's URL carries `?api_key=`: mask query values whoever built the logger (src/core/log/logger.ts).
  const app = (
    typeof logger === 'boolean'
      ? Fastify({ logger: logger && loggerOptions('info'), exposeHeadRoutes: false })
      : Fastify({ loggerInstance: logger.child({}, { serializers: { req: requestLogValue }, redact: { paths: [...REDACT_PATHS], censor: REDACTED } }), exposeHeadRoutes: false })
  ) as unknown as FastifyInstance;

  const routes: AdminRoute[] = [];
  registeredRoutes.set(app, routes);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url });
  });

  const allowed = compileAllowList(admin.allow_admin);
  const authenticate = compileAuth(admin.admin_key_required, admin.admin_key);
  const serverHeader = serverHeaderOf(config);
  const cors = admin.enable_admin_cors;
  if (!admin.admin_key_required) app.log.warn('Admin key is bypassed!');
  else if (!admin.admin_key.some((k) => k.key)) app.log.warn('no admin key is configured: every Admin API request will be refused');
  if (admin.allow_admin.length === 0) app.log.warn('deployment.admin.allow_admin is empty: the Admin API accepts any client address');

  app.addHook('onRequest', (req, reply, done) => {
    reply.header('server', serverHeader);
    // The socket's peer only: forwarding headers are written by the client and prove nothing.
    if (!allowed(req.raw.socket.remoteAddress)) {
      sendAdminError(reply, adminError('access to the Admin API is not allowed from this address', 'ADMIN_FORBIDDEN'));
      return;
    }
    if (cors) reply.headers(CORS_HEADERS);
    const { path, query } = splitUrl(req.url);
    if (cors && req.method === 'OPTIONS') {
      reply.code(200).headers(PREFLIGHT_HEADERS).send('');
      return;
    }
    if (req.method === 'HEAD' && path === PREFIX) {
      done();
      return;
    }
    const auth = authenticate({ method: req.method, query, headers: req.headers });
    if (!auth.ok) {
      sendAdminError(reply, new AdminError('ADMIN_UNAUTHORIZED', { error_msg: 'failed to check token', description: auth.reason }));
      return;
    }
    roles.set(req.raw, auth.role);
    reply.header('x-api-version', 'v3');
    done();
  });

  installBodyParser(app, admin.max_body_size, { accepts: (url) => url.startsWith(CONFIGS_PATH), wrap: (text) => new RawBody(text) });
  // APISIX ends every JSON body with a newline (cjson + "\n"); scripts diff against that.
  app.setReplySerializer((payload) => JSON.stringify(payload) + '\n');

  app.setErrorHandler((err: FastifyError | Error, req, reply) => {
    const { error, fault } = toAdminError(err);
    if (fault) req.log.error({ err }, error.code === 'ADMIN_STORE_UNAVAILABLE' ? 'config store unavailable' : 'admin request failed');
    return sendAdminError(reply, error);
  });
  app.setNotFoundHandler((_req, reply) => sendAdminError(reply, adminError('not found', 'ADMIN_NOT_FOUND')));

  registerConfigRoutes(app, { registry, standalone: opts.standalone });
  if (opts.standalone) {
    app.head(PREFIX, async (_req, reply) => reply.code(200).send());
    await app.ready();
    return app;
  }
  registerPluginRoutes(app, { registry, reloadPlugins: opts.reloadPlugins });

  const storeTimeoutMs = config.deployment.etcd.timeout * 1000;
  const handle = createResourceHandler({ store, registry, codec: createCodec(config, registry) });
  app.route({
    method: ['GET', 'PUT', 'POST', 'PATCH', 'DELETE'],
    url: `${PREFIX}/*`,
    handler: async (req, reply) => {
      const { path, query } = splitUrl(req.url);
      // Every store call this request makes shares one deadline: the answer comes within deployment.etcd.timeout.
      const res = await withStoreDeadline(Date.now() + storeTimeoutMs, () =>
        handle({
          method: req.method as AdminMethod,
          segments: segmentsOf(path),
          query: new URLSearchParams(query),
          body: req.body,
          role: roles.get(req.raw) ?? 'viewer',
        }),
      );
      return reply.code(res.status).send(res.body);
    },
  });

  await app.ready();
  return app;
}
