/**
 * Reading the client's whole request body for a plugin that must see it
 * (APISIX's core.request.get_body): the request then sends the buffered copy
 * upstream, never the stream a second time. Bounded in size (refused before a
 * byte is read when Content-Length already says too much) and in time: no
 * data for `idleMs` ends the read, as nginx's client_body_timeout does.
 */
import type { Readable } from 'node:stream';
import type { BodyError } from '../plugin/ctx.js';

/** nginx's client_body_timeout default, 60 s between two reads. */
export const BODY_IDLE_MS = 60_000;

export function readRequestBody(stream: Readable, declared: number | undefined, maxBytes: number, idleMs = BODY_IDLE_MS): Promise<Buffer | BodyError> {
  // APISIX's words (apisix/core/request.lua, get_body).
  const tooLarge = (size: number): BodyError => ({ error: `request size ${size} is greater than the maximum size ${maxBytes} allowed`, tooLarge: true });
  if (declared !== undefined && declared > maxBytes) return Promise.resolve(tooLarge(declared));
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let timer: NodeJS.Timeout | undefined;
    const done = (result: Buffer | BodyError): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
      resolve(result);
    };
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stream.pause();
        done({ error: `client sent no request body data for ${idleMs} ms`, tooLarge: false });
      }, idleMs);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        stream.pause();
        done(tooLarge(size));
        return;
      }
      chunks.push(chunk);
      arm();
    };
    const onEnd = (): void => done(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    const onError = (err: Error): void => done({ error: `failed to read the request body: ${err.message}`, tooLarge: false });
    const onClose = (): void => done({ error: 'client closed before the request body ended', tooLarge: false });
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
    stream.once('close', onClose);
    arm();
    stream.resume();
  });
}
