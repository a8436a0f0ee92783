/**
 * Portico's loggers, with credentials kept out of every line. Request URLs
 * are logged with their query values masked (deny by default: a key-auth
 * `query` can be given any name, so only argument names known to hold no
 * secret keep their value), and credential headers are censored wherever a
 * line carries a `headers` object: the admin key (`X-API-KEY`, `api_key`,
 * its cookie), `Authorization`, key-auth's default `apikey`.
 */
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export const REDACTED = '[REDACTED]';

/** Query arguments whose values are never secrets: the Admin API's paging and filters. */
const SAFE_QUERY_ARGS: ReadonlySet<string> = new Set(['page', 'page_size', 'name', 'label', 'uri', 'force', 'ttl', 'service_id', 'upstream_id', 'filter']);

/** `url` with the value of every query argument outside SAFE_QUERY_ARGS replaced by [REDACTED]. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const parts = url.slice(q + 1).split('&');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    let decoded = name;
    try {
      decoded = decodeURIComponent(name.replace(/\+/g, ' '));
    } catch {
      // a malformed escape: judge the name as written
    }
    if (eq >= 0 && !SAFE_QUERY_ARGS.has(decoded)) parts[i] = `${name}=${REDACTED}`;
  }
  return `${url.slice(0, q)}?${parts.join('&')}`;
}

const CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'x-api-key', 'apikey', 'cookie', 'set-cookie'];

/** pino redact paths: the credential headers of any `headers` object one or two levels down. */
export const REDACT_PATHS: readonly string[] = CREDENTIAL_HEADERS.flatMap((h) => [`headers["${h}"]`, `*.headers["${h}"]`]);

interface LoggedRequest {
  method?: string;
  url?: string;
  [key: string]: unknown;
}

/** A request as a log line shows it: what fastify's serializer keeps, the URL's query values masked. */
export function requestLogValue(req: { method?: string; url?: string; host?: string; ip?: string; socket?: { remotePort?: number } }): LoggedRequest {
  return {
    method: req.method,
    url: req.url === undefined ? undefined : redactUrl(req.url),
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  };
}

/** The options every Portico logger is built with. */
export function loggerOptions(level: string): LoggerOptions {
  return { level, redact: { paths: [...REDACT_PATHS], censor: REDACTED }, serializers: { req: requestLogValue } };
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return destination === undefined ? pino(loggerOptions(level)) : pino(loggerOptions(level), destination);
}
