/**
 * What plugins share for writing values with variables: APISIX's
 * core.utils.resolve_var templates and its PCRE regexes with `$1`
 * replacements. Offered by the core so plugins never import each other.
 */
import type { Vars } from './ctx.js';

// Templates: APISIX's core.utils.resolve_var (`$name`, `${name}`,
// `${name ?? default}`) and resolve_var_with_captures (`$1`, `${1}`), parsed
// once at config-change time into literal/variable pieces.

export type Piece = string | { v: string; def?: string } | { cap: number };

export interface Template {
  /** True when the template has no `$` references and `text` is the value. */
  readonly constant: boolean;
  readonly text: string;
  readonly pieces: readonly Piece[];
}

// Same as APISIX: (?<!\\)\$(\{\s*([^}]+?)\s*\}|([\w\.]+)); digits become regex captures.
const VAR_RE = /(?<!\\)\$(?:\{\s*([^}]+?)\s*\}|([\w.]+))/g;

export function compileTemplate(tpl: string, withCaptures = false): Template {
  if (!tpl.includes('$')) return { constant: true, text: tpl, pieces: [tpl] };
  const pieces: Piece[] = [];
  let last = 0;
  for (const m of tpl.matchAll(VAR_RE)) {
    if (m.index > last) pieces.push(tpl.slice(last, m.index));
    const name = (m[1] ?? m[2]) as string;
    if (withCaptures && /^\d+$/.test(name)) {
      pieces.push({ cap: Number(name) });
    } else {
      const split = name.split(/\s*\?\?\s*/);
      pieces.push(split.length > 1 ? { v: split[0] as string, def: split[1] } : { v: name });
    }
    last = m.index + m[0].length;
  }
  if (last < tpl.length) pieces.push(tpl.slice(last));
  return { constant: false, text: tpl, pieces };
}

/** Unknown variables read as '' (APISIX). `escape` is applied to resolved values only. */
export function renderTemplate(
  t: Template,
  vars: Vars,
  captures?: RegExpMatchArray | null,
  escape?: (s: string) => string,
): string {
  if (t.constant) return t.text;
  let out = '';
  for (const p of t.pieces) {
    if (typeof p === 'string') {
      out += p;
    } else if ('cap' in p) {
      out += captures?.[p.cap] ?? '';
    } else {
      const val = vars.get(p.v) ?? p.def;
      if (val !== undefined) out += escape ? escape(val) : val;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Regexes written for PCRE (ngx.re): JavaScript lacks inline flag groups, so
// a leading `(?i)` becomes the `i` flag; everything else is taken as is.

export function compilePcre(pattern: string, extraFlags = ''): RegExp {
  let flags = extraFlags;
  let src = pattern;
  const lead = /^\(\?([imsx]+)\)/.exec(src);
  if (lead) {
    for (const f of lead[1] as string) if (f !== 'x' && !flags.includes(f)) flags += f;
    src = src.slice(lead[0].length);
  }
  return new RegExp(src, flags);
}

/** ngx.re.sub replacement syntax: `$0`, `$1`, `${1}`, `$$` → a JS replacer's pieces. */
export function compileReplacement(rep: string): Array<string | number> {
  const out: Array<string | number> = [];
  let lit = '';
  for (let i = 0; i < rep.length; i++) {
    const ch = rep[i];
    if (ch !== '$') { lit += ch; continue; }
    const rest = rep.slice(i + 1);
    const m = /^(?:\{(\d+)\}|(\d+))/.exec(rest);
    if (m) {
      if (lit) { out.push(lit); lit = ''; }
      out.push(Number(m[1] ?? m[2]));
      i += m[0].length;
    } else if (rest[0] === '$') {
      lit += '$';
      i++;
    } else {
      throw new Error('invalid capturing variable name');
    }
  }
  if (lit) out.push(lit);
  return out;
}

export function applyReplacement(parts: Array<string | number>, m: RegExpMatchArray | string[]): string {
  let s = '';
  for (const p of parts) s += typeof p === 'number' ? (m[p] ?? '') : p;
  return s;
}
