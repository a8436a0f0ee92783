/**
 * ajv instances and schema compilation, shared by the core schemas and the
 * plugin registry. Everything is compiled once (at start-up or plugin load),
 * never per request.
 *
 * APISIX's jsonschema library checks an object's own keywords (properties,
 * required, additionalProperties) before allOf, then anyOf, oneOf and not;
 * ajv runs the composite keywords first. With allErrors off only the first
 * failure is reported, so to name the same failure as APISIX we compile a
 * re-ordered copy: a node that mixes both kinds becomes
 * `{allOf: [own keywords, {allOf}, {anyOf}, {oneOf}, {not}, {if...}], x-seq: true}`.
 * The translator (errors.ts) walks that copy and treats `x-seq` allOfs as
 * transparent. The original, APISIX-shaped schema is what the Admin API serves.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { JsonSchema } from './types.js';
import { hasSecretRef } from './secret-ref.js';
import { formatErrors } from './validation-messages.js';

// ajv-formats is CommonJS; under NodeNext its default import is the module object.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ??
  addFormatsModule) as unknown as (ajv: Ajv, formats: string[]) => Ajv;

export const SEQ = 'x-seq';

function makeAjv(useDefaults: boolean): Ajv {
  const ajv = new Ajv({
    allErrors: false,
    // strict: false below would also turn this off, and ajv would then pass Infinity as a number.
    strictNumbers: true,
    // APISIX's schemas are written for a draft-4-ish validator (uniqueItems on
    // a string item, type beside anyOf); strict mode would reject them.
    strict: false,
    // PCRE semantics, not JS unicode-mode syntax, for patterns such as [0-9-_.].
    unicodeRegExp: false,
    // ajv writes each default as a fresh literal, so two confs never share one array.
    useDefaults,
  });
  addFormats(ajv, ['ipv4', 'ipv6']);
  ajv.addKeyword({ keyword: SEQ, schemaType: 'boolean' });
  ajv.addKeyword({ keyword: 'x-secret-ref', schemaType: 'boolean' });
  return ajv;
}

const strictAjv = makeAjv(false);
const defaultsAjv = makeAjv(true);

const COMPOSITES = ['allOf', 'anyOf', 'oneOf', 'not'] as const;
const NON_VALIDATING = new Set(['description', 'title', '$comment', 'default', 'examples', '$id', '$schema']);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function mapValues(o: unknown): unknown {
  if (!isObject(o)) return o;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[k] = sequence(v);
  return out;
}

/** The re-ordered copy described above; pure, the input is not touched. */
export function sequence(schema: unknown): unknown {
  if (!isObject(schema)) return schema;
  const node: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    switch (k) {
      case 'properties':
      case 'patternProperties':
      case 'dependencies':
        node[k] = mapValues(v);
        break;
      case 'allOf':
      case 'anyOf':
      case 'oneOf':
        node[k] = Array.isArray(v) ? v.map(sequence) : v;
        break;
      case 'items':
      case 'additionalProperties':
      case 'not':
      case 'if':
      case 'then':
      case 'else':
        node[k] = sequence(v);
        break;
      default:
        node[k] = v;
    }
  }
  const hasComposite = COMPOSITES.some((k) => k in node) || 'if' in node;
  const own = Object.keys(node).filter(
    (k) => !NON_VALIDATING.has(k) && !COMPOSITES.includes(k as (typeof COMPOSITES)[number]) && k !== 'if' && k !== 'then' && k !== 'else',
  );
  if (!hasComposite || own.length === 0) return node;

  const base: Record<string, unknown> = {};
  const outer: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    if (COMPOSITES.includes(k as (typeof COMPOSITES)[number]) || k === 'if' || k === 'then' || k === 'else') continue;
    // `default` must stay where ajv's useDefaults looks for it: on the property's own schema.
    if (k === 'default' || k === 'description' || k === 'title') outer[k] = v;
    else base[k] = v;
  }
  const steps: unknown[] = [base];
  for (const k of COMPOSITES) if (k in node) steps.push({ [k]: node[k] });
  if ('if' in node) {
    const cond: Record<string, unknown> = { if: node.if };
    if ('then' in node) cond.then = node.then;
    if ('else' in node) cond.else = node.else;
    steps.push(cond);
  }
  return { ...outer, allOf: steps, [SEQ]: true };
}

