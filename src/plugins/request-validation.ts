/**
 * request-validation (APISIX priority 2800): checks the request's headers and
 * body against JSON schemas from the conf before anything else sees them
 * (apisix/plugins/request-validation.lua). The schemas are compiled once per
 * conf; a request costs one validation per schema.
 *
 * The body is read whole (up to max_req_body_size) and parsed as a form when
 * its Content-Type says so, as JSON otherwise. A JSON body with a repeated
 * key is refused, and the JSON the upstream gets is the one that was checked,
 * re-encoded, as APISIX does (its CVE-2022-25757: a validator and an
 * upstream reading different values from one body).
 */
import { compileUserSchema, decodeQueryComponent, definePlugin, type PluginExit, type RequestContext } from '../core/plugin/index.js';
import { parseStrictJson } from './request-validation/strict-json.js';

export const schema = {
  type: 'object',
  properties: {
    header_schema: { type: 'object' },
    body_schema: { type: 'object' },
    max_req_body_size: { type: 'integer', minimum: 1, default: 67108864 },
    rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 400 },
    rejected_msg: { type: 'string', minLength: 1, maxLength: 256 },
  },
  anyOf: [{ required: ['header_schema'] }, { required: ['body_schema'] }],
};

export interface RequestValidationConf {
  header_schema?: Record<string, unknown>;
  body_schema?: Record<string, unknown>;
  max_req_body_size: number;
  rejected_code: number;
  rejected_msg?: string;
}

type Check = (value: unknown) => string | undefined;

interface Compiled {
  readonly headers: Check | undefined;
  readonly body: Check | undefined;
  readonly maxBody: number;
  readonly code: number;
  readonly msg: string | undefined;
  /** The answer when rejected_msg is set: the same for every failure. */
  readonly fixed: PluginExit | undefined;
}

function schemaError(field: string, s: Record<string, unknown> | undefined): string | undefined {
  if (s === undefined) return undefined;
  try {
    compileUserSchema(s);
    return undefined;
  } catch (err) {
    return `invalid ${field}: ${(err as Error).message}`;
  }
}

function check(conf: RequestValidationConf): string | undefined {
  return schemaError('body_schema', conf.body_schema) ?? schemaError('header_schema', conf.header_schema);
}

function compile(conf: RequestValidationConf): Compiled {
  const msg = conf.rejected_msg;
  return {
    headers: conf.header_schema === undefined ? undefined : compileUserSchema(conf.header_schema),
    body: conf.body_schema === undefined ? undefined : compileUserSchema(conf.body_schema),
    maxBody: conf.max_req_body_size,
    code: conf.rejected_code,
    msg,
    fixed: msg === undefined ? undefined : Object.freeze({ status: conf.rejected_code, body: msg }),
  };
}

/** Header names match in any case, as nginx's header table answers them; Node's names are lower-case. */
const CASELESS: ProxyHandler<Readonly<Record<string, unknown>>> = {
  get: (t, p) => (typeof p === 'string' ? t[p.toLowerCase()] : undefined),
  has: (t, p) => typeof p === 'string' && p.toLowerCase() in t,
};

/**
 * ngx.decode_args(body, 0): every pair, a repeated name becoming a list and a
 * name without `=` reading `true`.
 */
function decodeForm(body: string): Record<string, string | boolean | (string | boolean)[]> {
  const out: Record<string, string | boolean | (string | boolean)[]> = Object.create(null) as Record<string, never>;
  for (const pair of body.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = decodeQueryComponent(eq < 0 ? pair : pair.slice(0, eq));
    if (name === '') continue;
    const value = eq < 0 ? true : decodeQueryComponent(pair.slice(eq + 1));
    const prior = out[name];
    out[name] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value];
  }
  return out;
}

function reject(c: Compiled, err: string | undefined): PluginExit {
  return c.fixed ?? (err === undefined ? { status: c.code } : { status: c.code, body: err });
}

async function checkBody(c: Compiled, check: Check, ctx: RequestContext): Promise<PluginExit | void> {
  const body = await ctx.readBody(c.maxBody);
  // APISIX answers a missing or unreadable body with rejected_msg alone.
  if (!Buffer.isBuffer(body) || body.length === 0) return c.fixed ?? { status: c.code };
  // Of two Content-Type lines Node keeps the first, and once the body is read the upstream gets the parsed header
  // set, so the upstream parses by the same Content-Type as was checked (APISIX refuses the pair outright).
  const type = ctx.requestHeader('content-type');
  let value: unknown;
  const form = type !== undefined && type.toLowerCase().startsWith('application/x-www-form-urlencoded');
  if (form) value = decodeForm(body.toString('latin1'));
  else {
    const parsed = parseStrictJson(body.toString('utf8'));
    if (!parsed.ok) return reject(c, parsed.error);
    value = parsed.value;
  }
  const err = check(value);
  if (err !== undefined) return reject(c, err);
  if (!form) ctx.upstreamRequest.body = Buffer.from(JSON.stringify(value), 'utf8');
}

function rewrite(c: Compiled, ctx: RequestContext): PluginExit | void | Promise<PluginExit | void> {
  if (c.headers !== undefined) {
    const err = c.headers(new Proxy(ctx.requestHeaders(), CASELESS));
    if (err !== undefined) return reject(c, err);
  }
  if (c.body !== undefined) return checkBody(c, c.body, ctx);
}

export default definePlugin({
  name: 'request-validation',
  priority: 2800,
  version: '0.1',
  schema,
  check,
  compile,
  rewrite,
});
