/**
 * Admin request bodies are JSON. APISIX reads them as JSON whatever the
 * Content-Type says; Portico does so for a JSON type, for no type at all, and
 * for application/x-www-form-urlencoded, which APISIX's documented curl lines
 * (`curl -d '{...}'`) send. Other types, among them the text/plain and
 * multipart/form-data an HTML form on any site can send, are refused with
 * 415 before the body is read: together with the cross-origin rule on the
 * key cookie (auth.ts) this keeps other sites from writing through a browser.
 * The size limit is enforced while reading, so an oversized body is refused
 * without being buffered.
 */
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { AdminError, adminError } from './errors.js';
import { jsonTooDeep, tooDeepMessage } from './nesting.js';

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
  if (jsonTooDeep(raw)) throw adminError(tooDeepMessage());
  try {
    return JSON.parse(raw) as unknown;
  } catch (err) {
    throw new AdminError('ADMIN_INVALID', { error_msg: `invalid request body: ${(err as Error).message}`, req_body: raw });
  }
}

/** A JSON media type (application/json, application/*+json), or the form type curl -d sends. */
export function readsAsJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  const type = mediaType(contentType);
  return type === '' || type === 'application/json' || type === 'application/x-www-form-urlencoded' || (type.startsWith('application/') && type.endsWith('+json'));
}

function mediaType(contentType: string): string {
  const semi = contentType.indexOf(';');
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

function unsupported(contentType: string): AdminError {
  return new AdminError('ADMIN_UNSUPPORTED_MEDIA_TYPE', {
    error_msg: `invalid request body: unsupported content type ${JSON.stringify(contentType)}, send the body as application/json`,
  });
}

/**
 * Replaces fastify's parsers with one that reads a JSON body (see above), within
 * `max` bytes; bodies of URLs `raw` accepts are handed over as text (wrapped by
 * `wrap`) for their route to parse (/configs takes application/yaml too).
 */
export function installBodyParser(app: FastifyInstance, max: number, raw?: { accepts(url: string): boolean; wrap(text: string): unknown }): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, payload, done) => {
    const type = request.headers['content-type'];
    const isRaw = raw?.accepts(request.url) === true;
    if (!readsAsJson(type) && !(isRaw && mediaType(String(type)) === 'application/yaml')) {
      (payload as IncomingMessage).resume();
      done(unsupported(String(type)), undefined);
      return;
    }
    readBody(payload as IncomingMessage, max).then(
      (text) => {
        try {
          done(null, isRaw ? raw!.wrap(text) : parseJsonBody(text));
        } catch (err) {
          done(err as Error, undefined);
        }
      },
      (err: Error) => done(err, undefined),
    );
  });
}