export interface CompiledSchema {
  /** The APISIX-shaped schema, as served by the Admin API. */
  readonly schema: JsonSchema;
  /** Schema-only check; resolves to the APISIX-style message, or undefined when valid. */
  check(value: unknown): string | undefined;
  /** Fills defaults into `value` in place (the data plane's view); same result as check. */
  checkWithDefaults(value: unknown): string | undefined;
  /** Compiles the checking variant now, if it is not yet (a lazily compiled schema; throws if the schema is broken). */
  warm(): void;
}

/** Lua's tostring() of a non-finite number, which is how APISIX would print it. */
function luaNumber(n: number): string {
  return Number.isNaN(n) ? 'nan' : n > 0 ? 'inf' : '-inf';
}

/**
 * The first non-finite number anywhere in `value`, as an APISIX-style message
 * naming its place; undefined when there is none. JSON reads `1e309` as
 * Infinity and writes it back as `null`, so such a value would be stored as
 * something else than was checked: it is refused wherever it stands, in a
 * field the schema types or in one it leaves open (`metadata`, `vars`).
 */
export function nonFiniteNumber(value: unknown): string | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : `expected a finite number, got ${luaNumber(value)}`;
  if (typeof value !== 'object' || value === null) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const err = nonFiniteNumber(value[i]);
      if (err !== undefined) return `failed to validate item ${i + 1}: ${err}`;
    }
    return undefined;
  }
  for (const [k, v] of Object.entries(value)) {
    const err = nonFiniteNumber(v);
    if (err !== undefined) return `property "${k}" validation failed: ${err}`;
  }
  return undefined;
}

function run(validate: ValidateFunction, ordered: unknown, value: unknown): string | undefined {
  const bad = nonFiniteNumber(value);
  if (bad !== undefined) return bad;
  if (validate(value)) return undefined;
  return formatErrors((validate.errors ?? []) as ErrorObject[], ordered, value);
}

const SECRET_REF_SCHEMA = { type: 'string', pattern: '^(\\$secret://|\\$[eE][nN][vV]://)' };
const SUBSCHEMA_MAPS = new Set(['properties', 'patternProperties', 'dependencies', 'definitions', '$defs']);
const SUBSCHEMAS = new Set(['items', 'additionalItems', 'additionalProperties', 'contains', 'propertyNames', 'not', 'if', 'then', 'else']);
const SUBSCHEMA_LISTS = new Set(['allOf', 'anyOf', 'oneOf']);

/** Marks a sub-schema whose value may be a secret reference (see SecretRefScope). */
const SECRET_REF_MARK = 'x-secret-ref';

/**
 * A copy of `node` in which string-typed (or untyped, string-constrained)
 * schemas also accept a secret reference, as APISIX's validator skips such
 * values (secret.is_secret_ref as jsonschema's skip_validation): the value is
 * only known when it is resolved. With `everywhere` off only the schemas
 * marked by markSecretRefFields are widened. Defaults stay where ajv applies them.
 */
function allowSecretRefs(node: unknown, everywhere: boolean): unknown {
  if (Array.isArray(node)) return node.map((n) => allowSecretRefs(n, everywhere));
  if (!isObject(node)) return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    if (SUBSCHEMA_MAPS.has(k) && isObject(v)) out[k] = Object.fromEntries(Object.entries(v).map(([name, sub]) => [name, allowSecretRefs(sub, everywhere)]));
    else if (SUBSCHEMAS.has(k)) out[k] = allowSecretRefs(v, everywhere);
    else if (SUBSCHEMA_LISTS.has(k) && Array.isArray(v)) out[k] = v.map((n) => allowSecretRefs(n, everywhere));
    else if (k !== SECRET_REF_MARK) out[k] = v;
  }
  if (!everywhere && node[SECRET_REF_MARK] !== true) return out;
  const stringy = out.type === 'string' || (out.type === undefined && ('pattern' in out || 'enum' in out || 'format' in out || 'minLength' in out || 'maxLength' in out));
  if (!stringy) return out;
  const { default: def, ...rest } = out;
  return def === undefined ? { anyOf: [SECRET_REF_SCHEMA, rest] } : { default: def, anyOf: [SECRET_REF_SCHEMA, rest] };
}

