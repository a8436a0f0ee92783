/**
 * How deeply an Admin API body may nest objects and arrays. Validation, merging
 * and encryption walk a body recursively, and a body a few thousand levels deep
 * (well under max_body_size) exhausted the stack: a 500. No real configuration
 * comes near the limit (a `vars` expression or a plugin conf nests a handful of
 * levels); APISIX's JSON decoder (lua-cjson) stops at 1000, Portico lower,
 * where every walk is safe.
 */
export const MAX_BODY_DEPTH = 128;

export function tooDeepMessage(): string {
  return `invalid request body: objects and arrays nested more than ${MAX_BODY_DEPTH} levels deep (the limit is ${MAX_BODY_DEPTH})`;
}

/** Whether JSON text opens more than `limit` objects/arrays inside one another; one pass, strings skipped. */
export function jsonTooDeep(text: string, limit = MAX_BODY_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > limit) return true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
  }
  return false;
}

/** The same for a value already parsed (a YAML document), without recursion. */
export function valueTooDeep(value: unknown, limit = MAX_BODY_DEPTH): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d + 1 > limit) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)) stack.push([child, d + 1]);
  }
  return false;
}
