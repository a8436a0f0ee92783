/**
 * opentelemetry (APISIX priority 12009, apisix/plugins/opentelemetry.lua):
 * in rewrite, a SERVER span for the request, child of the client's W3C
 * `traceparent` when there is one, sampled by the route's `sampler`
 * (always_on, always_off, trace_id_ratio, parent_base with a root), with
 * APISIX's attributes plus `additional_attributes` (variables) and
 * `additional_header_prefix_attributes` (request headers); its context goes
 * upstream as `traceparent`. The log phase ends it with the status. The
 * collector, resource, trace-id source and batching are plugin_metadata, as
 * in APISIX; without metadata nothing is traced (APISIX warns likewise).
 * Spans leave through the OpenTelemetry SDK's batch span processor and OTLP
 * over HTTP (JSON), so a collector that is down costs the request nothing:
 * the queue is bounded and what does not fit is dropped.
 */
import type { Attributes, Span } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { dataKey, definePlugin, type RequestContext } from '../core/plugin/index.js';
import type { OtelMetadata, Pipeline, SamplerConf } from './opentelemetry/tracing.js';
import type { Sampler } from '@opentelemetry/sdk-trace-base';

/**
 * The SDK is loaded on the first request a route traces, not at start-up:
 * importing it takes longer than the rest of start-up, and a gateway that
 * lists the plugin (the default) but traces nothing should not pay for it.
 */
type Tracing = typeof import('./opentelemetry/tracing.js');
let tracing: Tracing | undefined;
let loading: Promise<Tracing> | undefined;

const fraction = { type: 'number', default: 0 };
export const schema = {
  type: 'object',
  properties: {
    sampler: {
      type: 'object',
      properties: {
        name: { type: 'string', enum: ['always_on', 'always_off', 'trace_id_ratio', 'parent_base'], title: 'sampling strategy', default: 'always_off' },
        options: {
          type: 'object',
          properties: {
            fraction: { ...fraction, title: 'trace_id_ratio fraction' },
            root: {
              type: 'object',
              title: 'parent_base root sampler',
              properties: {
                name: { type: 'string', enum: ['always_on', 'always_off', 'trace_id_ratio'], title: 'sampling strategy', default: 'always_off' },
                options: { type: 'object', properties: { fraction: { ...fraction, title: 'trace_id_ratio fraction parameter' } }, default: { fraction: 0 } },
              },
              default: { name: 'always_off', options: { fraction: 0 } },
            },
          },
          default: { fraction: 0, root: { name: 'always_off' } },
        },
      },
      default: { name: 'always_off', options: { fraction: 0, root: { name: 'always_off' } } },
    },
    additional_attributes: { type: 'array', items: { type: 'string', minLength: 1 } },
    additional_header_prefix_attributes: { type: 'array', items: { type: 'string', minLength: 1 } },
  },
};

const scalar = { anyOf: [{ type: 'boolean' }, { type: 'number' }, { type: 'string' }] };
export const metadata_schema = {
  type: 'object',
  properties: {
    trace_id_source: { type: 'string', enum: ['x-request-id', 'random'], description: 'the source of trace id', default: 'random' },
    resource: { type: 'object', description: 'additional resource', additionalProperties: scalar },
    collector: {
      type: 'object',
      description: 'opentelemetry collector',
      properties: {
        address: { type: 'string', description: 'host:port', default: '127.0.0.1:4318' },
        request_timeout: { type: 'integer', description: 'second uint', default: 3 },
        request_headers: { type: 'object', description: 'http headers', additionalProperties: scalar },
      },
      default: { address: '127.0.0.1:4318', request_timeout: 3 },
    },
    batch_span_processor: {
      type: 'object',
      description: 'batch span processor',
      properties: {
        drop_on_queue_full: { type: 'boolean' },
        max_queue_size: { type: 'integer', minimum: 1 },
        batch_timeout: { type: 'number', minimum: 0 },
        inactive_timeout: { type: 'number', minimum: 0 },
        max_export_batch_size: { type: 'integer', minimum: 1 },
      },
      default: {},
    },
    set_ngx_var: { type: 'boolean', description: 'set nginx variables', default: false },
  },
};

interface OtelConf {
  sampler: SamplerConf;
  additional_attributes?: string[];
  additional_header_prefix_attributes?: string[];
}

interface Compiled {
  readonly conf: OtelConf;
  /** Built from conf.sampler once the SDK is loaded. */
  sampler: Sampler | undefined;
  /** additional_header_prefix_attributes: exact names, lower-case. */
  readonly headers: readonly string[];
}

