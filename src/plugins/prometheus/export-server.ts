/**
 * The metrics endpoint: its own listener (APISIX's export server,
 * plugin_attr.prometheus.export_addr, default 127.0.0.1:9091), answering
 * `GET <export_uri>` and 404 to anything else, as APISIX's export_metrics.
 *
 * Metrics are computed at each scrape (APISIX caches them for
 * refresh_interval; prom-client makes a fresh read cheap). When the data
 * plane runs in cluster workers every worker records its own requests, and the main
 * process asks each worker for its registry over the cluster IPC channel, in
 * prom-client's own message format (AggregatorRegistry's worker side answers
 * it), then sums them with its own series through AggregatorRegistry.aggregate.
 * The asking is done here rather than with clusterMetrics() so the main
 * process's own series (Admin API connections) are in the sum and a worker
 * that exits mid-scrape is not waited for. Portico's own IPC messages have
 * other `type`s, and each side ignores the other's.
 */
import cluster, { type Worker } from 'node:cluster';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { AggregatorRegistry, type Registry } from 'prom-client';

type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

const GET_METRICS_REQ = 'prom-client:getMetricsReq';
const GET_METRICS_RES = 'prom-client:getMetricsRes';
/** A worker that has not answered by then fails the scrape (a partial sum would look like a counter reset). */
const WORKER_TIMEOUT_MS = 5_000;

interface WorkerReply {
  type?: unknown;
  requestId?: unknown;
  metrics?: MetricsJson[];
  error?: string;
}

interface Pending {
  waiting: Set<Worker>;
  results: MetricsJson[];
  done(err?: Error): void;
}

/** Main-process side of the cluster scrape. */
class ClusterCollector {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly onMessage = (worker: Worker, msg: WorkerReply): void => {
    if (msg === null || typeof msg !== 'object' || msg.type !== GET_METRICS_RES || typeof msg.requestId !== 'number') return;
    const p = this.pending.get(msg.requestId);
    if (p === undefined || !p.waiting.delete(worker)) return;
    if (msg.error !== undefined) return p.done(new Error(`worker ${worker.id}: ${msg.error}`));
    if (msg.metrics) p.results.push(...msg.metrics);
    if (p.waiting.size === 0) p.done();
  };
  private readonly onExit = (worker: Worker): void => {
    // Its counts died with it; the others' sum is still right.
    for (const p of this.pending.values()) if (p.waiting.delete(worker) && p.waiting.size === 0) p.done();
  };

  constructor() {
    cluster.on('message', this.onMessage);
    cluster.on('exit', this.onExit);
  }

  close(): void {
    cluster.off('message', this.onMessage);
    cluster.off('exit', this.onExit);
    for (const p of this.pending.values()) p.done(new Error('closing'));
  }

  collect(): Promise<MetricsJson[]> {
    const requestId = this.nextId++;
    return new Promise((resolve, reject) => {
      const waiting = new Set<Worker>();
      const results: MetricsJson[] = [];
      const timer = setTimeout(() => p.done(new Error(`${waiting.size} worker(s) did not send metrics within ${WORKER_TIMEOUT_MS} ms`)), WORKER_TIMEOUT_MS);
      const p: Pending = {
        waiting,
        results,
        done: (err) => {
          clearTimeout(timer);
          this.pending.delete(requestId);
          if (err) reject(err);
          else resolve(results);
        },
      };
      this.pending.set(requestId, p);
      for (const worker of Object.values(cluster.workers ?? {})) {
        if (worker === undefined || !worker.isConnected()) continue;
        waiting.add(worker);
        worker.send({ type: GET_METRICS_REQ, requestId });
      }
      if (waiting.size === 0) p.done();
    });
  }
}

/** Worker side: answer the main process's requests with this registry (prom-client's listener). */
export function serveRegistryToPrimary(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry();
}

export interface ExportServerOptions {
  ip: string;
  port: number;
  uri: string;
  registry: Registry;
  /** Sum the cluster workers' registries into this process's one. */
  cluster: boolean;
  logger: Logger;
}

export interface ExportServer {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

export async function startExportServer(opts: ExportServerOptions): Promise<ExportServer> {
  const collector = opts.cluster ? new ClusterCollector() : undefined;
  const render = async (): Promise<string> => {
    if (collector === undefined) return opts.registry.metrics();
    const [own, workers] = await Promise.all([opts.registry.getMetricsAsJSON(), collector.collect()]);
    return AggregatorRegistry.aggregate([own, ...workers]).metrics();
  };
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' || path !== opts.uri) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('404 Not Found\n');
      return;
    }
    render().then(
      (text) => res.writeHead(200, { 'content-type': opts.registry.contentType }).end(text),
      (err: unknown) => {
        opts.logger.error({ err }, 'prometheus: failed to collect metrics');
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ message: `Failed to retrieve metrics. err: ${(err as Error).message}` }) + '\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.ip, port: opts.port }, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    collector?.close();
    throw err;
  });
  return {
    address: server.address() as AddressInfo,
    async close() {
      collector?.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
