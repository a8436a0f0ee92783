/**
 * Client-side measures of each request (RequestContext.measures), for log
 * plugins that report latency and bandwidth as nginx's `$request_time`,
 * `$request_length` and `$bytes_sent` do (APISIX's prometheus exporter).
 *
 * Node's `http.server.request.start` / `http.server.response.finish`
 * diagnostics channels are published synchronously for every HTTP request in
 * the process. At request start the request gets the time and the socket's
 * byte counters; at response finish the socket remembers how much it had read,
 * so the next request on a keep-alive connection counts only its own bytes
 * (Node reads a request's body before its response finishes, so that mark is
 * where the next request begins: request line, headers and body).
 *
 * Off until a plugin asks: a subscriber makes Node publish on every request,
 * so a gateway that never records pays nothing.
 */
import dc from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { RequestMeasures } from '../plugin/ctx.js';

const kMark = Symbol('portico.requestMark');
const kReadMark = Symbol('portico.readMark');

type MarkedRequest = IncomingMessage & { [kMark]?: RequestMark };
type MarkedSocket = Socket & { [kReadMark]?: number };

class RequestMark implements RequestMeasures {
  constructor(
    readonly startedAt: number,
    private readonly socket: Socket,
    private readonly read0: number,
    private readonly written0: number,
  ) {}

  get bytesRead(): number {
    return this.socket.bytesRead - this.read0;
  }

  get bytesWritten(): number {
    return this.socket.bytesWritten - this.written0;
  }
}

function onStart(msg: unknown): void {
  const { request, socket } = msg as { request: MarkedRequest; socket: MarkedSocket };
  request[kMark] = new RequestMark(performance.now(), socket, socket[kReadMark] ?? 0, socket.bytesWritten);
}

function onFinish(msg: unknown): void {
  const socket = (msg as { socket: MarkedSocket | null }).socket;
  if (socket) socket[kReadMark] = socket.bytesRead;
}

let users = 0;

/**
 * Turns measuring on for requests that start from now on; call the returned
 * function to release it (measuring stops when every user has released).
 */
export function measureRequests(): () => void {
  if (users++ === 0) {
    dc.subscribe('http.server.request.start', onStart);
    dc.subscribe('http.server.response.finish', onFinish);
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--users === 0) {
      dc.unsubscribe('http.server.request.start', onStart);
      dc.unsubscribe('http.server.response.finish', onFinish);
    }
  };
}

/** The request's measures, when measuring was on as it started. */
export function measuresOf(req: IncomingMessage): RequestMeasures | undefined {
  return (req as MarkedRequest)[kMark];
}
