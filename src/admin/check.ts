/**
 * The Admin API's write checks, in the order of APISIX's admin modules
 * (apisix/admin/{routes,services,upstreams,consumers,...}.lua), so the same
 * bad input gets the same first complaint: conflicting keys, the resource's
 * schema (src/schema), upstream extras, references, plugin confs, `vars`.
 */
import type { ResourceName } from '../core/model.js';
import type { PluginRegistry } from '../core/plugin/registry.js';
import type { SchemaType } from '../schema/types.js';
import { compileExpr } from '../core/match/expr.js';
import { decryptPluginFields } from '../core/secrets/encryption.js';
import { boundsViolation, compiledSchema, schemaOf, validateSchemaOnly } from '../schema/index.js';
import { checkUpstream } from '../schema/upstream-check.js';
import { checkSsl } from '../schema/ssl-check.js';
import { duplicateConsumerKey, type KeyOwner } from '../schema/consumer-keys.js';
import { checkProtoContent } from '../schema/proto-content.js';

export interface CheckEnv {
  registry: PluginRegistry;
  /** Does the referenced object exist in the store? (`upstreams`, '1') */
  exists(resource: ResourceName, id: string): Promise<boolean>;
  /** Stored values of a resource, for cross-object rules (duplicate consumer keys, global rule conflicts). */
  all(resource: ResourceName): Promise<Array<{ id: string; value: Record<string, unknown> }>>;
  /** Every consumer's stored credentials (plugin fields decrypted), for the duplicate key rule. */
  credentials?(): Promise<Array<{ username: string; id: string; value: Record<string, unknown> }>>;
  /**
   * The data_encryption keyring when encrypt_fields is on: stored consumers'
   * encrypted fields (key-auth `key`...) are decrypted before comparing keys.
   */
  keyring?: readonly string[];
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Plugin confs in the order given, first failure wins (APISIX check_schema). */
function checkPlugins(plugins: unknown, env: CheckEnv, type: SchemaType): string | undefined {
  if (!isObject(plugins)) return undefined;
  for (const [name, conf] of Object.entries(plugins)) {
    const err = env.registry.checkConf(name, conf, type);
    if (err !== undefined) return err;
  }
  return undefined;
}

function checkVars(vars: unknown): string | undefined {
  if (vars === undefined) return undefined;
  try {
    compileExpr(vars);
    return undefined;
  } catch (e) {
    return `failed to validate the 'vars' expression: ${(e as Error).message}`;
  }
}

async function sslLookup(env: CheckEnv, id: string): Promise<Obj | undefined> {
  if (!(await env.exists('ssls', id))) return undefined;
  const found = (await env.all('ssls')).find((s) => s.id === id);
  return found?.value ?? {};
}

async function reference(
  env: CheckEnv,
  resource: ResourceName,
  what: string,
  id: unknown,
): Promise<string | undefined> {
  if (id === undefined) return undefined;
  if (await env.exists(resource, String(id))) return undefined;
  return `failed to fetch ${what} info by ${what} id [${String(id)}], response code: 404`;
}

async function checkRoute(value: Obj, env: CheckEnv): Promise<string | undefined> {
  // Before the schema, with APISIX's own words for these two conflicts.
  if (value.host !== undefined && value.hosts !== undefined) return 'only one of host or hosts is allowed';
  if (value.remote_addr !== undefined && value.remote_addrs !== undefined) {
    return 'only one of remote_addr or remote_addrs is allowed';
  }
  const err = schemaOf('routes').check(value);
  if (err) return `invalid configuration: ${err}`;
  if (isObject(value.upstream)) {
    const upErr = await checkUpstream(value.upstream, schemaOf('upstreams'), (id) => sslLookup(env, id));
    if (upErr) return upErr;
  }
  return (
    (await reference(env, 'upstreams', 'upstream', value.upstream_id)) ??
    (await reference(env, 'services', 'service', value.service_id)) ??
    (await reference(env, 'plugin_configs', 'plugin config', value.plugin_config_id)) ??
    checkPlugins(value.plugins, env, 'route') ??
    checkVars(value.vars)
  );
}

async function checkService(value: Obj, env: CheckEnv): Promise<string | undefined> {
  const err = schemaOf('services').check(value);
  if (err) return `invalid configuration: ${err}`;
  if (isObject(value.upstream)) {
    const upErr = await checkUpstream(value.upstream, schemaOf('upstreams'), (id) => sslLookup(env, id));
    if (upErr) return upErr;
  }
  return (await reference(env, 'upstreams', 'upstream', value.upstream_id)) ?? checkPlugins(value.plugins, env, 'route');
}

async function checkConsumer(id: string, value: Obj, env: CheckEnv): Promise<string | undefined> {
  const err = schemaOf('consumers').check(value);
  if (err) return `invalid configuration: ${err}`;
  if (id !== '' && id !== value.username) return 'wrong username';
  if (isObject(value.plugins)) {
    const pErr = checkPlugins(value.plugins, env, 'consumer');
    if (pErr) return `invalid plugins configuration: ${pErr}`;
    const dup = duplicateConsumerKey(value.plugins, { username: String(value.username) }, await keyOwners(env));
    if (dup) return dup;
  }
  if (value.group_id !== undefined && !(await env.exists('consumer_groups', String(value.group_id)))) {
    return `failed to fetch consumer group info by consumer group id [${String(value.group_id)}], response code: 404`;
  }
  return undefined;
}

/** Every stored consumer and credential with the auth keys it holds (decrypted). */
async function keyOwners(env: CheckEnv): Promise<KeyOwner[]> {
  const open = (plugins: unknown): Record<string, Obj> => {
    const p = (isObject(plugins) ? plugins : {}) as Record<string, Obj>;
    return env.keyring?.length ? decryptPluginFields(p, env.registry, env.keyring) : p;
  };
  const owners: KeyOwner[] = (await env.all('consumers')).map((c) => ({ username: String(c.value.username ?? c.id), plugins: open(c.value.plugins) }));
  for (const c of (await env.credentials?.()) ?? []) owners.push({ username: c.username, credentialId: c.id, plugins: open(c.value.plugins) });
  return owners;
}

/**
 * PUT /consumers/<username>/credentials/<id> (apisix/admin/credentials.lua):
 * the credential schema, then its one plugin's consumer schema, then that it
 * is an auth plugin, then the duplicate key rule. `value.id` is already the
 * URL's id. Resolves to the error_msg, or undefined.
 */
export async function checkCredential(username: string, id: string, value: Obj, env: CheckEnv): Promise<string | undefined> {
  const err = compiledSchema('credential')!.check(value);
  if (err) return `invalid configuration: ${err}`;
  if (!isObject(value.plugins)) return undefined;
  const pErr = checkPlugins(value.plugins, env, 'consumer');
  if (pErr) return `invalid plugins configuration: ${pErr}`;
  for (const name of Object.keys(value.plugins)) {
    const def = env.registry.get(name);
    if (!def) return `unknown plugin ${name}`;
    if (def.type !== 'auth') return 'only supports auth type plugins in consumer credential';
  }
  return duplicateConsumerKey(value.plugins, { username, credentialId: id }, await keyOwners(env));
}

async function checkGlobalRule(id: string, value: Obj, env: CheckEnv): Promise<string | undefined> {
  const err = schemaOf('global_rules').check(value);
  if (err) return `invalid configuration: ${err}`;
  const pErr = checkPlugins(value.plugins, env, 'route');
  if (pErr) return pErr;
  if (!isObject(value.plugins)) return undefined;
  // A plugin in two global rules would be run by neither (APISIX drops it), so refuse it here.
  for (const rule of await env.all('global_rules')) {
    const ruleId = String(rule.value.id ?? rule.id);
    if (ruleId === id || !isObject(rule.value.plugins)) continue;
    for (const name of Object.keys(value.plugins)) {
      if (rule.value.plugins[name] !== undefined) {
        return `plugin '${name}' already exists in global rule with id '${ruleId}'`;
      }
    }
  }
  return undefined;
}

function checkPluginMetadata(id: string, value: Obj, env: CheckEnv): string | undefined {
  if (id === '') return 'missing plugin name';
  if (!env.registry.get(id)) return 'invalid plugin name';
  const conf: Obj = { ...value };
  // The id is the URL's plugin name, not part of the plugin's metadata fields.
  if (conf.id === id) delete conf.id;
  const err = env.registry.checkSchemaOnly(id, conf, 'metadata');
  return err === undefined ? undefined : `invalid configuration: ${err}`;
}

/**
 * The full admin-write check, in APISIX's order: conflicting keys, schema,
 * upstream extras, references, plugin schemas, vars. Resolves to the
 * `error_msg` to send with a 400, or undefined when the value is valid.
 * `id` is the object's id (username for consumers, plugin name for plugin_metadata).
 * `value` is not modified.
 */
export async function checkResource(
  resource: ResourceName,
  id: string,
  value: Record<string, unknown>,
  env: CheckEnv,
): Promise<string | undefined> {
  if (!isObject(value)) return `invalid configuration: ${validateSchemaOnly(resource, value) ?? 'wrong type'}`;
  // The size bounds first, alone: inside the full schema a node's host sits under the two forms `nodes` may
  // take, where a bound would read as APISIX's "object matches none of the required" without naming the limit.
  const beyond = boundsViolation(resource, value);
  if (beyond !== undefined) return `invalid configuration: ${beyond}`;
  switch (resource) {
    case 'routes':
      return checkRoute(value, env);
    case 'services':
      return checkService(value, env);
    case 'upstreams':
      return checkUpstream(value, schemaOf('upstreams'), (sslId) => sslLookup(env, sslId));
    case 'consumers':
      return checkConsumer(id, value, env);
    case 'global_rules':
      return checkGlobalRule(id, value, env);
    case 'consumer_groups':
    case 'plugin_configs': {
      const err = schemaOf(resource).check(value);
      if (err) return `invalid configuration: ${err}`;
      return checkPlugins(value.plugins, env, 'route');
    }
    case 'plugin_metadata':
      return checkPluginMetadata(id, value, env);
    case 'ssls':
      return checkSsl(value, schemaOf('ssls'));
    case 'protos': {
      const err = schemaOf(resource).check(value);
      if (err) return `invalid configuration: ${err}`;
      return checkProtoContent(value.content as string);
    }
  }
}
