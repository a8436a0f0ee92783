/**
 * /apisix/admin/configs (apisix/admin/standalone.lua, config_validate.lua):
 * - POST /configs/validate, in every mode: checks a whole document without
 *   storing it and answers every problem at once;
 * - in the API-driven standalone mode (role traditional, config_provider
 *   yaml), GET/HEAD/PUT /configs: the whole configuration, replaced at once.
 *   Each `<resource>_conf_version` decides per list: higher rebuilds it, equal
 *   keeps the current one, lower is refused as stale; X-Digest names the
 *   document, and a PUT with the digest already loaded changes nothing (204).
 * Bodies are JSON, or YAML with Content-Type application/yaml (no `#END`: HTTP
 * delivers the whole body).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { PluginRegistry } from '../core/plugin/registry.js';
import {
  CONF_VERSION_SUFFIX,
  METADATA_DIGEST,
  METADATA_LAST_MODIFIED,
  STANDALONE_KEYS,
  documentItems,
  type StandaloneDoc,
} from '../core/store/standalone-doc.js';
import type { StandaloneStore } from '../core/store/standalone.js';
import { validateConfiguration } from './config-validate.js';
import { adminError } from './errors.js';
import { jsonTooDeep, tooDeepMessage, valueTooDeep } from './nesting.js';

/** What the body parser hands these routes: the text, parsed here by its Content-Type. */
export class RawBody {
  constructor(readonly text: string) {}
}

export const CONFIGS_PATH = '/apisix/admin/configs';

export interface ConfigRoutesOptions {
  registry: PluginRegistry;
  /** The API-driven store; without it only POST /configs/validate is served. */
  standalone?: StandaloneStore;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readDocument(req: FastifyRequest): StandaloneDoc {
  const text = req.body instanceof RawBody ? req.body.text : '';
  if (text.trim() === '') throw adminError('invalid request body: empty request body');
  const type = String(req.headers['content-type'] ?? 'application/json');
  if (type.startsWith('application/yaml')) {
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (err) {
      // The yaml parser recurses per flow level: what overflows it is deeper than the limit.
      if ((err as Error).message.includes('Maximum call stack size exceeded')) throw adminError(tooDeepMessage());
      doc = undefined;
    }
    if (!isObject(doc)) throw adminError('invalid request body: invalid yaml request body');
    if (valueTooDeep(doc)) throw adminError(tooDeepMessage());
    return doc;
  }
  if (jsonTooDeep(text)) throw adminError(tooDeepMessage());
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw adminError(`invalid request body: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw adminError('invalid request body: expected a JSON object');
  return doc;
}

export function registerConfigRoutes(app: FastifyInstance, opts: ConfigRoutesOptions): void {
  const { registry, standalone } = opts;

  app.post(`${CONFIGS_PATH}/validate`, async (req, reply) => {
    const issues = await validateConfiguration(readDocument(req), registry);
    if (issues.length > 0) return reply.code(400).send({ error_msg: 'Configuration validation failed', errors: issues });
    return reply.code(200).send({});
  });

  if (!standalone) return;
  /** The document last accepted, with its conf versions and metadata, as GET shows it. */
  let current: StandaloneDoc | undefined;

  const metadata = (reply: FastifyReply): void => {
    if (current?.[METADATA_LAST_MODIFIED] !== undefined) reply.header('x-last-modified', String(current[METADATA_LAST_MODIFIED]));
    if (current?.[METADATA_DIGEST] !== undefined) reply.header('x-digest', String(current[METADATA_DIGEST]));
  };

  app.get(CONFIGS_PATH, async (req, reply) => {
    const doc = current ?? Object.fromEntries(STANDALONE_KEYS.map((k) => [k + CONF_VERSION_SUFFIX, 0]));
    metadata(reply);
    if (String(req.headers.accept ?? '').startsWith('application/yaml')) {
      return reply.code(200).type('application/yaml').serializer((d: unknown) => d as string).send(stringifyYaml(doc));
    }
    return reply.code(200).type('application/json').send(doc);
  });

  app.head(CONFIGS_PATH, async (_req, reply) => {
    metadata(reply);
    return reply.code(200).send();
  });

  app.put(CONFIGS_PATH, async (req, reply) => {
    const digest = req.headers['x-digest'];
    if (digest === undefined) throw adminError('missing digest header');
    const body = readDocument(req);
    if (current !== undefined && current[METADATA_DIGEST] === String(digest)) return reply.code(204).send();

    const next: StandaloneDoc = {};
    for (const key of STANDALONE_KEYS) {
      const versionKey = key + CONF_VERSION_SUFFIX;
      const had = typeof current?.[versionKey] === 'number' ? (current[versionKey] as number) : 0;
      const asked = body[versionKey];
      if (asked !== undefined && typeof asked !== 'number') throw adminError(`${versionKey} must be a number`);
      if (asked !== undefined && asked < had) throw adminError(`${versionKey} must be greater than or equal to (${had})`);
      const version = asked ?? had + 1;
      next[versionKey] = version;
      const items = version === had ? current?.[key] : body[key];
      if (Array.isArray(items) && items.length > 0) next[key] = items;
    }
    // The body as sent is checked, its references against what will be served.
    const issues = await validateConfiguration(body, registry, next);
    if (issues.length > 0) throw adminError(issues[0]!.error);

    standalone.replace(documentItems(next), { honourModifiedIndex: true });
    next[METADATA_LAST_MODIFIED] = Math.floor(Date.now() / 1000);
    next[METADATA_DIGEST] = String(digest);
    current = next;
    metadata(reply);
    return reply.code(202).send();
  });
}
