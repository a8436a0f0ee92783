/**
 * prometheus (APISIX priority 500): records every request it runs on in the
 * log phase (apisix_http_status, apisix_http_latency, apisix_bandwidth) and
 * serves the process's metrics in Prometheus's text format on its own
 * listener, plugin_attr.prometheus.export_addr (127.0.0.1:9091) at
 * export_uri (/apisix/prometheus/metrics). How each number is measured is in
 * prometheus/metrics.ts; the endpoint and the cluster sum in
 * prometheus/export-server.ts.
 *
 * Enabled as a global rule it sees every request, 404s included; on a route
 * (or service) only that route's. When both have it, the request is counted
 * once, with the route's conf (APISIX's run_policy `prefer_route`).
 *
 * plugin_attr.prometheus.enable_export_server: false makes APISIX serve the
 * metrics on the data plane through its public-api plugin, which Portico
 * does not have: start-up stops and says so rather than hide the metrics.
 */
import type { AddressInfo } from 'node:net';
import { Gauge } from 'prom-client';
import { definePlugin, healthReports, type PluginCleanup, type PluginInitContext, type RequestContext } from '../core/plugin/index.js';
import { DEFAULT_BUCKETS, HttpMetrics } from './prometheus/metrics.js';
import { startExportServer, WORKER_ANSWER_MS, type ExportServer, type MetricsJson } from './prometheus/export-server.js';

export interface PrometheusConf {
  prefer_name?: boolean;
}

export interface PrometheusAttr {
  export_uri: string;
  metric_prefix: string;
  enable_export_server: boolean;
  export_addr: { ip: string; port: number };
  default_buckets: readonly number[];
}

const schema = {
  type: 'object',
  properties: {
    prefer_name: { type: 'boolean', default: false },
  },
};

const PREFIX_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function fail(key: string, message: string): never {
  throw new Error(`plugin_attr.prometheus.${key}: ${message}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** plugin_attr.prometheus with APISIX's defaults (apisix/cli/config.lua); a bad value names its key. */
export function readAttr(attr: Readonly<Record<string, unknown>>): PrometheusAttr {
  const uri = attr.export_uri ?? '/apisix/prometheus/metrics';
  if (typeof uri !== 'string' || !uri.startsWith('/')) fail('export_uri', `must be a path starting with '/', got ${JSON.stringify(uri)}`);
  const prefix = attr.metric_prefix ?? 'apisix_';
  if (typeof prefix !== 'string' || !PREFIX_RE.test(prefix)) fail('metric_prefix', `must match ${PREFIX_RE.source}, got ${JSON.stringify(prefix)}`);
  const enable = attr.enable_export_server ?? true;
  if (typeof enable !== 'boolean') fail('enable_export_server', `must be a boolean, got ${JSON.stringify(enable)}`);
  const addr = attr.export_addr ?? {};
  if (!isObject(addr)) fail('export_addr', 'must be an object with ip and port');
  const ip = addr.ip ?? '127.0.0.1';
  if (typeof ip !== 'string' || ip === '') fail('export_addr.ip', `must be an IP address, got ${JSON.stringify(ip)}`);
  const port = addr.port ?? 9091;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) fail('export_addr.port', `must be an integer 0-65535, got ${JSON.stringify(port)}`);
  const buckets = attr.default_buckets ?? DEFAULT_BUCKETS;
  if (!Array.isArray(buckets) || buckets.length === 0 || !buckets.every((b) => typeof b === 'number' && Number.isFinite(b))) {
    fail('default_buckets', 'must be a non-empty array of numbers');
  }
  return { export_uri: uri, metric_prefix: prefix, enable_export_server: enable, export_addr: { ip, port }, default_buckets: buckets as number[] };
}


/** One set of metrics per process, shared by every gateway started in it (tests start several). */
let metrics: HttpMetrics | undefined;
let users = 0;
let lastExport: ExportServer | undefined;

/** Where the last export server started in this process listens (tests, embedders; port 0 resolves here). */
export function exportServerAddress(): AddressInfo | undefined {
  return lastExport?.address;
}

async function init(ctx: PluginInitContext): Promise<PluginCleanup> {
  const attr = readAttr(ctx.attr);
  if (!attr.enable_export_server) {
    fail(
      'enable_export_server',
      "false serves the metrics on the data plane through APISIX's public-api plugin, which Portico does not have; " +
        'set it to true and use export_addr (or remove prometheus from plugins)',
    );
  }
  const ignored = ['metrics', 'llm_latency_buckets'].filter((k) => ctx.attr[k] !== undefined);
  if (ignored.length > 0 && ctx.process === 'main') {
    ctx.logger.warn(`plugin_attr.prometheus: ${ignored.join(', ')} (extra labels, expiry) not supported by Portico, ignored`);
  }
  metrics ??= new HttpMetrics({ prefix: attr.metric_prefix, buckets: attr.default_buckets, version: ctx.version, health: healthReports });
  const own = metrics;
  users++;
  let server: ExportServer | undefined;
  // Each worker's registry, answered to (in a worker) or collected by (in main) the export server.
  const registries = ctx.shared.gathered<MetricsJson>('metrics', () => own.registry.getMetricsAsJSON(), WORKER_ANSWER_MS);
  const reachable = ctx.configStoreReachable;
  const etcdGauge = `${attr.metric_prefix}etcd_reachable`;
  if (ctx.process === 'main' && reachable !== undefined && own.registry.getSingleMetric(etcdGauge) === undefined) {
    // APISIX's gauge: asked at each scrape, in the process that holds the store.
    new Gauge({
      name: etcdGauge,
      help: 'Config server etcd reachable from APISIX, 0 is unreachable',
      registers: [own.registry],
      async collect() {
        this.set((await reachable()) ? 1 : 0);
      },
    });
  }
  if (ctx.process === 'main') {
    const { ip, port } = attr.export_addr;
    const gather = ctx.dataPlaneInWorkers ? () => registries.collect() : undefined;
    try {
      server = await startExportServer({ ip, port, uri: attr.export_uri, registry: own.registry, gather, logger: ctx.logger });
      lastExport = server;
      const a = server.address;
      ctx.logger.info({ address: a.address, port: a.port, uri: attr.export_uri }, 'prometheus export server listening');
    } catch (err) {
      // Metrics are a side door: losing them must not take the data plane down.
      ctx.logger.error({ err }, `prometheus: cannot listen on ${ip}:${port} (plugin_attr.prometheus.export_addr); metrics are not exported`);
    }
  }
  return async () => {
    registries.close();
    own.registry.removeSingleMetric(etcdGauge);
    if (server !== undefined) {
      if (lastExport === server) lastExport = undefined;
      await server.close();
    }
    if (--users === 0 && metrics === own) {
      own.close();
      metrics = undefined;
    }
  };
}

export default definePlugin({
  name: 'prometheus',
  version: '0.2',
  priority: 500,
  schema,
  init,
  before_proxy(_conf: PrometheusConf, ctx: RequestContext): void {
    HttpMetrics.markUpstream(ctx);
  },
  log(conf: PrometheusConf, ctx: RequestContext): void {
    metrics?.record(conf, ctx);
  },
});
