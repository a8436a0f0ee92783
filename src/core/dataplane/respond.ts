/**
 * Answers the data plane writes itself: a plugin's exit (APISIX's
 * `return code, body`) and the gateway's own errors. header_filter and
 * body_filter still run over an exit, as in APISIX; a catalogue error written
 * after a plugin failed does not run them again.
 */
import type { Logger } from 'pino';
import { encodeBody, ERRORS, sendError, type GatewayError } from '../errors.js';
import { Headers } from '../http/headers.js';
import type { RequestCtx } from '../http/request-context.js';
import { bodyFilters, failureFields, runBodyFilter, runHeaderFilter, type Exit } from '../plugin/pipeline.js';

const EMPTY = Buffer.alloc(0);
const SERVER_AND_LENGTH: ReadonlySet<string> = new Set(['server', 'content-length']);

export class Responder {
  constructor(
    private readonly logger: Logger,
    readonly serverHeader: string,
  ) {}

  /** A gateway error, unless the response already started (then the socket is all that can end). */
  error(ctx: RequestCtx, err: GatewayError): void {
    const res = ctx.res;
    if (res.headersSent || res.writableEnded) return;
    ctx.setResponse(err.status, new Headers({}));
    sendError(res, err, { server: this.serverHeader });
  }

  /** A plugin's exit; the picked node, if any, is handed back to its balancer first. */
  exit(ctx: RequestCtx, exit: Exit): void {
    if (ctx.target !== undefined) {
      ctx.runtime?.release(ctx.target);
      ctx.target = undefined;
    }
    this.body(ctx, exit.status, encodeBody(exit.body), exit.headers);
  }

  /** A complete answer with a body, through header_filter and body_filter. */
  body(ctx: RequestCtx, status: number, body: { data: Buffer | string; json: boolean }, extra: Record<string, string> | undefined): void {
    const res = ctx.res;
    if (res.headersSent || res.writableEnded) return;
    const base: Record<string, string> = {};
    if (body.json) base['content-type'] = 'application/json';
    if (extra) for (const name of Object.keys(extra)) base[name.toLowerCase()] = extra[name]!;
    ctx.setResponse(status, new Headers(base));
    const global = ctx.snapshot.globalChain;
    const chain = ctx.chain;
    let data: Buffer | string = body.data;
    try {
      runHeaderFilter(global, chain, ctx);
      const filters = bodyFilters(global, chain);
      if (filters.length > 0) {
        const buf = typeof data === 'string' ? Buffer.from(data) : data;
        data = Buffer.concat([runBodyFilter(filters, ctx, buf, false), runBodyFilter(filters, ctx, EMPTY, true)]);
      }
    } catch (err) {
      this.logger.error({ ...failureFields(err), route: ctx.route.id }, 'plugin failed in a filter phase; answering 500');
      sendError(res, ERRORS.internal, { server: this.serverHeader });
      return;
    }
    const flat = ctx.response.headers.flatten([], undefined, SERVER_AND_LENGTH);
    flat.push('server', this.serverHeader, 'content-length', String(Buffer.byteLength(data)));
    res.writeHead(ctx.response.status, flat);
    ctx.sentHeaders = flat;
    ctx.responseKeeper?.add(typeof data === 'string' ? Buffer.from(data) : data);
    res.end(data);
  }
}

const errorExits = new Map<GatewayError, Exit>();

/** A gateway error raised inside the step loop ends the request like a plugin exit (filters and log still run). */
export function errorExit(err: GatewayError): Exit {
  let exit = errorExits.get(err);
  if (exit === undefined) {
    exit = { status: err.status, body: err.body, headers: err.body.length > 0 ? { 'content-type': 'application/json' } : undefined, plugin: '' };
    errorExits.set(err, exit);
  }
  return exit;
}
