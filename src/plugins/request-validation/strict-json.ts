/**
 * JSON that means one thing to every reader. Parsers disagree on an object
 * with a key twice (JSON.parse and cjson keep the last, many keep the first),
 * so a validator and the upstream behind it could read different values from
 * the same body: APISIX's CVE-2022-25757. Such a body is refused here, keys
 * compared after unescaping (`"a"` and `"\u0061"` are the same key).
 */

export type StrictJson = { ok: true; value: unknown } | { ok: false; error: string };

export function parseStrictJson(text: string): StrictJson {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
  // Only objects can repeat a key; a body without `{` after the first string needs no scan.
  const dup = text.includes('{') ? duplicateKey(text) : undefined;
  if (dup !== undefined) return { ok: false, error: `duplicate key "${dup}" in JSON object` };
  return { ok: true, value };
}

/**
 * The first key repeated within one object of `text`, which JSON.parse has
 * accepted: a scan over its structure only (strings skipped whole, so a brace
 * inside one counts for nothing), with one key set per open object.
 */
function duplicateKey(text: string): string | undefined {
  const stack: (Set<string> | undefined)[] = [];
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) stack.push(new Set());
    else if (c === 0x5b /* [ */) stack.push(undefined);
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop();
    else if (c === 0x22 /* " */) {
      const start = i;
      let escaped = false;
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) {
          escaped = true;
          i++;
        } else if (d === 0x22) break;
      }
      const keys = stack[stack.length - 1];
      if (keys === undefined) continue;
      let j = i + 1;
      while (j < n && (text.charCodeAt(j) === 0x20 || text.charCodeAt(j) === 0x0a || text.charCodeAt(j) === 0x0d || text.charCodeAt(j) === 0x09)) j++;
      // A string followed by `:` inside an object is a key; any other string there is a value.
      if (text.charCodeAt(j) !== 0x3a /* : */) continue;
      const raw = text.slice(start, i + 1);
      const key = escaped ? (JSON.parse(raw) as string) : raw.slice(1, -1);
      if (keys.has(key)) return key;
      keys.add(key);
    }
  }
  return undefined;
}
