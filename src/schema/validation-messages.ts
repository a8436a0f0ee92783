/**
 * A message translator, not an error catalogue: turns ajv's first error into
 * the message APISIX's jsonschema library (api7/jsonschema) would give, as
 * APISIX's t/admin/*.t tests expect it, e.g.
 *   property "methods" validation failed: failed to validate item 1: matches none of the enum values
 * so clients and scripts written against APISIX see the same text.
 *
 * Where APISIX's text names nothing ("value should match only one schema, but
 * matches none"), the message names the missing or conflicting keys and the
 * JSON pointer of the object, e.g. `only one of "upstream" and "upstream_id" is allowed (at /)`.
 *
 * With allErrors off, ajv stops at the first failing keyword; errors pushed by
 * the branches of a failed anyOf/oneOf come before it, so the last error is
 * the decisive one and its schemaPath leads from the root to the keyword.
 */
import type { ErrorObject } from 'ajv';

const SEQ = 'x-seq';

type Node = Record<string, unknown>;

function isObject(v: unknown): v is Node {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Lua's %q, which APISIX uses to quote patterns and values: backslashes and quotes escaped. */
export function luaQuote(s: string): string {
  return (
    '"' +
    s.replace(/[\\"\n\r\0]/g, (c) => (c === '\n' ? '\\\n' : c === '\r' ? '\\r' : c === '\0' ? '\\0' : '\\' + c)) +
    '"'
  );
}

/** Type names as Lua reports them: objects and arrays are both tables. */
export function luaType(v: unknown): string {
  if (v === null) return 'userdata';
  if (Array.isArray(v)) return 'table';
  const t = typeof v;
  return t === 'object' ? 'table' : t;
}

function decodeSegment(s: string): string {
  let d = s;
  try {
    d = decodeURIComponent(s);
  } catch {
    // not percent-encoded
  }
  return d.replace(/~1/g, '/').replace(/~0/g, '~');
}

function splitPointer(p: string): string[] {
  if (p === '' || p === '#') return [];
  return p.replace(/^#/, '').split('/').slice(1).map(decodeSegment);
}

function quoteKeys(keys: readonly string[]): string[] {
  return keys.map((k) => `"${k}"`);
}

/** The keys a branch requires when it is nothing but `required` (APISIX's way to spell key combinations). */
function requiredOnly(branch: unknown): string[] | undefined {
  if (!isObject(branch)) return undefined;
  const keys = Object.keys(branch).filter((k) => k !== 'description' && k !== 'title');
  if (keys.length === 1 && keys[0] === 'required' && Array.isArray(branch.required)) return branch.required as string[];
  return undefined;
}

/** `{not: {anyOf: [{required:[a]}, {required:[b]}]}}`: "none of a, b". */
function noneOf(branch: unknown): string[] | undefined {
  if (!isObject(branch) || !isObject(branch.not)) return undefined;
  const inner = branch.not;
  const single = requiredOnly(inner);
  if (single) return single;
  if (!Array.isArray(inner.anyOf)) return undefined;
  const keys: string[] = [];
  for (const b of inner.anyOf) {
    const r = requiredOnly(b);
    if (!r) return undefined;
    keys.push(...r);
  }
  return keys;
}

function has(data: unknown, key: string): boolean {
  return isObject(data) && data[key] !== undefined;
}

function alternative(keys: string[]): string {
  const q = quoteKeys(keys);
  return q.length === 1 ? (q[0] as string) : `(${q.join(' and ')})`;
}

/**
 * A oneOf over key combinations: uri/uris, host/hosts, nodes or
 * service_name+discovery_type. Undefined when the branches are not of that shape.
 */
function describeOneOf(branches: unknown[], data: unknown, passing: unknown): string | undefined {
  const positive: string[][] = [];
  let allowNone = false;
  for (const b of branches) {
    const r = requiredOnly(b);
    if (r) {
      positive.push(r);
      continue;
    }
    if (noneOf(b)) {
      allowNone = true;
      continue;
    }
    return undefined;
  }
  if (Array.isArray(passing) && passing.length >= 2) {
    const keys = [...new Set(positive.flat())].filter((k) => has(data, k));
    const groups = positive.filter((g) => g.every((k) => has(data, k)));
    if (groups.length >= 2 && groups.some((g) => g.length > 1)) {
      return `only one of ${groups.map(alternative).join(' and ')} is allowed`;
    }
    return `only one of ${quoteKeys(keys).join(' and ')} is allowed`;
  }
  if (allowNone) return undefined; // "none" always passes; a oneOf of this shape only fails by conflict
  // Nothing matched: if one combination is half there, name what it lacks.
  const partial = positive.filter((g) => g.length > 1 && g.some((k) => has(data, k)));
  if (partial.length === 1) {
    const g = partial[0] as string[];
    const missing = g.filter((k) => !has(data, k));
    const present = g.filter((k) => has(data, k));
    return `${quoteKeys(missing).join(' and ')} is required when ${quoteKeys(present).join(' and ')} is set`;
  }
  return `${positive.map(alternative).join(' or ')} is required`;
}

function describeNot(inner: unknown, data: unknown): string | undefined {
  const clauses: string[][] = [];
  const single = requiredOnly(inner);
  if (single) clauses.push(single);
  else if (isObject(inner) && Array.isArray(inner.anyOf)) {
    for (const b of inner.anyOf) {
      const r = requiredOnly(b);
      if (!r) return undefined;
      clauses.push(r);
    }
  } else return undefined;
  const hit = clauses.find((c) => c.every((k) => has(data, k)));
  if (!hit) return undefined;
  return `only one of ${quoteKeys(hit).join(' and ')} is allowed`;
}

function num(v: unknown): string {
  return String(v);
}

interface Terminal {
  text: string;
  /** Portico's clearer wording: drop `allOf n failed:` and add the pointer. */
  improved?: boolean;
}

function terminal(err: ErrorObject, node: Node, data: unknown, underDependency: boolean): Terminal {
  const p = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'required':
      return { text: `property "${String(p.missingProperty)}" is required` };
    case 'additionalProperties':
      return { text: `additional properties forbidden, found ${String(p.additionalProperty)}` };
    case 'type':
      return { text: `wrong type: expected ${String(p.type).replace(/,/g, ' or ')}, got ${luaType(data)}` };
    case 'enum':
    case 'const':
      return { text: 'matches none of the enum values' };
    case 'pattern':
      return { text: `failed to match pattern ${luaQuote(String(p.pattern))} with ${luaQuote(String(data))}` };
    case 'minLength':
      return { text: `string too short, expected at least ${num(p.limit)}, got ${[...String(data)].length}` };
    case 'maxLength':
      return { text: `string too long, expected at most ${num(p.limit)}, got ${[...String(data)].length}` };
    case 'minimum':
      return { text: `expected ${num(data)} to be at least ${num(p.limit)}` };
    case 'maximum':
      return { text: `expected ${num(data)} to be at most ${num(p.limit)}` };
    case 'exclusiveMinimum':
      return { text: `expected ${num(data)} to be greater than ${num(p.limit)}` };
    case 'exclusiveMaximum':
      return { text: `expected ${num(data)} to be smaller than ${num(p.limit)}` };
    case 'multipleOf':
      return { text: `expected ${num(data)} to be a multiple of ${num(p.multipleOf)}` };
    case 'minItems':
      return { text: `expect array to have at least ${num(p.limit)} items` };
    case 'maxItems':
      return { text: `expect array to have at most ${num(p.limit)} items` };
    case 'uniqueItems': {
      const a = Number(p.i);
      const b = Number(p.j);
      return { text: `expected unique items but items ${Math.min(a, b) + 1} and ${Math.max(a, b) + 1} are equal` };
    }
    case 'minProperties':
      return { text: `expect object to have at least ${num(p.limit)} properties` };
    case 'maxProperties':
      return { text: `expect object to have at most ${num(p.limit)} properties` };
    case 'format':
      return { text: `expect valid ${String(p.format)} address but got: ${String(data)}` };
    case 'anyOf': {
      const branches = Array.isArray(node.anyOf) ? node.anyOf : [];
      const lists = branches
        .map((b) => (isObject(b) && Array.isArray(b.required) ? JSON.stringify(b.required) : undefined))
        .filter((s): s is string => s !== undefined);
      return { text: 'object matches none of the required' + (lists.length ? ': ' + lists.join(' or ') : '') };
    }
    case 'oneOf': {
      const branches = Array.isArray(node.oneOf) ? node.oneOf : [];
      const better = describeOneOf(branches, data, p.passingSchemas);
      if (better) return { text: better, improved: true };
      if (Array.isArray(p.passingSchemas) && p.passingSchemas.length >= 2) {
        const [a, b] = p.passingSchemas as number[];
        return { text: `value should match only one schema, but matches both schemas ${Number(a) + 1} and ${Number(b) + 1}` };
      }
      return { text: 'value should match only one schema, but matches none' };
    }
    case 'not': {
      const better = underDependency ? undefined : describeNot(node.not, data);
      if (better) return { text: better, improved: true };
      return { text: "value wasn't supposed to match schema" };
    }
    case 'if':
      return { text: `${String(p.failingKeyword ?? 'then')} clause did not match` };
    case 'dependencies':
      // Property dependencies (array form): jsonschema's wording.
      return { text: `property "${String(p.missingProperty)}" is required when ${String(p.property)} is set` };
    default:
      return { text: err.message ?? 'invalid value' };
  }
}

type Prefix = { text: string; allOf?: boolean };

/**
 * The APISIX-style message for a failed validation. `schema` must be the
 * schema that was compiled (the re-ordered copy), `data` the validated value.
 */
export function formatErrors(errors: readonly ErrorObject[], schema: unknown, data: unknown): string {
  const err = errors[errors.length - 1];
  if (!err) return 'invalid configuration';
  const segs = splitPointer(err.schemaPath);
  segs.pop(); // the failing keyword itself
  const inst = splitPointer(err.instancePath);
  let ii = 0;
  let node: unknown = schema;
  let value: unknown = data;
  let underDependency = false;
  const prefixes: Prefix[] = [];
  const step = (key: string | undefined): void => {
    ii++;
    value = isObject(value) || Array.isArray(value) ? (value as Record<string, unknown>)[key ?? ''] : undefined;
  };

  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i] as string;
    const n = isObject(node) ? node : {};
    switch (seg) {
      case 'properties': {
        const name = segs[++i] as string;
        node = (n.properties as Node | undefined)?.[name];
        step(inst[ii]);
        prefixes.push({ text: `property "${name}" validation failed: ` });
        break;
      }
      case 'patternProperties': {
        const pat = segs[++i] as string;
        node = (n.patternProperties as Node | undefined)?.[pat];
        const key = inst[ii] ?? '';
        step(key);
        prefixes.push({ text: `failed to validate ${key} (matching ${luaQuote(pat)}): ` });
        break;
      }
      case 'items': {
        node = n.items;
        const idx = inst[ii] ?? '0';
        step(idx);
        prefixes.push({ text: `failed to validate item ${Number(idx) + 1}: ` });
        break;
      }
      case 'additionalProperties': {
        node = n.additionalProperties;
        const key = inst[ii] ?? '';
        step(key);
        prefixes.push({ text: `failed to validate additional property ${key}: ` });
        break;
      }
      case 'allOf': {
        const k = Number(segs[++i]);
        const seq = n[SEQ] === true;
        node = (n.allOf as unknown[] | undefined)?.[k];
        if (!seq) prefixes.push({ text: `allOf ${k + 1} failed: `, allOf: true });
        break;
      }
      case 'anyOf':
      case 'oneOf': {
        const k = Number(segs[++i]);
        node = (n[seg] as unknown[] | undefined)?.[k];
        break;
      }
      case 'dependencies': {
        const prop = segs[++i] as string;
        node = (n.dependencies as Node | undefined)?.[prop];
        underDependency = true;
        prefixes.push({ text: `failed to validate dependent schema for "${prop}": ` });
        break;
      }
      case 'then':
      case 'else':
        // ajv stops inside the clause without an `if` error; jsonschema reports the clause alone.
        return prefixes.map((p) => p.text).join('') + `${seg} clause did not match`;
      case 'not':
      case 'if':
        node = n[seg];
        break;
      default:
        // A path we do not model: stop walking, the keyword message still applies.
        i = segs.length;
    }
  }

  const t = terminal(err, isObject(node) ? node : {}, value, underDependency);
  const kept = t.improved ? prefixes.filter((p) => !p.allOf) : prefixes;
  const text = kept.map((p) => p.text).join('') + t.text;
  return t.improved ? `${text} (at ${err.instancePath || '/'})` : text;
}
