/**
 * prometheus's metrics: APISIX's names, labels and buckets
 * (apisix/plugins/prometheus/exporter.lua), recorded per request in the log
 * phase and read by the export server.
 *
 * Where the numbers come from:
 * - Request start, request bytes and response bytes: the request context's
 *   `measures` (src/core/http/measures.ts, turned on with `measureRequests()`):
 *   egress is nginx's `$bytes_sent` (status line, headers, framing and body),
 *   ingress `$request_length` (request line, headers and body). An upgraded
 *   (WebSocket) request is never measured, so it records no latency or bytes.
 * - Upstream latency: from this plugin's before_proxy (just before the
 *   request is sent) to the log phase, i.e. until the last byte reached the
 *   client, as nginx's `$upstream_response_time` runs to the upstream's last
 *   byte; Portico streams the body, so the two end together.
 * - Connections and requests: `net.server.socket` (accepted) and socket
 *   `close` (active), and the request-start channel, for every server in the
 *   process: nginx's counters also count the Admin API and export listeners.
 *
 * Per request the log phase does one Map lookup for the label set (route,
 * matched uri/host, service, consumer, node) and then only calls pre-resolved
 * prom-client children; a new label set builds its children once.
 */
import dc from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { hostname } from 'node:os';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { dataKey, measureRequests, type CheckerReport, type RequestContext, type RouteConf } from '../../core/plugin/index.js';
import { registerBatchMetrics } from '../lib/batch-metrics.js';

/** APISIX's DEFAULT_BUCKETS, in milliseconds. */
export const DEFAULT_BUCKETS: readonly number[] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000];

/** `performance.now()` when before_proxy ran: the upstream attempt started. */
const UPSTREAM_START = dataKey<number>('prometheus-upstream-start');
/** Set once the request was recorded: a global rule and its route may both run the log phase. */
const LOGGED = dataKey<boolean>('prometheus-logged');

interface CounterChild {
  inc(value?: number): void;
}
interface HistogramChild {
  observe(value: number): void;
}

/** The children one label set (route, matched uri/host, service, consumer, node) records into. */
interface Series {
  readonly labels: readonly string[];
  readonly status: Map<number, CounterChild>;
  readonly request: HistogramChild;
  readonly upstream: HistogramChild;
  readonly apisix: HistogramChild;
  readonly ingress: CounterChild;
  readonly egress: CounterChild;
}

/** Process-wide connection and request counts (nginx's stub_status counters). */
class ServerStats {
  requests = 0;
  accepted = 0;
  active = 0;
  private readonly onStart = (): void => {
    this.requests++;
  };
  private readonly onSocket = (msg: unknown): void => {
    const socket = (msg as { socket: Socket }).socket;
    this.accepted++;
    this.active++;
    socket.on('close', this.onClose);
  };
  private readonly onClose = (): void => {
    this.active--;
  };

  private releaseMeasures: (() => void) | undefined;

  subscribe(): void {
    this.releaseMeasures = measureRequests();
    dc.subscribe('http.server.request.start', this.onStart);
    dc.subscribe('net.server.socket', this.onSocket);
  }

  unsubscribe(): void {
    this.releaseMeasures?.();
    this.releaseMeasures = undefined;
    dc.unsubscribe('http.server.request.start', this.onStart);
    dc.unsubscribe('net.server.socket', this.onSocket);
  }
}

export interface MetricsOptions {
  prefix: string;
  buckets: readonly number[];
  version: string;
  /** This process's health checkers, read at each scrape. */
  health: () => readonly CheckerReport[];
}

interface PrometheusConfView {
  prefer_name?: boolean;
  _meta?: { disable?: boolean };
}

const SEP = '\u0000';

export class HttpMetrics {
  readonly registry = new Registry();
  private readonly stats = new ServerStats();
  private readonly status: Counter;
  private readonly latency: Histogram;
  private readonly bandwidth: Counter;
  private readonly errors: Counter;
  private readonly series = new Map<string, Series>();

  constructor(opts: MetricsOptions) {
    const p = opts.prefix;
    const registers = [this.registry];
    const stats = this.stats;
    new Gauge({
      name: `${p}nginx_http_current_connections`,
      help: 'Number of HTTP connections',
      labelNames: ['state'],
      registers,
      collect() {
        this.set({ state: 'active' }, stats.active);
        this.set({ state: 'accepted' }, stats.accepted);
        this.set({ state: 'handled' }, stats.accepted);
      },
    });
    new Gauge({
      name: `${p}http_requests_total`,
      help: 'The total number of client requests since APISIX started',
      registers,
      collect() {
        this.set(stats.requests);
      },
    });
    // APISIX's upstream health gauge: 1 healthy, 0 not, per checked node. Every worker runs its own checkers;
    // across them the lowest wins, so a node any worker has marked down reads 0.
    new Gauge({
      name: `${p}upstream_status`,
      help: 'Upstream status from health check',
      labelNames: ['name', 'ip', 'port'],
      registers,
      aggregator: 'min',
      collect() {
        this.reset();
        for (const r of opts.health()) for (const n of r.nodes) this.set({ name: r.name, ip: n.ip, port: String(n.port) }, n.status === 'healthy' ? 1 : 0);
      },
    });
    // Every process reports the same node: the cluster sum keeps one, not N.
    new Gauge({ name: `${p}node_info`, help: 'Info of APISIX node', labelNames: ['hostname', 'version'], registers, aggregator: 'first' }).set(
      { hostname: hostname(), version: opts.version },
      1,
    );
    this.status = new Counter({
      name: `${p}http_status`,
      help: 'HTTP status codes per service in APISIX',
      labelNames: ['code', 'route', 'matched_uri', 'matched_host', 'service', 'consumer', 'node'],
      registers,
    });
    this.latency = new Histogram({
      name: `${p}http_latency`,
      help: 'HTTP request latency in milliseconds per service in APISIX',
      labelNames: ['type', 'route', 'service', 'consumer', 'node'],
      buckets: [...opts.buckets],
      registers,
    });
    // Present from start at 0, as APISIX's: a failure while recording a request counts here, not in the request.
    this.errors = new Counter({ name: `${p}nginx_metric_errors_total`, help: 'Number of nginx-lua-prometheus errors', registers });
    this.errors.inc(0);
    // The loggers' backlog and discards (src/plugins/lib/batch-metrics.ts), summed over workers like the rest.
    registerBatchMetrics(this.registry, p);
    this.bandwidth = new Counter({
      name: `${p}bandwidth`,
      help: 'Total bandwidth in bytes consumed per service in APISIX',
      labelNames: ['type', 'route', 'service', 'consumer', 'node'],
      registers,
    });
  }

