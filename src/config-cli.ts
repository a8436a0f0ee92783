#!/usr/bin/env node
/**
 * `npm run config -- <command>`: the declarative side of Portico, for keeping
 * the configuration in version control (APISIX's standalone file format).
 *   dump [-o FILE] [--json]   the running configuration, from the Admin API or a data dir
 *   validate FILE             offline, with the checks the gateway applies to the file
 *   diff FILE                 what applying FILE would create, change and delete
 *   apply FILE                make the running configuration FILE's (Admin API)
 * Source/target: --admin-url URL (default $PORTICO_ADMIN_URL or http://127.0.0.1:9180)
 * and --admin-key KEY (default $PORTICO_ADMIN_KEY), or --data-dir DIR for dump and diff.
 * --config FILE names the gateway's config.yaml, whose plugin list the checks use.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { validateConfiguration } from './admin/config-validate.js';
import { RESOURCE_DEFS } from './admin/resources.js';
import { createCodec } from './admin/stored-value.js';
import { call, standaloneDocument, storeItems, type AdminTarget } from './cli/admin-client.js';
import { adminPath, describeChange, plan } from './cli/plan.js';
import { ConfigError, loadConfig } from './core/config/file.js';
import type { PorticoConfig } from './core/config/types.js';
import { PluginRegistry } from './core/plugin/registry.js';
import { storedKeyring } from './core/secrets/generated-keys.js';
import { describeIssue, documentFromItems, parseStandalone, type StandaloneDoc } from './core/store/standalone-doc.js';
import { KEY_PREFIX } from './core/model.js';

const USAGE = `usage: npm run config -- <command> [options]
  dump [-o FILE] [--json]   write the running configuration in APISIX's standalone format
  validate FILE             check FILE offline with the gateway's own checks
  diff FILE                 show what applying FILE would create, change and delete
  apply FILE                apply FILE through the Admin API
options:
  --admin-url URL   Admin API (default $PORTICO_ADMIN_URL or http://127.0.0.1:9180)
  --admin-key KEY   its admin key (default $PORTICO_ADMIN_KEY)
  --data-dir DIR    read an embedded store's data dir instead (dump, diff)
  --config FILE     the gateway's config.yaml (plugin list, keyring; default $PORTICO_CONFIG)
`;

interface Args {
  command?: string;
  file?: string;
  output?: string;
  json: boolean;
  adminUrl: string;
  adminKey: string;
  dataDir?: string;
  config?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    json: false,
    adminUrl: process.env.PORTICO_ADMIN_URL ?? 'http://127.0.0.1:9180',
    adminKey: process.env.PORTICO_ADMIN_KEY ?? '',
  };
  const value = (i: number, flag: string): string => {
    const v = argv[i];
    if (v === undefined) fail(`${flag} needs a value`, 2);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-o' || a === '--output') args.output = value(++i, a);
    else if (a === '--json') args.json = true;
    else if (a === '--admin-url') args.adminUrl = value(++i, a);
    else if (a === '--admin-key') args.adminKey = value(++i, a);
    else if (a === '--data-dir') args.dataDir = value(++i, a);
    else if (a === '-c' || a === '--config') args.config = value(++i, a);
    else if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else if (a.startsWith('-')) fail(`unknown option ${a}\n${USAGE}`, 2);
    else if (args.command === undefined) args.command = a;
    else if (args.file === undefined) args.file = a;
    else fail(`unexpected argument ${a}\n${USAGE}`, 2);
  }
  return args;
}

function fail(message: string, code = 1): never {
  process.stderr.write(`portico config: ${message}\n`);
  process.exit(code);
}

function gatewayConfig(args: Args): PorticoConfig {
  // Only the plugin list and the data-encryption settings matter here; nothing is started.
  return loadConfig({ path: args.config, warn: () => undefined });
}

/** The document in FILE, checked; exits with every problem when it has any. */
async function readChecked(file: string, registry: PluginRegistry): Promise<StandaloneDoc> {
  let doc: StandaloneDoc;
  try {
    doc = parseStandalone(readFileSync(file, 'utf8'), file.endsWith('.json') ? 'json' : 'yaml', file, process.env);
  } catch (err) {
    fail((err as Error).message);
  }
  const issues = await validateConfiguration(doc, registry);
  if (issues.length > 0) {
    for (const issue of issues) process.stderr.write(`${file}: ${describeIssue(issue)}\n`);
    fail(`${file}: ${issues.length} problem${issues.length === 1 ? '' : 's'}, nothing applied`);
  }
  return doc;
}

