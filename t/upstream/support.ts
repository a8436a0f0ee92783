/** Real upstream servers on port 0 and a minimal request context for balancer tests. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RequestContext } from '../../src/core/plugin/ctx.js';
import type { ConsumerConf } from '../../src/core/model.js';

export interface TestServer {
  port: number;
  key: string;
  /** TCP connections accepted so far. */
  connections: number;
  /** Requests served so far. */
  requests: number;
  /** Status answered from now on; 0 leaves requests hanging, -1 resets the connection. */
  status: number;
  /** URL and headers of the latest request. */
  last?: { url: string; headers: http.IncomingHttpHeaders };
  close(): Promise<void>;
}

export async function startServer(name = 'node', port = 0): Promise<TestServer> {
  const server = http.createServer((req, res) => {
    state.requests++;
    state.last = { url: req.url ?? '', headers: req.headers };
    if (state.status === 0) return;
    if (state.status === -1) return void req.socket.destroy();
    res.writeHead(state.status, { 'content-type': 'text/plain', 'x-node': name });
    res.end(name);
  });
  server.keepAliveTimeout = 30_000;
  const state: TestServer = {
    port: 0,
    key: '',
    connections: 0,
    requests: 0,
    status: 200,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on('connection', () => state.connections++);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  state.port = (server.address() as AddressInfo).port;
  state.key = `127.0.0.1:${state.port}`;
  return state;
}

/** A port nothing listens on: bind, note the port, close. */
export async function deadPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export function fakeCtx(vars: Record<string, string> = {}, consumer?: string): RequestContext {
  const ctx = {
    remoteAddr: vars.remote_addr ?? '10.0.0.1',
    var: { get: (name: string) => vars[name] },
    consumer: consumer === undefined ? undefined : ({ username: consumer } as ConsumerConf),
  };
  return ctx as unknown as RequestContext;
}

export async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function count<T>(items: T[]): Map<T, number> {
  const m = new Map<T, number>();
  for (const i of items) m.set(i, (m.get(i) ?? 0) + 1);
  return m;
}