  /**
   * The http/net diagnostics channels are subscribed on the first request a
   * prometheus-enabled route or global rule records, not at start-up: a
   * subscriber makes Node publish on every request and connection, so a
   * gateway that lists the plugin (the default) but uses it nowhere would pay
   * for it on every request.
   */
  private subscribed = false;

  close(): void {
    if (this.subscribed) this.stats.unsubscribe();
    this.subscribed = false;
    this.series.clear();
    this.registry.clear();
  }

  /** before_proxy: the upstream attempt starts now. */
  static markUpstream(ctx: RequestContext): void {
    ctx.setData(UPSTREAM_START, performance.now());
  }

  /** The log phase. A request is recorded once, even when a global rule and its route both enable the plugin. */
  record(conf: PrometheusConfView, ctx: RequestContext): void {
    if (ctx.getData(LOGGED) === true) return;
    ctx.setData(LOGGED, true);
    try {
      this.recordOnce(conf, ctx);
    } catch {
      this.errors.inc();
    }
  }

  private recordOnce(conf: PrometheusConfView, ctx: RequestContext): void {
    if (!this.subscribed) {
      this.subscribed = true;
      this.stats.subscribe();
    }

    const route = ctx.route;
    // APISIX's run_policy prefer_route: the route's conf decides when both have the plugin.
    const own = route.plugins?.prometheus as PrometheusConfView | undefined;
    const preferName = own !== undefined && own._meta?.disable !== true ? own.prefer_name === true : conf.prefer_name === true;
    const series = this.seriesFor(ctx, route, preferName);

    const code = ctx.responseStatus;
    let status = series.status.get(code);
    if (status === undefined) {
      status = this.status.labels(String(code), ...series.labels);
      series.status.set(code, status);
    }
    status.inc();

    // A request that started before measuring was on has no marks to count from.
    const measures = ctx.measures;
    if (measures !== undefined) {
      const now = performance.now();
      const latency = now - measures.startedAt;
      series.request.observe(latency);
      const upstreamStart = ctx.getData(UPSTREAM_START);
      if (upstreamStart !== undefined) {
        const upstream = now - upstreamStart;
        series.upstream.observe(upstream);
        series.apisix.observe(latency > upstream ? latency - upstream : 0);
      } else series.apisix.observe(latency);
      series.ingress.inc(measures.bytesRead);
      series.egress.inc(measures.bytesWritten);
    }
  }

  private seriesFor(ctx: RequestContext, route: RouteConf & { id: string }, preferName: boolean): Series {
    let routeLabel = '';
    let matchedUri = '';
    let matchedHost = '';
    let service = '';
    if (route.id !== '') {
      routeLabel = preferName ? (route.name ?? route.id) : String(route.id);
      matchedUri = route.uri ?? matchUri(route.uris, ctx.path);
      matchedHost = route.host ?? matchHost(route.hosts, ctx.host);
      const serviceId = ctx.service?.id ?? route.service_id;
      if (serviceId !== undefined) service = preferName ? (ctx.service?.name ?? String(serviceId)) : String(serviceId);
    }
    const consumer = ctx.consumer?.username ?? '';
    // APISIX's label is the balancer IP of the last attempt, without the port.
    const node = ctx.target?.host ?? '';
    const key = routeLabel + SEP + matchedUri + SEP + matchedHost + SEP + service + SEP + consumer + SEP + node;
    let series = this.series.get(key);
    if (series === undefined) {
      series = {
        labels: [routeLabel, matchedUri, matchedHost, service, consumer, node],
        status: new Map(),
        request: this.latency.labels('request', routeLabel, service, consumer, node),
        upstream: this.latency.labels('upstream', routeLabel, service, consumer, node),
        apisix: this.latency.labels('apisix', routeLabel, service, consumer, node),
        ingress: this.bandwidth.labels('ingress', routeLabel, service, consumer, node),
        egress: this.bandwidth.labels('egress', routeLabel, service, consumer, node),
      };
      this.series.set(key, series);
    }
    return series;
  }
}

/** The `uris` entry that matched (radixtree's `_path`): exact, or a `*` prefix. */
function matchUri(uris: readonly string[] | undefined, path: string): string {
  if (uris === undefined) return '';
  for (const u of uris) {
    if (u === path) return u;
    if (u.endsWith('*') && path.startsWith(u.slice(0, -1))) return u;
  }
  return uris[0] ?? '';
}

/** The `hosts` entry that matched (radixtree's `_host`): exact, or a `*.` wildcard. */
function matchHost(hosts: readonly string[] | undefined, host: string): string {
  if (hosts === undefined) return '';
  for (const h of hosts) {
    const lower = h.toLowerCase();
    if (lower === host) return h;
    if (lower.startsWith('*') && host.endsWith(lower.slice(1))) return h;
  }
  return '';
}
