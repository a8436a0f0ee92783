/**
 * HeaderEdits over an immutable base (the client's request headers, or the
 * upstream's response headers). Edits are recorded beside the base instead of
 * copying it, so a request no plugin touches costs nothing here; the proxy
 * walks base + edits once when it writes the headers out.
 */
import type { HeaderEdits } from '../plugin/ctx.js';

export type HeaderBase = Readonly<Record<string, string | string[] | undefined>>;

/** Hop-by-hop headers (RFC 9110 §7.6.1 plus the Proxy-* family); never forwarded either way. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
]);

/** Also HTTP/2's pseudo-headers (`:path`, `:authority`...), which node:http2 lists among a request's headers. */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith('proxy-') || name.charCodeAt(0) === 58; /* : */
}

/**
 * Names listed in a Connection header are hop-by-hop too. Returns undefined in
 * the common case (absent, or only keep-alive/close/upgrade) so nothing is allocated.
 */
export function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  // What nearly every peer sends: nothing to drop, and no split to allocate.
  if (value === 'keep-alive' || value === 'close' || value === 'Keep-Alive' || value === 'Close') return undefined;
  const joined = Array.isArray(value) ? value.join(',') : value;
  let out: Set<string> | undefined;
  for (const raw of joined.split(',')) {
    const token = raw.trim().toLowerCase();
    if (token === '' || token === 'close' || token === 'keep-alive' || token === 'upgrade') continue;
    (out ??= new Set()).add(token);
  }
  return out;
}

export class Headers implements HeaderEdits {
  /** name → values, or null when removed. Absent until the first edit. */
  private edits: Map<string, string[] | null> | undefined;
  private parsed: HeaderBase | undefined;
  /**
   * The upstream's raw [name, value, ...] pairs, as undici hands them over.
   * Parsed into a lower-case object only when a value is read: a
   * header_filter plugin that only sets headers (limit-count's X-RateLimit-*,
   * say) never pays for it, and flatten() walks the pairs directly.
   */
  private readonly raw: readonly Buffer[] | undefined;

  constructor(base: HeaderBase | readonly Buffer[]) {
    if (Array.isArray(base)) this.raw = base as readonly Buffer[];
    else this.parsed = base as HeaderBase;
  }

  private get base(): HeaderBase {
    return (this.parsed ??= parseRawHeaders(this.raw!));
  }

  get(name: string): string | undefined {
    const edited = this.edits?.get(name);
    if (edited !== undefined) return edited === null ? undefined : edited.join(', ');
    const v = this.base[name];
    return Array.isArray(v) ? v.join(', ') : v;
  }

  set(name: string, value: string): void {
    (this.edits ??= new Map()).set(name.toLowerCase(), [value]);
  }

  add(name: string, value: string): void {
    const key = name.toLowerCase();
    const edits = (this.edits ??= new Map());
    const edited = edits.get(key);
    if (edited) {
      edited.push(value);
      return;
    }
    const current = edited === null ? undefined : this.base[key];
    const values = current === undefined ? [] : Array.isArray(current) ? [...current] : [current];
    values.push(value);
    edits.set(key, values);
  }

  remove(name: string): void {
    (this.edits ??= new Map()).set(name.toLowerCase(), null);
  }

  /** The names the Connection header lists (hop-by-hop too), without parsing raw pairs for it. */
  connectionTokens(): Set<string> | undefined {
    if (this.parsed !== undefined || this.edits?.has('connection') === true) return connectionTokens(this.get('connection'));
    const raw = this.raw!;
    let value: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      if (name.length === 10 && latin1(name).toLowerCase() === 'connection') {
        const v = latin1(raw[i + 1]!);
        value = value === undefined ? v : `${value}, ${v}`;
      }
    }
    return connectionTokens(value);
  }

  pairs(): string[] {
    return this.flatten([]);
  }

  /** True when an edit (set, add or remove) was recorded for `name`. */
  edited(name: string): boolean {
    return this.edits !== undefined && this.edits.has(name);
  }

  /**
   * Appends every header as flat [name, value, ...] pairs, skipping hop-by-hop
   * headers, names in `drop`, and names `skip` rejects. Edited values win.
   */
  flatten(out: string[], drop?: ReadonlySet<string>, skip?: ReadonlySet<string>): string[] {
    const edits = this.edits;
    if (this.parsed === undefined) {
      // Unparsed upstream pairs: relayed line by line, names in the upstream's case (as the no-plugin relay does).
      const raw = this.raw!;
      for (let i = 0; i < raw.length; i += 2) {
        const name = latin1(raw[i]!);
        const lower = name.toLowerCase();
        if (isHopByHop(lower) || (drop !== undefined && drop.has(lower)) || (skip !== undefined && skip.has(lower))) continue;
        if (edits !== undefined && edits.has(lower)) continue;
        out.push(name, latin1(raw[i + 1]!));
      }
      return this.appendEdits(out, skip);
    }
    const base = this.parsed;
    for (const name in base) {
      if (isHopByHop(name) || (drop !== undefined && drop.has(name)) || (skip !== undefined && skip.has(name))) continue;
      if (edits !== undefined && edits.has(name)) continue;
      const v = base[name];
      if (v === undefined) continue;
      if (typeof v === 'string') out.push(name, v);
      else for (const one of v) out.push(name, one);
    }
    return this.appendEdits(out, skip);
  }

  /** Lower-case names; a repeated header's values as an array (for log entries: ngx.resp.get_headers()). */
  toObject(): Record<string, string | string[]> {
    return headerPairsObject(this.flatten([]));
  }

  private appendEdits(out: string[], skip: ReadonlySet<string> | undefined): string[] {
    const edits = this.edits;
    if (edits !== undefined) {
      for (const [name, values] of edits) {
        if (values === null || (skip !== undefined && skip.has(name))) continue;
        for (const one of values) out.push(name, one);
      }
    }
    return out;
  }
}

/**
 * Flat [name, value, ...] pairs as one object: lower-case names, a repeated
 * name's values as an array. A plain object (JSON.stringify walks those
 * fastest) read through own properties only, so a header named `constructor`
 * or `__proto__` is a header like any other.
 */
export function headerPairsObject(flat: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!.toLowerCase();
    const value = flat[i + 1]!;
    const prior = Object.hasOwn(out, name) ? out[name] : undefined;
    // The arrays are this object's own: a third value joins the second's in place.
    if (Array.isArray(prior)) {
      prior.push(value);
      continue;
    }
    const next = prior === undefined ? value : [prior, value];
    // Assigning `__proto__` would set the prototype instead.
    if (name === '__proto__') Object.defineProperty(out, name, { value: next, enumerable: true, writable: true, configurable: true });
    else out[name] = next;
  }
  return out;
}

type Latin1 = Buffer & { latin1Slice(start: number, end: number): string };

/**
 * A header byte string as latin1 text. Buffer#latin1Slice is what
 * toString('latin1') ends in; calling it directly skips the encoding dispatch,
 * which shows in the proxy's profile (several calls per response).
 */
export function latin1(b: Buffer | string): string {
  return typeof b === 'string' ? b : (b as Latin1).latin1Slice(0, b.length);
}

/** Parses undici's raw response headers (Buffer pairs) into a lower-case base object. */
export function parseRawHeaders(raw: readonly Buffer[] | readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = latin1(raw[i]!).toLowerCase();
    const value = latin1(raw[i + 1]!);
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [prev, value];
  }
  return out;
}
