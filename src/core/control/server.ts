/**
 * APISIX's control API (apisix.enable_control, apisix.control; default
 * 127.0.0.1:9090), served by the primary process: what this node runs, for
 * operators and tools, never for clients. The routes and their answers follow
 * apisix/control/v1.lua:
 *
 *   GET /v1/schema                          core and plugin schemas
 *   GET /v1/healthcheck                     every checker's nodes (HTML when the client accepts text/html)
 *   GET /v1/healthcheck/{type}/{id}         one checker: type routes, services or upstreams
 *   GET /v1/routes, /v1/route/{id}          the running objects, schema defaults filled
 *   GET /v1/services, /v1/service/{id}
 *   GET /v1/upstreams, /v1/upstream/{id}
 *   GET /v1/plugin_metadatas, /v1/plugin_metadata/{name}
 *
 * Objects are listed as the store holds them (`key`, `value`, `createdIndex`,
 * `modifiedIndex`), with encrypted fields left encrypted: APISIX shows them
 * decrypted, Portico does not hand secrets to a port without authentication.
 * `POST /v1/gc` (a Lua garbage collection) has no Node counterpart and is not
 * served.
 */
import { fastify, type FastifyInstance, type FastifyReply } from 'fastify';
import { KEY_PREFIX, type ResourceName } from '../model.js';
import type { PluginRegistry } from '../plugin/registry.js';
import type { ConfigStore, StoreItem } from '../store/types.js';
import { listChildren } from '../store/list-children.js';
import { isPlainObject } from '../config/plain-object.js';
import type { CheckerReport } from '../upstream/index.js';
import { applyCoreDefaults, getCoreSchema } from '../../schema/index.js';
import type { SchemaResource } from '../../schema/types.js';
import { renderHealthHtml } from './health-html.js';

export interface ControlOptions {
  store: ConfigStore;
  registry: PluginRegistry;
  /** Every checker of the node, merged over its data-plane processes. */
  health(): Promise<CheckerReport[]>;
}

/** The core schemas APISIX's /v1/schema names under `main`, as far as Portico has them. */
const MAIN_SCHEMAS = ['consumer', 'consumer_group', 'global_rule', 'plugin_config', 'proto', 'route', 'service', 'ssl', 'upstream'];

interface RunningItem {
  key: string;
  value: unknown;
  createdIndex: number;
  modifiedIndex: number;
}

