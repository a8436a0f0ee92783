/**
 * h2c with prior knowledge beside HTTP/1.1 on the plain listener
 * (node_listen.enable_http2), as nginx's `http2 on` on a plain port: a
 * connection whose first bytes are HTTP/2's preface goes to an HTTP/2 session,
 * any other to the HTTP/1.1 server as before. The bytes read to decide are put
 * back on the socket, which both servers read first (node:http2 feeds a
 * socket's buffered data to the new session).
 */
import type { RequestListener, Server } from 'node:http';
import { createServer as createH2cServer, Http2ServerResponse, type Http2ServerRequest, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export function acceptH2c(server: Server, handler: RequestListener, http2Response: new (stream: ServerHttp2Stream) => Http2ServerResponse): void {
  const h2c = createH2cServer({ Http2ServerResponse: http2Response as unknown as typeof Http2ServerResponse }, handler as unknown as (req: Http2ServerRequest, res: Http2ServerResponse) => void);
  const http1 = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    let seen: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, PREFACE.length);
      const h2 = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
      // Not yet decidable: a preface prefix so far.
      if (h2 && n < PREFACE.length) return;
      socket.off('data', onData);
      socket.pause();
      socket.unshift(seen);
      if (h2) h2c.emit('connection', socket);
      else for (const l of http1) l.call(server, socket);
      process.nextTick(() => socket.resume());
    };
    socket.on('data', onData);
  });
  // The HTTP/1.1 server's close() waits for every socket it accepted, these included: end their sessions with it.
  const sessions = new Set<Http2Session>();
  h2c.on('session', (session: Http2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  const close = server.close.bind(server);
  server.close = (cb?: (err?: Error) => void) => {
    close(cb);
    for (const s of sessions) s.close();
    const timer = setTimeout(() => {
      for (const s of sessions) s.destroy();
    }, H2C_DRAIN_MS);
    timer.unref();
    return server;
  };
}

/** As the data plane's own drain (server.ts DRAIN_MS). */
const H2C_DRAIN_MS = 5_000;
