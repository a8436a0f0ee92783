/**
 * Variables as nginx offers them once the response head is known: `status`,
 * and `upstream_http_*` / `sent_http_*` from the response headers, beside
 * every request variable. header_filter is synchronous, so one reusable view
 * serves every request: point it at the request, read, let go.
 */
import type { ExprVars, RequestContext } from '../../core/plugin/index.js';

export class ResponseVars implements ExprVars {
  ctx: RequestContext | undefined;
  get(name: string): string | undefined {
    const ctx = this.ctx;
    if (ctx === undefined) return undefined;
    if (name === 'status' || name === 'upstream_status') return String(ctx.response.status);
    if (name.startsWith('upstream_http_')) return ctx.response.headers.get(name.slice(14).replace(/_/g, '-'));
    if (name.startsWith('sent_http_')) return ctx.response.headers.get(name.slice(10).replace(/_/g, '-'));
    return ctx.var.get(name);
  }
}
