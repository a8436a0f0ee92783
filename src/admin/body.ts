/**
 * Admin request bodies are JSON whatever the Content-Type says: APISIX ignores
 * it, and its documented curl lines (`curl -d '{...}'`) send
 * application/x-www-form-urlencoded. The size limit is enforced while reading,
 * so an oversized body is refused without being buffered.
 */
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { AdminError, adminError } from './errors.js';

/** What a handler sees: `undefined` when the request had no body (or an empty one). */
export type AdminBody = unknown;

function tooLarge(size: number, max: number): AdminError {
  return adminError(`invalid request body: request size ${size} is greater than the maximum size ${max} allowed`);
}

function readBody(payload: IncomingMessage, max: number): Promise<string> {
  const declared = Number(payload.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) return Promise.reject(tooLarge(declared, max));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > max) {
        payload.off('data', onData);
        // Let Node discard the rest; answering now keeps memory bounded.
        payload.resume();
        reject(tooLarge(Number.isFinite(declared) ? declared : size, max));
        return;
      }
      chunks.push(chunk);
    };
    payload.on('data', onData);
    payload.once('end', () => resolve(Buffer.concat(chunks, size).toString('utf8')));
    payload.once('error', reject);
  });
}

export function parseJsonBody(raw: string): AdminBody {
  if (raw.trim() === '') return undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch (err) {
    throw new AdminError('ADMIN_INVALID', { error_msg: `invalid request body: ${(err as Error).message}`, req_body: raw });
  }
}

/**
 * Replaces fastify's parsers with one that treats every body as JSON, within
 * `max` bytes; bodies of URLs `raw` accepts are handed over as text (wrapped by
 * `wrap`) for their route to parse (/configs takes YAML too).
 */
export function installBodyParser(app: FastifyInstance, max: number, raw?: { accepts(url: string): boolean; wrap(text: string): unknown }): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, payload, done) => {
    readBody(payload as IncomingMessage, max).then(
      (text) => {
        try {
          done(null, raw?.accepts(request.url) ? raw.wrap(text) : parseJsonBody(text));
        } catch (err) {
          done(err as Error, undefined);
        }
      },
      (err: Error) => done(err, undefined),
    );
  });
}
