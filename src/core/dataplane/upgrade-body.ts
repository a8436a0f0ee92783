import { Readable, type Duplex } from 'node:stream';

/**
 * The body of an upgrade request served as a plain request (a route without
 * WebSocket): exactly Content-Length bytes (llhttp already refused a malformed
 * or duplicate one) from `head` and then the socket, paused when the upstream
 * is. Bytes after it are never parsed: the connection closes after the
 * response.
 */
export function upgradeBody(head: Buffer, socket: Duplex, length: number): Readable {
  let left = length;
  const body = new Readable({ read: () => void socket.resume() });
  const stop = (): void => {
    socket.off('data', take);
    socket.off('end', early);
    socket.off('close', early);
    socket.pause();
  };
  const early = (): void => {
    stop();
    body.destroy(new Error('client closed before the request body ended'));
  };
  function take(chunk: Buffer): void {
    const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
    left -= part.length;
    const more = body.push(part);
    if (left === 0) {
      stop();
      body.push(null);
    } else if (!more) socket.pause();
  }
  if (head.length > 0) take(head);
  if (left > 0) {
    socket.on('data', take);
    socket.once('end', early);
    socket.once('close', early);
  }
  return body;
}
