/**
 * A worked example of an external plugin (docs/plugin-development.md walks
 * through it): API versioning by header.
 *
 * - `rewrite`: reads the client's `accept-version` (or the route's default)
 *   and passes it to the upstream as `x-api-version`;
 * - `access`: refuses a version the route does not serve, with 400 and
 *   APISIX's `{"error_msg": ...}` body;
 * - `header_filter`: tells the client which version answered;
 * - `compile`: turns the conf's list into a Set once per config change;
 * - plugin metadata (`PUT /apisix/admin/plugin_metadata/api-version`) sets
 *   the response header's name for every route.
 *
 * Load it with `plugin_dirs: [examples/plugins]` and `plugins: [..., api-version]`.
 */
import { dataKey, definePlugin, type RequestContext } from 'portico/plugin';

interface Conf {
  /** Versions this route serves. */
  versions: string[];
  /** Used when the client sends no accept-version. */
  default: string;
}

interface Compiled {
  readonly versions: ReadonlySet<string>;
  readonly default: string;
}

interface Metadata {
  response_header?: string;
}

/** The version chosen in rewrite, read again in access and header_filter. */
const CHOSEN = dataKey<string>('api_version');

export default definePlugin<Conf, Compiled>({
  name: 'api-version',
  version: '0.1',
  // After the auth plugins (2500s), before proxy-rewrite (1008).
  priority: 1100,
  schema: {
    type: 'object',
    properties: {
      versions: { type: 'array', items: { type: 'string', pattern: '^v[0-9]+$' }, minItems: 1, uniqueItems: true },
      default: { type: 'string', pattern: '^v[0-9]+$' },
    },
    required: ['versions', 'default'],
  },
  metadata_schema: {
    type: 'object',
    properties: { response_header: { type: 'string', minLength: 1, default: 'x-api-version' } },
  },

  // Runs when the Admin API checks a write, after the schema; `type` says which schema (route, consumer, metadata).
  check(conf, type) {
    if (type !== 'route') return undefined;
    return conf.versions.includes(conf.default) ? undefined : `default ${conf.default} is not one of versions`;
  },

  compile(conf) {
    return { versions: new Set(conf.versions), default: conf.default };
  },

  rewrite(conf: Compiled, ctx: RequestContext) {
    const version = ctx.requestHeader('accept-version') ?? conf.default;
    ctx.setData(CHOSEN, version);
    ctx.upstreamRequest.headers.set('x-api-version', version);
  },

  access(conf: Compiled, ctx: RequestContext) {
    const version = ctx.getData(CHOSEN)!;
    if (!conf.versions.has(version)) {
      return { status: 400, body: { error_msg: `unsupported API version ${version}, this route serves ${[...conf.versions].join(', ')}` } };
    }
  },

  header_filter(_conf: Compiled, ctx: RequestContext) {
    const version = ctx.getData(CHOSEN);
    if (version === undefined) return;
    const header = ctx.pluginMetadata<Metadata>('api-version')?.response_header ?? 'x-api-version';
    ctx.response.headers.set(header, version);
  },
});
