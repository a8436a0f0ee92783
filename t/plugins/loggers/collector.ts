/**
 * A log collector for the logger tests: an HTTP server on a loopback port that
 * records every POST (headers and body) and answers with the status the test
 * sets (200 by default; 500 makes the logger retry).
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  /** The body's bytes as received. */
  raw: Buffer;
  status: number;
}

export interface Collector {
  readonly url: string;
  readonly received: Received[];
  /** Status of the next answers. */
  status: number;
  /** Resolves once `n` posts arrived (or rejects after `ms`). */
  waitFor(n: number, ms?: number): Promise<Received[]>;
  close(): Promise<void>;
}

export async function startCollector(): Promise<Collector> {
  const received: Received[] = [];
  const waiters: Array<() => void> = [];
  const collector = {
    url: '',
    received,
    status: 200,
    async waitFor(n: number, ms = 5000): Promise<Received[]> {
      const deadline = Date.now() + ms;
      while (received.length < n) {
        if (Date.now() > deadline) throw new Error(`collector got ${received.length} posts, expected ${n}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
      return received;
    },
    close: (): Promise<void> =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = collector.status;
      const raw = Buffer.concat(chunks);
      received.push({ headers: req.headers, body: raw.toString(), raw, status });
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 400 ? 'ok' : 'collector failing');
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  collector.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/logs`;
  return collector;
}
