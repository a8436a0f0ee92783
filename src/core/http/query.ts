/**
 * The one query-string reader, for the `arg_*` variables and for plugins that
 * read or drop an argument (key-auth, jwt-auth). It decodes as
 * `ngx.req.get_uri_args` does (lua-nginx-module's ngx_http_lua_unescape_uri):
 * `+` is a space, `%XX` with two hex digits is that byte, and a `%` not
 * followed by two hex digits is kept as written, so `?apikey=%zz` reads
 * `%zz` and `a+b%zz%41` reads `a b%zzA`.
 */

const VALID_ESCAPES = /(?:%[0-9a-fA-F]{2})+/g;

/** One query key or value, decoded as nginx decodes arguments. */
export function decodeQueryComponent(s: string): string {
  if (s.indexOf('%') === -1 && s.indexOf('+') === -1) return s;
  const plus = s.indexOf('+') === -1 ? s : s.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(plus);
  } catch {
    // A bad escape somewhere: decode each run of good ones and leave the rest as written.
    return plus.replace(VALID_ESCAPES, decodeRun);
  }
}

/** A run of %XX escapes: UTF-8 text when it is, else one character per byte (as the bytes reach a header). */
function decodeRun(run: string): string {
  try {
    return decodeURIComponent(run);
  } catch {
    let out = '';
    for (let i = 0; i < run.length; i += 3) out += String.fromCharCode(parseInt(run.slice(i + 1, i + 3), 16));
    return out;
  }
}

/** First value per name, as APISIX's `arg_*` reads `get_uri_args()[name][1]`; a bare `a` reads as ''. */
export function parseQuery(query: string): Map<string, string> {
  const out = new Map<string, string>();
  if (query === '') return out;
  let start = 0;
  while (start <= query.length) {
    let end = query.indexOf('&', start);
    if (end === -1) end = query.length;
    if (end > start) {
      const eq = query.indexOf('=', start);
      const hasEq = eq !== -1 && eq < end;
      const key = decodeQueryComponent(query.slice(start, hasEq ? eq : end));
      if (key !== '' && !out.has(key)) out.set(key, hasEq ? decodeQueryComponent(query.slice(eq + 1, end)) : '');
    }
    start = end + 1;
  }
  return out;
}

/** The first value of `name` in a raw query string, decoded; undefined when absent. */
export function queryArg(query: string, name: string): string | undefined {
  // Most requests carry no such argument: skip the parse when the name cannot be there as written.
  if (query === '' || (!query.includes(name) && !query.includes('%') && !query.includes('+'))) return undefined;
  return parseQuery(query).get(name);
}

/** `query` without any `name` argument; the other arguments stay as the client wrote them. */
export function withoutArg(query: string, name: string): string {
  return query
    .split('&')
    .filter((part) => {
      const eq = part.indexOf('=');
      return decodeQueryComponent(eq < 0 ? part : part.slice(0, eq)) !== name;
    })
    .join('&');
}
