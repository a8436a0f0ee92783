/**
 * The non-resource admin endpoints (apisix/admin/plugins.lua, schema_validate): plugin list and schemas, core
 * schemas, schema-only validation, plugin reload, and HEAD /apisix/admin.
 * They are plain routes on the same instance, so the server's onRequest
 * hook (allow-list, token) covers them like everything else.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { RESOURCES, type ResourceName } from '../core/model.js';
import type { PluginRegistry } from '../core/plugin/registry.js';
import type { InvalidConf } from '../core/plugin/reload.js';
import type { SchemaType } from '../core/plugin/contract.js';
import { getCoreSchema, validateSchemaOnly } from '../schema/index.js';
import { AdminError, adminError } from './errors.js';

export interface PluginRoutesOptions {
  registry: PluginRegistry;
  /** Re-reads the plugin list and code (PUT /plugins/reload); absent means nothing to reload. */
  reloadPlugins?: () => Promise<InvalidConf[]>;
}

type Query = Record<string, string | undefined>;

function subsystemOf(query: Query): 'http' | 'stream' {
  const subsystem = query.subsystem ?? 'http';
  if (subsystem !== 'http' && subsystem !== 'stream') throw adminError(`unsupported subsystem: ${subsystem}`);
  return subsystem;
}

export function registerPluginRoutes(app: FastifyInstance, opts: PluginRoutesOptions): void {
  const { registry } = opts;

  const pluginSchema = (name: string, query: Query): Record<string, unknown> => {
    const subsystem = subsystemOf(query);
    // Portico has no stream (L4) plugins yet, so every plugin is absent from that subsystem.
    if (subsystem === 'stream' || !registry.get(name)) throw adminError(`plugin not found in subsystem ${subsystem}`, 'ADMIN_NOT_FOUND');
    const type: SchemaType = query.schema_type === 'consumer' ? 'consumer' : query.schema_type === 'metadata' ? 'metadata' : 'route';
    const schema = registry.schemaFor(name, type);
    if (!schema) throw adminError('not found schema');
    return schema;
  };

  app.head('/apisix/admin', async (_req, reply) => reply.code(200).send());

  app.get('/apisix/admin/plugins/list', async (req) => {
    const subsystem = (req.query as Query).subsystem ?? 'http';
    if (subsystem !== 'http' && subsystem !== 'stream') throw new AdminError('ADMIN_INVALID', 'invalid subsystem passed');
    return subsystem === 'http' ? registry.list().map((p) => p.name) : [];
  });

  app.get('/apisix/admin/plugins', async (req) => {
    const query = req.query as Query;
    const subsystem = subsystemOf(query);
    if (query.all !== 'true') throw adminError(`plugin not found in subsystem ${subsystem}`, 'ADMIN_NOT_FOUND');
    const out: Record<string, unknown> = {};
    if (subsystem === 'stream') return out;
    for (const p of registry.list()) {
      out[p.name] = {
        version: p.version,
        priority: p.priority,
        schema: registry.schemaFor(p.name, 'route'),
        metadata_schema: p.metadata_schema,
        consumer_schema: p.consumer_schema,
        type: p.type,
        scope: undefined,
      };
    }
    return out;
  });

  app.get<{ Params: { name: string } }>('/apisix/admin/plugins/:name', async (req) => pluginSchema(req.params.name, req.query as Query));
  app.get<{ Params: { name: string } }>('/apisix/admin/schema/plugins/:name', async (req) =>
    pluginSchema(req.params.name, req.query as Query),
  );

  app.get<{ Params: { name: string } }>('/apisix/admin/schema/:name', async (req) => {
    const schema = getCoreSchema(req.params.name);
    if (!schema) throw adminError(`not found schema: ${req.params.name}`);
    return schema;
  });

  app.post<{ Params: { resource: string } }>('/apisix/admin/schema/validate/:resource', async (req, reply) => {
    const resource = req.params.resource;
    if (!(RESOURCES as readonly string[]).includes(resource)) throw adminError(`Unsupported resource type: ${resource}`, 'ADMIN_NOT_FOUND');
    if (req.body === undefined || req.body === null) throw adminError('missing configurations');
    const err = validateSchemaOnly(resource as ResourceName, req.body);
    if (err !== undefined) throw adminError(err);
    return reply.code(200).send();
  });

  // APISIX answers `done` whatever happened. Portico refuses a set that does not load (400, naming the file and
  // the reason; the running set keeps serving), and names the stored confs a changed schema no longer accepts
  // (their routes keep serving as last compiled) in a JSON answer; otherwise it answers as APISIX does.
  app.put('/apisix/admin/plugins/reload', async (_req, reply: FastifyReply) => {
    let invalid: InvalidConf[] = [];
    try {
      invalid = (await opts.reloadPlugins?.()) ?? [];
    } catch (err) {
      throw adminError(`failed to reload plugins: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (invalid.length === 0) return reply.code(200).type('text/plain').send('done');
    return reply.code(200).send({ message: 'done', invalid });
  });
  app.route({
    method: ['GET', 'POST', 'DELETE', 'PATCH'],
    url: '/apisix/admin/plugins/reload',
    handler: async (req) => {
      throw adminError(`please use PUT method to reload the plugins, ${req.method} method is not allowed.`, 'ADMIN_METHOD_NOT_ALLOWED');
    },
  });
}