interface Active {
  readonly span: Span;
}

const ACTIVE = dataKey<Active>('opentelemetry_span');
let pipeline: Pipeline | undefined;
let logger: Logger | undefined;
let warnedNoMetadata = false;

function check(conf: OtelConf & OtelMetadata, type: string): string | undefined {
  if (type === 'metadata') {
    // Portico's variables are computed, not nginx variables a plugin can set.
    if (conf.set_ngx_var === true) return 'set_ngx_var: Portico has no nginx variables to set; leave it false';
    if (conf.batch_span_processor?.drop_on_queue_full === false) {
      return 'batch_span_processor.drop_on_queue_full: false is not supported: the queue is bounded and a span that does not fit is dropped';
    }
    return undefined;
  }
  for (const h of conf.additional_header_prefix_attributes ?? []) {
    if (h.endsWith('*')) return `additional_header_prefix_attributes: prefix patterns ("${h}") are not supported by Portico yet; name each header`;
  }
  return undefined;
}

function compile(conf: OtelConf): Compiled {
  return { conf, sampler: undefined, headers: (conf.additional_header_prefix_attributes ?? []).map((h) => h.toLowerCase()) };
}

/** The pipeline for the current metadata: rebuilt when the metadata object changes, the old one flushed. */
function currentPipeline(t: Tracing, meta: OtelMetadata): Pipeline {
  if (pipeline !== undefined && pipeline.meta === meta) return pipeline;
  const old = pipeline;
  pipeline = new t.Pipeline(meta);
  old?.close().catch((err: unknown) => logger?.warn({ err }, 'opentelemetry: flushing the previous collector failed'));
  return pipeline;
}

function rewrite(c: Compiled, ctx: RequestContext): void | Promise<void> {
  const meta = ctx.pluginMetadata<OtelMetadata>('opentelemetry');
  if (meta === undefined) {
    if (!warnedNoMetadata) {
      warnedNoMetadata = true;
      logger?.warn('plugin_metadata is required for opentelemetry plugin to working properly');
    }
    return;
  }
  if (tracing !== undefined) return trace(tracing, c, ctx, meta as OtelMetadata);
  loading ??= import('./opentelemetry/tracing.js').then((t) => (tracing = t));
  return loading.then((t) => trace(t, c, ctx, meta as OtelMetadata));
}

function trace(t: Tracing, c: Compiled, ctx: RequestContext, meta: OtelMetadata): void {
  const p = currentPipeline(t, meta);
  const sampler = (c.sampler ??= t.samplerFor(c.conf.sampler));
  const v = ctx.var;
  const route = ctx.route;
  const path = route.uri ?? route.uris?.[0];
  const attributes: Attributes = {
    'net.host.name': v.get('host'),
    'http.method': ctx.method,
    'http.scheme': v.get('scheme'),
    'http.target': v.get('request_uri'),
    'http.user_agent': ctx.requestHeader('user-agent'),
    'apisix.route_id': route.id,
    'apisix.route_name': route.name,
    'http.route': path,
  };
  const service = ctx.service;
  if (service !== undefined) {
    attributes['apisix.service_id'] = service.id;
    attributes['apisix.service_name'] = service.name;
  }
  for (const name of c.conf.additional_attributes ?? []) {
    const value = v.get(name);
    if (value !== undefined) attributes[name] = value;
  }
  for (const name of c.headers) {
    const value = ctx.requestHeader(name);
    if (value !== undefined) attributes[name] = value;
  }
  const parent = t.extractParent((name) => ctx.requestHeader(name));
  const traceId = meta.trace_id_source === 'x-request-id' ? t.traceIdFrom(ctx.requestHeader('x-request-id') ?? v.get('request_id')) : undefined;
  const span = t.startServerSpan(p, p.tracer(sampler), path === undefined ? ctx.method : `${ctx.method} ${path}`, attributes, parent, traceId);
  ctx.setData(ACTIVE, { span });
  t.injectInto(span, parent, ctx.upstreamRequest.headers);
}

function log(_c: Compiled, ctx: RequestContext): void {
  const active = ctx.getData(ACTIVE);
  if (active === undefined || tracing === undefined) return;
  tracing.endServerSpan(active.span, ctx.responseStatus);
}

export default definePlugin({
  name: 'opentelemetry',
  priority: 12009,
  version: '0.1',
  schema,
  metadata_schema,
  check,
  compile,
  rewrite,
  log,
  init(init) {
    logger = init.logger;
    // Flush what is queued when the gateway stops.
    return async () => {
      const p = pipeline;
      pipeline = undefined;
      await p?.close();
    };
  },
});