/**
 * Where a value may be a secret reference: `everywhere` for plugin confs
 * (APISIX resolves any string field of one), or the property paths of the
 * core fields APISIX documents as resolved (an ssl's `cert`, `key`, `certs`,
 * `keys`); `items` in a path steps into an array's items. Anywhere else a
 * `$env://...` string is checked as written.
 */
export type SecretRefScope = 'everywhere' | ReadonlyArray<readonly string[]>;

/** A copy of `schema` with the sub-schemas at `paths` marked; the served schema stays unmarked. */
function markSecretRefFields(schema: JsonSchema, paths: ReadonlyArray<readonly string[]>): JsonSchema {
  const mark = (node: unknown, path: readonly string[]): unknown => {
    if (!isObject(node)) return node;
    if (path.length === 0) return { ...node, [SECRET_REF_MARK]: true };
    const [head, ...rest] = path as [string, ...string[]];
    if (head === 'items') return { ...node, items: mark(node.items, rest) };
    const props = isObject(node.properties) ? node.properties : {};
    if (!(head in props)) throw new Error(`secret reference path: no property "${head}" in the schema`);
    return { ...node, properties: { ...props, [head]: mark(props[head], rest) } };
  };
  let out: unknown = schema;
  for (const p of paths) out = mark(out, p);
  return out as JsonSchema;
}

/**
 * Compiles the checking variant now, so a broken schema fails at load time
 * (or, with `lazy`, on first use or warm(): start-up compiles only what the
 * process checks, about a third of a start's CPU otherwise), and the
 * defaults-filling variant on first use (only the data plane needs it). A
 * value that fails and holds a secret reference is checked again by a variant
 * that lets references stand for strings (compiled on first need); when that
 * passes too, the value is valid. Messages always come from the strict
 * variant, so values without references are judged exactly as before.
 */
export function compileSchema(schema: JsonSchema, secretRefs: SecretRefScope = 'everywhere', opts: { lazy?: boolean } = {}): CompiledSchema {
  const everywhere = secretRefs === 'everywhere';
  const refsPossible = everywhere || secretRefs.length > 0;
  let ordered: unknown;
  let strict: ValidateFunction | undefined;
  let withDefaults: ValidateFunction | undefined;
  let refsAllowed: ValidateFunction | undefined;
  let refsWithDefaults: ValidateFunction | undefined;
  const seq = (): unknown => (ordered ??= sequence(everywhere ? schema : markSecretRefFields(schema, secretRefs)));
  const checking = (): ValidateFunction => (strict ??= strictAjv.compile(seq() as JsonSchema));
  if (opts.lazy !== true) checking();
  return {
    schema,
    check(value) {
      const err = run(checking(), ordered, value);
      if (err === undefined || !refsPossible || !hasSecretRef(value)) return err;
      refsAllowed ??= strictAjv.compile(allowSecretRefs(ordered, everywhere) as JsonSchema);
      return refsAllowed(value) ? undefined : err;
    },
    checkWithDefaults(value) {
      withDefaults ??= defaultsAjv.compile(seq() as JsonSchema);
      const err = run(withDefaults, ordered, value);
      if (err === undefined || !refsPossible || !hasSecretRef(value)) return err;
      refsWithDefaults ??= defaultsAjv.compile(allowSecretRefs(ordered, everywhere) as JsonSchema);
      return refsWithDefaults(value) ? undefined : err;
    },
    warm() {
      checking();
    },
  };
}

/**
 * A schema a user wrote inside a conf (request-validation's header_schema and
 * body_schema), checked as APISIX's core.schema.check checks it, messages
 * included. It gets an ajv instance of its own: a shared one keeps every
 * schema it ever compiled, so each config change would leak one; this one is
 * dropped with the conf. Throws when the schema itself is invalid.
 */
export function compileUserSchema(schema: JsonSchema): (value: unknown) => string | undefined {
  const ordered = sequence(schema);
  const validate = makeAjv(false).compile(ordered as JsonSchema);
  return (value) => run(validate, ordered, value);
}
