/**
 * APISIX's `deployment.role` and its `role_<role>.config_provider`, read as
 * apisix/cli/file.lua reads them:
 * - `traditional` with `etcd` (the default when left out) or `yaml`: the Admin API
 *   and the data plane in one node; `yaml` is the API-driven standalone mode
 *   (the whole configuration in memory, replaced by PUT /apisix/admin/configs);
 * - `data_plane` with `yaml` or `json`: the file-driven standalone mode, serving
 *   conf/apisix.yaml (or $PORTICO_STANDALONE_FILE) with the Admin API off.
 * What Portico cannot serve (the control-plane/data-plane split over etcd, xDS)
 * or a contradiction with Portico's own `deployment.config_provider` stops start-up.
 */
import { isAbsolute, join, resolve } from 'node:path';
import { isPlainObject } from './plain-object.js';
import { ConfigError, PROJECT_ROOT } from './project-root.js';
import type { PorticoConfig } from './types.js';

type Doc = Record<string, unknown>;

const PROVIDERS: Readonly<Record<string, readonly string[]>> = {
  traditional: ['etcd', 'yaml'],
  data_plane: ['yaml', 'json'],
};

/** Rewrites one file's `deployment.role` / `role_<role>` into `deployment.role` + `deployment.config_provider`. */
export function resolveRole(doc: Doc, file: string): void {
  const dep = doc.deployment;
  if (!isPlainObject(dep)) return;
  if (dep.role === undefined && dep.role_traditional === undefined && dep.role_data_plane === undefined) return;
  const role = dep.role ?? 'traditional';
  const allowed = typeof role === 'string' && Object.hasOwn(PROVIDERS, role) ? PROVIDERS[role]! : undefined;
  if (allowed === undefined) {
    throw new ConfigError(
      `${file}: "deployment.role: ${String(role)}" is not supported: Portico runs APISIX's traditional role ` +
        '(the Admin API and the data plane in one node) or its data_plane role from a standalone file; ' +
        'set deployment.role: traditional or data_plane',
    );
  }
  const sectionKey = `role_${role as string}`;
  const section = dep[sectionKey] ?? {};
  if (!isPlainObject(section)) throw new ConfigError(`${file}: "deployment.${sectionKey}" must be a mapping`);
  // APISIX requires role_data_plane.config_provider; role_traditional's defaults to etcd.
  const provider = section.config_provider ?? (role === 'traditional' ? 'etcd' : undefined);
  if (provider === undefined) {
    throw new ConfigError(`${file}: "deployment.role: data_plane" needs "deployment.role_data_plane.config_provider": yaml or json`);
  }
  if (!allowed.includes(String(provider))) {
    const why =
      role === 'traditional'
        ? `Portico supports etcd or yaml here (json is a data_plane provider, as in APISIX), or its own embedded store with ` +
          'deployment.config_provider: embedded and no deployment.role'
        : 'a Portico data plane reads a standalone file (yaml or json); for a node fed by etcd use deployment.role: traditional';
    throw new ConfigError(`${file}: "deployment.${sectionKey}.config_provider: ${String(provider)}" is not supported: ${why}`);
  }
  if (dep.config_provider !== undefined && dep.config_provider !== provider) {
    throw new ConfigError(
      `${file}: "deployment.config_provider: ${String(dep.config_provider)}" and ` +
        `"deployment.${sectionKey}.config_provider: ${String(provider)}" disagree; keep one of them`,
    );
  }
  for (const key of ['role_traditional', 'role_data_plane']) {
    if (key !== sectionKey && dep[key] !== undefined) {
      throw new ConfigError(`${file}: "deployment.${key}" is set but deployment.role is ${String(role)}; remove one of them`);
    }
    delete dep[key];
  }
  dep.role = role;
  dep.config_provider = provider;
}

/**
 * After the files are merged: a data plane serves a standalone file with the
 * Admin API off (APISIX sets enable_admin false for this role), and the file is
 * $PORTICO_STANDALONE_FILE or conf/apisix.yaml (conf/apisix.json for json).
 */
export function applyRole(config: PorticoConfig, env: NodeJS.ProcessEnv): void {
  const dep = config.deployment;
  const role = dep.role ?? 'traditional';
  const provider = dep.config_provider;
  if (role === 'data_plane' && provider !== 'yaml' && provider !== 'json') {
    throw new ConfigError(`"deployment.role: data_plane" needs config_provider yaml or json, not ${provider}`);
  }
  if (role === 'traditional' && provider === 'json') {
    throw new ConfigError('"deployment.config_provider: json" is a data_plane provider (as in APISIX): set deployment.role: data_plane, or use yaml');
  }
  if (role !== 'data_plane') return;
  dep.admin.enable_admin = false;
  const file = env.PORTICO_STANDALONE_FILE || join(PROJECT_ROOT, 'conf', `apisix.${provider}`);
  dep.standalone_file = isAbsolute(file) ? file : resolve(file);
}
