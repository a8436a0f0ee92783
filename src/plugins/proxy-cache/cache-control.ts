/**
 * Cache-Control as apisix/plugins/proxy-cache/memory_handler.lua reads it:
 * directives split on commas, a numeric value kept as a number, a bare
 * directive as true; and the freshness a response gives itself
 * (s-maxage, max-age, else Expires).
 */
export type Directives = Readonly<Record<string, number | string | true>>;

export const NO_DIRECTIVES: Directives = Object.freeze({});

export function parseDirectives(header: string | undefined): Directives {
  if (header === undefined || header === '') return NO_DIRECTIVES;
  const out: Record<string, number | string | true> = {};
  for (const part of header.split(',')) {
    const m = /^\s*([^=]+?)\s*(?:=\s*(.+?))?\s*$/.exec(part);
    if (m === null) continue;
    const value = m[2];
    const n = value === undefined ? NaN : Number(value);
    out[m[1]!.toLowerCase()] = value === undefined ? true : Number.isFinite(n) ? n : value.replace(/^"|"$/g, '');
  }
  return out;
}

/** A directive's number, or undefined when absent or not a number. */
export function seconds(d: Directives, name: string): number | undefined {
  const v = d[name];
  return typeof v === 'number' ? v : undefined;
}

/** Seconds the response may be cached for, 0 when it gives none (memory_handler.lua's parse_resource_ttl). */
export function resourceTtl(cc: Directives, expires: string | undefined, now: number): number {
  let maxAge = seconds(cc, 's-maxage') ?? seconds(cc, 'max-age');
  if (maxAge === undefined && expires !== undefined) {
    const at = Date.parse(expires);
    if (Number.isFinite(at)) maxAge = at / 1000 - now;
  }
  return maxAge === undefined ? 0 : Math.max(maxAge, 0);
}
