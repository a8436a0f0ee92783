/**
 * The lean Node limit: a bare node:http server forwarding every request to one
 * upstream through an undici Pool with dispatch(), streaming both ways. No
 * routing, no plugins: what any Node gateway can at best approach.
 * With LEAN_TLS_CERT and LEAN_TLS_KEY (PEM files) it serves node:https instead.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { Pool, type Dispatcher } from 'undici';

const [upstream, portArg] = process.argv.slice(2);
if (!upstream) throw new Error('usage: lean-proxy.js http://host:port [listenPort]');
const pool = new Pool(upstream, { connections: 64, pipelining: 1, keepAliveTimeout: 60_000 });

class Forward implements Dispatcher.DispatchHandler {
  private resume: (() => void) | undefined;
  constructor(private readonly res: ServerResponse) {}
  onConnect(): void {}
  onError(): void {
    if (!this.res.headersSent) this.res.writeHead(502).end();
    else this.res.destroy();
  }
  onHeaders(status: number, raw: Buffer[], resume: () => void): boolean {
    const headers: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1');
      if (name.length === 10 && name.toLowerCase() === 'connection') continue;
      headers.push(name, raw[i + 1]!.toString('latin1'));
    }
    this.res.writeHead(status, headers);
    this.resume = resume;
    return true;
  }
  onData(chunk: Buffer): boolean {
    const res = this.res;
    // A client that left (wrk stopping mid-response) never drains: read the rest and let the
    // connection go back to the pool, or every run would leak a pooled connection until it hangs.
    if (res.write(chunk) || res.destroyed) return true;
    res.once('drain', this.resume!);
    res.once('close', this.resume!);
    return false;
  }
  onComplete(): void {
    this.res.end();
  }
}

const forward: RequestListener = (req: IncomingMessage, res: ServerResponse) => {
  pool.dispatch(
    { method: req.method as Dispatcher.HttpMethod, path: req.url!, headers: req.rawHeaders, body: req.method === 'GET' || req.method === 'HEAD' ? null : req },
    new Forward(res),
  );
};
const { LEAN_TLS_CERT: certFile, LEAN_TLS_KEY: keyFile } = process.env;
(certFile && keyFile ? createHttpsServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, forward) : createServer(forward)).listen(Number(portArg ?? 0), '127.0.0.1', function (this: import('node:net').Server) {
  process.stdout.write(`listening ${(this.address() as import('node:net').AddressInfo).port}\n`);
});
