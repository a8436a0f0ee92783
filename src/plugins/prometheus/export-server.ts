/**
 * The metrics endpoint: its own listener (APISIX's export server,
 * plugin_attr.prometheus.export_addr, default 127.0.0.1:9091), answering
 * `GET <export_uri>` and 404 to anything else, as APISIX's export_metrics.
 *
 * Metrics are computed at each scrape (APISIX caches them for
 * refresh_interval; prom-client makes a fresh read cheap). When the data
 * plane runs in workers every worker records its own requests, and the main
 * process gathers each worker's registry (the plugin's `gathered` shared
 * state, over the core's IPC channel), then sums them with its own series
 * through AggregatorRegistry.aggregate, so the main process's own series
 * (Admin API connections) are in the sum; a worker that exits mid-scrape is
 * not waited for.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { AggregatorRegistry, type Registry } from 'prom-client';

export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** A worker that has not answered by then fails the scrape (a partial sum would look like a counter reset). */
export const WORKER_ANSWER_MS = 5_000;

export interface ExportServerOptions {
  ip: string;
  port: number;
  uri: string;
  registry: Registry;
  /** The data-plane workers' registries, summed with this process's one; absent when requests are served here. */
  gather?: () => Promise<MetricsJson[]>;
  logger: Logger;
}

export interface ExportServer {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

export async function startExportServer(opts: ExportServerOptions): Promise<ExportServer> {
  const gather = opts.gather;
  const render = async (): Promise<string> => {
    if (gather === undefined) return opts.registry.metrics();
    const [own, workers] = await Promise.all([opts.registry.getMetricsAsJSON(), gather()]);
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
  });
  return {
    address: server.address() as AddressInfo,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