/** The running configuration, from the data dir's store or the Admin API. */
async function current(args: Args, config: PorticoConfig, registry: PluginRegistry): Promise<StandaloneDoc> {
  if (args.dataDir !== undefined) {
    const db = join(args.dataDir, 'portico.db');
    if (!existsSync(db)) fail(`no embedded store in ${args.dataDir} (${db} is missing)`);
    const { EmbeddedStore } = await import('./core/store/embedded.js');
    const store = new EmbeddedStore(db);
    try {
      const { items } = await store.list(KEY_PREFIX + '/');
      // Plugin fields sealed with the data dir's keyring are written out in the clear, as the Admin API shows them to an admin.
      const keyring = config.apisix.data_encryption.keyring.length > 0 ? config.apisix.data_encryption.keyring : [storedKeyring(args.dataDir)].filter((k): k is string => !!k);
      const codec = createCodec({ ...config, apisix: { ...config.apisix, data_encryption: { enable_encrypt_fields: true, keyring } } }, registry);
      const open = items.map((i) => {
        const def = RESOURCE_DEFS.get(i.key.slice(KEY_PREFIX.length + 1).split('/')[0]!);
        const value = def && typeof i.value === 'object' && i.value !== null ? codec.open(def, i.value as Record<string, unknown>) : i.value;
        return { key: i.key, value };
      });
      return documentFromItems(open);
    } finally {
      await store.close();
    }
  }
  const target: AdminTarget = { url: args.adminUrl, key: args.adminKey };
  const standalone = await standaloneDocument(target);
  if (standalone) return standalone;
  const items = await storeItems(target);
  if (items.some((i) => i.key.startsWith(`${KEY_PREFIX}/ssls/`))) {
    process.stderr.write('portico config: the Admin API never shows ssls\' private keys; dump with --data-dir to include them\n');
  }
  return documentFromItems(items);
}

function render(doc: StandaloneDoc, json: boolean): string {
  if (json) return JSON.stringify(doc, null, 2) + '\n';
  // `#END` makes the dump a standalone file a gateway will load as it is.
  return `${stringifyYaml(doc)}#END\n`;
}

async function apply(args: Args, desired: StandaloneDoc, config: PorticoConfig, registry: PluginRegistry): Promise<void> {
  const target: AdminTarget = { url: args.adminUrl, key: args.adminKey };
  if (await standaloneDocument(target)) {
    const body = JSON.stringify(desired);
    const digest = createHash('sha256').update(body).digest('hex');
    const res = await call(target, 'PUT', '/apisix/admin/configs', body, { 'x-digest': digest });
    if (res.status === 204) return void process.stdout.write('no change (same digest)\n');
    if (res.status !== 202) fail(`PUT /apisix/admin/configs answered ${res.status}: ${res.text.trim()}`);
    return void process.stdout.write('applied the whole configuration\n');
  }
  const changes = plan(await current(args, config, registry), desired);
  for (const c of changes) {
    const path = adminPath(c.key);
    const res = c.action === 'delete' ? await call(target, 'DELETE', path) : await call(target, 'PUT', path, c.value);
    if (res.status >= 300) fail(`${c.action} ${c.key}: ${res.status} ${res.text.trim()} (the changes before it were applied)`);
    process.stdout.write(`${describeChange(c)}\n`);
  }
  process.stdout.write(`applied: ${summary(changes)}\n`);
}

function summary(changes: ReadonlyArray<{ action: string }>): string {
  const n = (a: string) => changes.filter((c) => c.action === a).length;
  return `${n('create')} to create, ${n('change')} to change, ${n('delete')} to delete`;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.command === undefined) fail(USAGE.trimEnd(), 2);
  let config: PorticoConfig;
  try {
    config = gatewayConfig(args);
  } catch (err) {
    fail(err instanceof ConfigError ? err.message : String(err));
  }
  const registry = await PluginRegistry.load(config.plugins, config.plugin_dirs);
  const needsFile = (): string => args.file ?? fail(`${args.command} needs a FILE\n${USAGE}`, 2);
  switch (args.command) {
    case 'dump': {
      const text = render(await current(args, config, registry), args.json || (args.output?.endsWith('.json') ?? false));
      if (args.output) writeFileSync(args.output, text);
      else process.stdout.write(text);
      return;
    }
    case 'validate': {
      const file = needsFile();
      await readChecked(file, registry);
      process.stdout.write(`${file}: valid\n`);
      return;
    }
    case 'diff': {
      const desired = await readChecked(needsFile(), registry);
      const changes = plan(await current(args, config, registry), desired);
      for (const c of changes) process.stdout.write(`${describeChange(c)}\n`);
      process.stdout.write(`${summary(changes)}\n`);
      return;
    }
    case 'apply':
      return apply(args, await readChecked(needsFile(), registry), config, registry);
    default:
      fail(`unknown command ${args.command}\n${USAGE}`, 2);
  }
}

main().catch((err: unknown) => fail(err instanceof Error ? err.message : String(err)));
