/**
 * echo-upstream: the upstream the README's quick start routes to. Answers every
 * request with its method, path, query, headers and body as JSON, so a newcomer
 * sees what the gateway sent (X-Forwarded-*, X-Real-IP, a rewritten path).
 *
 *   npm run echo-upstream                      # 127.0.0.1:1980, as the quick start expects
 *   npm run echo-upstream -- --port 1981 --host 127.0.0.1
 *
 * Stops on Ctrl-C (SIGINT) or SIGTERM.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

// A request body is echoed up to this size (and counted beyond it): enough to see what was sent.
const BODY_ECHO_LIMIT = 64 * 1024;

function fail(msg: string): never {
  process.stderr.write(`echo-upstream: ${msg}\n`);
  process.exit(1);
}

let values: { port?: string; host?: string; help?: boolean };
try {
  ({ values } = parseArgs({
    options: { port: { type: 'string', short: 'p' }, host: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  }));
} catch (err) {
  fail((err as Error).message);
}
if (values.help) {
  process.stdout.write('usage: echo-upstream [--port 1980] [--host 127.0.0.1]\n');
  process.exit(0);
}
const host = values.host ?? '127.0.0.1';
const port = Number(values.port ?? 1980);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be 0-65535, got ${values.port}`);

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size <= BODY_ECHO_LIMIT) chunks.push(c);
  });
  req.on('end', () => {
    const url = new URL(req.url ?? '/', 'http://upstream');
    const answer = {
      method: req.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: req.headers,
      body: Buffer.concat(chunks).toString('utf8'),
      body_bytes: size,
      upstream: `${host}:${(server.address() as AddressInfo).port}`,
    };
    const body = JSON.stringify(answer, null, 2) + '\n';
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});

server.on('error', (err: NodeJS.ErrnoException) => {
  fail(err.code === 'EADDRINUSE' ? `${host}:${port} is already in use (choose another with --port)` : err.message);
});
server.listen(port, host, () => {
  const a = server.address() as AddressInfo;
  process.stdout.write(`echo upstream listening on http://${host}:${a.port}\n`);
});

const stop = () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