export function createControlServer(opts: ControlOptions): FastifyInstance {
  const { store, registry } = opts;
  const app = fastify({ logger: false, exposeHeadRoutes: false });

  async function running(resource: ResourceName & SchemaResource): Promise<RunningItem[]> {
    return (await listChildren(store, `${KEY_PREFIX}/${resource}/`)).map((i) => asRunning(resource, i));
  }

  app.get('/v1/schema', async () => {
    const main: Record<string, unknown> = {};
    for (const name of MAIN_SCHEMAS) main[name] = getCoreSchema(name);
    const plugins: Record<string, unknown> = {};
    for (const def of registry.list()) {
      plugins[def.name] = {
        priority: def.priority,
        version: def.version ?? '0.1',
        ...(def.type !== undefined ? { type: def.type } : {}),
        schema: registry.schemaFor(def.name, 'route'),
        ...(def.consumer_schema !== undefined ? { consumer_schema: def.consumer_schema } : {}),
        ...(def.metadata_schema !== undefined ? { metadata_schema: def.metadata_schema } : {}),
      };
    }
    return { main, plugins, stream_plugins: {} };
  });

  app.get('/v1/healthcheck', async (request, reply) => {
    const reports = await opts.health();
    return wantsHtml(request.headers.accept) ? html(reply, reports) : reports;
  });

  app.get<{ Params: { type: string; id: string } }>('/v1/healthcheck/:type/:id', async (request, reply) => {
    const { type, id } = request.params;
    if (type !== 'routes' && type !== 'services' && type !== 'upstreams') return reply.code(400).send({ error_msg: `invalid src type ${type}` });
    const key = `${KEY_PREFIX}/${type}/${id}`;
    const item = await store.get(key);
    if (item === undefined) return reply.code(404).send({ error_msg: `${type}[${id}] not found` });
    if (!hasChecks(item.value)) return reply.code(404).send({ error_msg: `no checker for ${type}[${id}]` });
    const report = (await opts.health()).find((r) => r.name === key) ?? { name: key, type: checkType(item.value), nodes: [] };
    return wantsHtml(request.headers.accept) ? html(reply, [report]) : report;
  });
  app.get<{ Params: { type: string } }>('/v1/healthcheck/:type', async (request, reply) =>
    reply.code(404).send({ error_msg: `missing src id for src type ${request.params.type}` }),
  );

  for (const [plural, singular] of [
    ['routes', 'route'],
    ['services', 'service'],
    ['upstreams', 'upstream'],
  ] as const) {
    app.get(`/v1/${plural}`, async () => running(plural));
    app.get<{ Params: { id: string } }>(`/v1/${singular}/:id`, async (request, reply) => {
      const item = await store.get(`${KEY_PREFIX}/${plural}/${request.params.id}`);
      if (item === undefined) return reply.code(404).send({ error_msg: `${singular}[${request.params.id}] not found` });
      return asRunning(plural, item);
    });
  }

  app.get('/v1/plugin_metadatas', async () => {
    const out: unknown[] = [];
    for (const def of registry.list()) {
      const item = await store.get(`${KEY_PREFIX}/plugin_metadata/${def.name}`);
      if (item !== undefined) out.push(metadataValue(def.name, item));
    }
    return out;
  });
  app.get<{ Params: { name: string } }>('/v1/plugin_metadata/:name', async (request, reply) => {
    const { name } = request.params;
    const item = registry.get(name) === undefined ? undefined : await store.get(`${KEY_PREFIX}/plugin_metadata/${name}`);
    if (item === undefined) return reply.code(404).send({ error_msg: `plugin metadata[${name}] not found` });
    return metadataValue(name, item);
  });

  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ error_msg: '404 Route Not Found' }));
  return app;
}

function asRunning(resource: SchemaResource, item: StoreItem): RunningItem {
  // The data plane runs objects with their schema defaults filled in (priority, status, upstream type...), as APISIX's
  // config does after its check: show that, not the bare stored body. A stored object the schema now refuses is shown as stored.
  const value = structuredClone(item.value);
  if (isPlainObject(value)) applyCoreDefaults(resource, value);
  return { key: item.key, value, createdIndex: item.createRevision, modifiedIndex: item.modRevision };
}

function metadataValue(name: string, item: StoreItem): unknown {
  return isPlainObject(item.value) ? { ...item.value, id: name } : item.value;
}

function checksOf(value: unknown): Record<string, unknown> | undefined {
  if (!isPlainObject(value)) return undefined;
  if (isPlainObject(value.checks)) return value.checks;
  if (isPlainObject(value.upstream) && isPlainObject(value.upstream.checks)) return value.upstream.checks;
  return undefined;
}

function hasChecks(value: unknown): boolean {
  return checksOf(value) !== undefined;
}

function checkType(value: unknown): CheckerReport['type'] {
  const checks = checksOf(value);
  for (const kind of ['active', 'passive'] as const) {
    const c = checks?.[kind];
    if (isPlainObject(c) && (c.type === 'http' || c.type === 'https' || c.type === 'tcp')) return c.type;
  }
  return 'http';
}

function wantsHtml(accept: string | undefined): boolean {
  return accept !== undefined && accept.includes('text/html');
}

function html(reply: FastifyReply, reports: readonly CheckerReport[]): FastifyReply {
  return reply.type('text/html').send(renderHealthHtml(reports));
}
