/**
 * APISIX's own config files load: its keys Portico does not use are named in
 * one warning, `deployment.role` picks the store, typos still stop start-up.
 * Fixtures: APISIX's shipped conf/config.yaml, and conf/config.yaml.example
 * with a realistic set of sections uncommented (see its header).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { loadConfig, type LoadOptions } from '../../src/core/config/file.js';
import { resolveSecrets } from '../../src/core/secrets/generated-keys.js';
import { startEtcd } from '../helpers/etcd.js';
import { startGatewayProcess, startListening, writeTempConfig } from '../helpers/process.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const APISIX_CONFIG = fixture('apisix-config.yaml');
const APISIX_EXAMPLE = fixture('apisix-config-example.yaml');

const root = mkdtempSync(join(tmpdir(), 'portico-apisix-cfg-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
/** A fresh data dir under one temporary root, removed after the file's tests. */
const tempDir = () => mkdtempSync(join(root, `${dirCount++}-`));

/** loadConfig with the warnings captured instead of logged. */
function load(opts: LoadOptions) {
  const warnings: string[] = [];
  const config = loadConfig({ env: {}, ...opts, warn: (m) => warnings.push(m) });
  return { config, warnings };
}

function loadYaml(yaml: string) {
  return load({ path: writeTempConfig(yaml) });
}

describe("APISIX's shipped conf/config.yaml", () => {
  test('loads: role traditional with config_provider etcd selects the etcd store, with no warning', () => {
    const { config, warnings } = load({ path: APISIX_CONFIG });
    expect(config.deployment.config_provider).toBe('etcd');
    expect(config.deployment.etcd).toEqual({ host: ['http://127.0.0.1:2379'], prefix: '/apisix', timeout: 30 });
    expect(config.deployment.admin.admin_key).toEqual([{ name: 'admin', key: '', role: 'admin' }]);
    expect(warnings).toEqual([]);
  });

  test("its empty admin key is generated, as APISIX does, and kept in the data dir (not in the YAML)", () => {
    const dir = tempDir();
    const before = readFileSync(APISIX_CONFIG, 'utf8');
    const { config } = load({ path: APISIX_CONFIG, env: { PORTICO_DATA_DIR: dir } });
    const generated = resolveSecrets(config);
    const key = config.deployment.admin.admin_key[0]!.key;
    expect(key).toMatch(/^[0-9a-f]{32}$/);
    expect(generated).toContainEqual(expect.objectContaining({ what: 'admin key "admin"', value: key, field: 'admin_keys.admin' }));
    expect(JSON.parse(readFileSync(join(dir, 'secrets.json'), 'utf8')).admin_keys).toEqual({ admin: key });
    expect(readFileSync(APISIX_CONFIG, 'utf8')).toBe(before);

    // A missing key (not just an empty one) is generated too.
    const missing = loadYaml(`deployment:\n  admin:\n    admin_key:\n      - { name: ops, role: admin }\n  embedded:\n    data_dir: ${dir}\n`);
    resolveSecrets(missing.config);
    expect(missing.config.deployment.admin.admin_key[0]!.key).toMatch(/^[0-9a-f]{32}$/);
  });

  test('starts a gateway against etcd, listening on port 0, and the generated key opens the Admin API', async () => {
    const etcd = await startEtcd();
    let gw: Awaited<ReturnType<typeof startListening>> | undefined;
    try {
      // APISIX's file as shipped, with only the addresses a test needs changed.
      const doc = parseYaml(readFileSync(APISIX_CONFIG, 'utf8')) as Record<string, any>;
      expect(doc.deployment.role).toBe('traditional');
      doc.apisix = { node_listen: [{ ip: '127.0.0.1', port: 0 }], ssl: { listen: [{ ip: '127.0.0.1', port: 0 }] } };
      doc.deployment.etcd = { host: [etcd.endpoint], prefix: '/apisix-cfg-test' };
      doc.deployment.admin.admin_listen = { ip: '127.0.0.1', port: 0 };
      doc.deployment.embedded = { data_dir: tempDir() };
      gw = await startListening(['--config', writeTempConfig(stringifyYaml(doc))]);
      // The output says where the generated key is kept, never the key.
      expect(gw.output()).toMatch(/Generated admin key "admin": stored in .*secrets\.json/);
      const key = (JSON.parse(readFileSync(join(doc.deployment.embedded.data_dir, 'secrets.json'), 'utf8')) as { admin_keys: Record<string, string> }).admin_keys.admin;
      expect(key).toMatch(/^[0-9a-f]{32}$/);
      expect(gw.output()).not.toContain(key);
      const put = await fetch(`http://127.0.0.1:${gw.adminPort}/apisix/admin/routes/r1`, {
        method: 'PUT',
        headers: { 'X-API-KEY': key!, 'content-type': 'application/json' },
        body: JSON.stringify({ uri: '/r1', upstream: { type: 'roundrobin', nodes: { '127.0.0.1:1': 1 } } }),
      });
      expect(put.status).toBe(201);
      // The route went to etcd under the configured prefix.
      const range = await fetch(`${etcd.endpoint}/v3/kv/range`, {
        method: 'POST',
        body: JSON.stringify({ key: Buffer.from('/apisix-cfg-test/routes/r1').toString('base64') }),
      });
      expect(((await range.json()) as { count?: string }).count).toBe('1');
      gw.proc.kill('SIGTERM');
      expect((await gw.exited).code).toBe(0);
    } finally {
      if (gw && gw.proc.exitCode === null && gw.proc.signalCode === null) gw.proc.kill('SIGKILL');
      await etcd.stop();
    }
  });
});

describe("APISIX's config.yaml.example, sections uncommented", () => {
  test('loads, honouring what maps onto Portico and naming every ignored key in one warning', () => {
    const { config, warnings } = load({ path: APISIX_EXAMPLE });
    expect(config.apisix.node_listen).toEqual({ ip: '0.0.0.0', port: 9080 }); // `node_listen: [9080]`
    expect(config.deployment.config_provider).toBe('etcd');
    expect(config.deployment.admin.admin_listen).toEqual({ ip: '0.0.0.0', port: 9180 });
    expect(config.deployment.admin.enable_admin).toBe(true); // apisix.enable_admin
    expect(config.apisix.router).toEqual({ http: 'radixtree_host_uri', ssl: 'radixtree_sni' });
    expect(config.nginx_config.worker_processes).toBe('auto');
    expect(config.apisix.enable_control).toBe(true);
    expect(config.apisix.control).toEqual({ ip: '127.0.0.1', port: 9090 });
    expect(config.plugins).toContain('key-auth');
    expect(config.plugin_attr.prometheus).toMatchObject({ metrics: { upstream_status: { expire: 0 } } });

    expect(warnings).toHaveLength(1);
    const [warning] = warnings;
    expect(warning).toMatch(/^config: APISIX keys not used by Portico, ignored: /);
    const listed = warning!.replace(/^.*ignored: /, '').split(', ');
    for (const key of [
      'apisix.enable_ipv6',
      'apisix.proxy_protocol',
      'apisix.dns_resolver',
      'nginx_config.user',
      'nginx_config.envs',
      'nginx_config.http.keepalive_timeout',
      'nginx_config.http.lua_shared_dict',
      'nginx_config.http_configuration_snippet',
      'discovery',
      'graphql',
      'ext-plugin',
      'wasm',
      'stream_plugins',
      'deployment.admin.enable_admin_ui',
      'deployment.etcd.tls', // only `verify: true` is set, which asks for nothing Portico lacks
    ]) {
      expect(listed).toContain(key);
    }
    // Honoured keys are not reported as ignored; a section is named once, not key by key.
    // apisix.ssl, status and the control API are served (src/core/tls/, src/core/status/, src/core/control/);
    // proxy_cache's zones by proxy-cache.
    expect(config.apisix.proxy_cache?.zones?.map((z) => z.name)).toEqual(['disk_cache_one', 'memory_cache']);
    for (const key of ['apisix.enable_admin', 'apisix.router.ssl', 'deployment.role', 'deployment.role_traditional', 'apisix.ssl', 'apisix.status', 'apisix.enable_control', 'apisix.control', 'apisix.proxy_cache']) {
      expect(listed).not.toContain(key);
    }
    // nginx_config.http is honoured in part (client_header_timeout), so the rest of it is named key by key.
    for (const key of ['nginx_config.http', 'nginx_config.http.client_header_timeout', 'nginx_config.event']) expect(listed).not.toContain(key);
  });
});

describe('APISIX keys asking for a protection Portico does not give are refused, not ignored', () => {
  test('https_admin, admin_api_mtls, etcd user/password and etcd client certificates', () => {
    const cases: Array<[string, string]> = [
      ['deployment:\n  admin:\n    https_admin: true\n', 'deployment.admin.https_admin'],
      ['deployment:\n  admin:\n    admin_api_mtls:\n      admin_ssl_cert: /c.pem\n', 'deployment.admin.admin_api_mtls'],
      ['deployment:\n  etcd:\n    user: root\n', 'deployment.etcd.user'],
      ['deployment:\n  etcd:\n    password: secret\n', 'deployment.etcd.password'],
      ['deployment:\n  etcd:\n    tls:\n      cert: /c.pem\n      key: /k.pem\n', 'deployment.etcd.tls'],
    ];
    for (const [yaml, key] of cases) {
      expect(() => loadYaml(yaml), key).toThrow(new RegExp(`"${key.replaceAll('.', '\\.')}" is not supported by Portico: `));
    }
    // Their off / empty values ask for nothing and load with the usual warning.
    const { warnings } = loadYaml('deployment:\n  admin:\n    https_admin: false\n    admin_api_mtls:\n      admin_ssl_cert: ""\n  etcd:\n    user: ""\n');
    expect(warnings).toHaveLength(1);
  });
});

describe('typos are still refused', () => {
  test('a key neither APISIX nor Portico knows stops start-up, naming it and the close key', () => {
    expect(() => loadYaml('apisix:\n  node_listn: 9080\n')).toThrow(
      /unknown key "apisix\.node_listn" \(did you mean "apisix\.node_listen"\?\)/,
    );
    expect(() => loadYaml('deployment:\n  role_tradtional:\n    config_provider: etcd\n')).toThrow(
      /unknown key "deployment\.role_tradtional" \(did you mean "deployment\.role_traditional"\?\)/,
    );
    expect(() => loadYaml('grapql:\n  max_size: 1\n')).toThrow(/unknown key "grapql" \(did you mean "graphql"\?\)/);
    expect(() => loadYaml('apisix:\n  frobnicate: true\n')).toThrow(/unknown key "apisix\.frobnicate"$/);
    expect(() => loadYaml('apisix:\n  constructor: 1\n')).toThrow(/unknown key "apisix\.constructor"/);
  });

  test('inside a section Portico ignores, keys are still checked against APISIX', () => {
    expect(() => loadYaml('nginx_config:\n  http:\n    keepalive_timout: 60s\n')).toThrow(
      /unknown key "nginx_config\.http\.keepalive_timout" \(did you mean "nginx_config\.http\.keepalive_timeout"\?\)/,
    );
    expect(() => loadYaml('deployment:\n  role_traditional:\n    config_providr: etcd\n')).toThrow(
      /unknown key "deployment\.role_traditional\.config_providr"/,
    );
    // Free-form maps are not checked.
    const { warnings } = loadYaml('nginx_config:\n  http:\n    lua_shared_dict:\n      my-dict: 1m\ndiscovery:\n  anything: {}\n');
    expect(warnings).toEqual(['config: APISIX keys not used by Portico, ignored: nginx_config.http.lua_shared_dict, discovery']);
  });

  test('an etcd that cannot be reached is named, with the key that points at it, and no stack trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portico-etcd-down-'));
    try {
      // Port 1 on loopback: nothing listens there, so the connection is refused at once.
      const yaml = `deployment:\n  config_provider: etcd\n  etcd:\n    host: ["http://127.0.0.1:1"]\n    timeout: 2\n  embedded:\n    data_dir: ${dir}\n  admin:\n    admin_listen: { ip: 127.0.0.1, port: 0 }\napisix:\n  node_listen: { ip: 127.0.0.1, port: 0 }\n`;
      const gp = startGatewayProcess(['--config', writeTempConfig(yaml)]);
      expect((await gp.exited).code).toBe(1);
      expect(gp.output()).toMatch(/failed to start: cannot reach etcd at http:\/\/127\.0\.0\.1:1 \(deployment\.etcd\.host\): /);
      expect(gp.output()).not.toMatch(/\n\s+at /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a typo reaches the process as a start-up error", async () => {
    const gp = startGatewayProcess(['--config', writeTempConfig('apisix:\n  node_listn: 9080\n')]);
    expect((await gp.exited).code).toBe(1);
    expect(gp.output()).toMatch(/failed to start: .*unknown key "apisix\.node_listn" \(did you mean "apisix\.node_listen"\?\)/);
  });
});

describe('deployment.role', () => {
  test('without a role, Portico keeps its embedded store', () => {
    expect(loadYaml('apisix:\n  enable_server_tokens: false\n').config.deployment.config_provider).toBe('embedded');
  });

  test('role traditional alone means etcd, as in APISIX; agreeing with config_provider is fine', () => {
    expect(loadYaml('deployment:\n  role: traditional\n').config.deployment.config_provider).toBe('etcd');
    const both = 'deployment:\n  config_provider: etcd\n  role: traditional\n  role_traditional:\n    config_provider: etcd\n';
    expect(loadYaml(both).config.deployment.config_provider).toBe('etcd');
  });

  test('control_plane and standalone roles are refused, naming the key and what Portico supports', () => {
    for (const role of ['control_plane', 'standalone']) {
      const section = role === 'standalone' ? '' : `  role_${role}:\n    config_provider: etcd\n`;
      expect(() => loadYaml(`deployment:\n  role: ${role}\n${section}`)).toThrow(
        new RegExp(`"deployment\\.role: ${role}" is not supported: Portico runs APISIX's traditional role .* or its data_plane role from a standalone file`),
      );
    }
  });

  test('a data_plane fed by etcd or xDS is refused: a Portico data plane reads a standalone file', () => {
    for (const provider of ['etcd', 'xds']) {
      expect(() => loadYaml(`deployment:\n  role: data_plane\n  role_data_plane:\n    config_provider: ${provider}\n`)).toThrow(
        new RegExp(`"deployment\\.role_data_plane\\.config_provider: ${provider}" is not supported: a Portico data plane reads a standalone file`),
      );
    }
  });

  test('data_plane with yaml or json is the file-driven standalone mode: Admin API off, conf/apisix.<format> or $PORTICO_STANDALONE_FILE', () => {
    for (const provider of ['yaml', 'json'] as const) {
      const { config } = loadYaml(`deployment:\n  role: data_plane\n  role_data_plane:\n    config_provider: ${provider}\n`);
      expect(config.deployment.config_provider).toBe(provider);
      expect(config.deployment.role).toBe('data_plane');
      expect(config.deployment.admin.enable_admin).toBe(false);
      expect(config.deployment.standalone_file).toMatch(new RegExp(`conf/apisix\\.${provider}$`));
    }
    const file = writeTempConfig('deployment:\n  role: data_plane\n  role_data_plane:\n    config_provider: yaml\n');
    const config = load({ path: file, env: { PORTICO_STANDALONE_FILE: '/srv/gitops/portico.yaml' } }).config;
    expect(config.deployment.standalone_file).toBe('/srv/gitops/portico.yaml');
  });

  test('traditional with yaml is the API-driven standalone mode; json there is refused, as in APISIX', () => {
    const { config } = loadYaml('deployment:\n  role: traditional\n  role_traditional:\n    config_provider: yaml\n');
    expect(config.deployment.config_provider).toBe('yaml');
    expect(config.deployment.admin.enable_admin).toBe(true);
    expect(config.deployment.standalone_file).toBeUndefined();
    expect(() => loadYaml('deployment:\n  role: traditional\n  role_traditional:\n    config_provider: json\n')).toThrow(
      /"deployment\.role_traditional\.config_provider: json" is not supported: Portico supports etcd or yaml here.*embedded/,
    );
  });

  test("Portico's config_provider and APISIX's role form disagreeing is refused, naming both", () => {
    const yaml = 'deployment:\n  config_provider: embedded\n  role: traditional\n  role_traditional:\n    config_provider: etcd\n';
    expect(() => loadYaml(yaml)).toThrow(
      /"deployment\.config_provider: embedded" and "deployment\.role_traditional\.config_provider: etcd" disagree/,
    );
  });

  test('apisix.enable_admin is read as deployment.admin.enable_admin; disagreeing is refused', () => {
    expect(loadYaml('apisix:\n  enable_admin: false\n').config.deployment.admin.enable_admin).toBe(false);
    expect(() => loadYaml('apisix:\n  enable_admin: false\ndeployment:\n  admin:\n    enable_admin: true\n')).toThrow(
      /"apisix\.enable_admin: false" and "deployment\.admin\.enable_admin: true" disagree/,
    );
  });

  test('a role error stops the process with exit 1', async () => {
    const gp = startGatewayProcess(['--config', writeTempConfig('deployment:\n  role: data_plane\n')]);
    expect((await gp.exited).code).toBe(1);
    expect(gp.output()).toMatch(/failed to start: .*"deployment\.role: data_plane" needs "deployment\.role_data_plane\.config_provider": yaml or json/);
  });
});

describe("APISIX's shorthand shapes", () => {
  test('node_listen as a port or a one-entry list; several addresses are refused', () => {
    expect(loadYaml('apisix:\n  node_listen: 9081\n').config.apisix.node_listen).toEqual({ ip: '0.0.0.0', port: 9081 });
    expect(loadYaml('apisix:\n  node_listen:\n    - ip: 127.0.0.2\n      port: 9082\n').config.apisix.node_listen).toEqual({
      ip: '127.0.0.2',
      port: 9082,
    });
    expect(() => loadYaml('apisix:\n  node_listen: [9080, 9081]\n')).toThrow(
      /"apisix\.node_listen" lists 2 addresses; Portico listens on exactly one/,
    );
  });

  test('a keyring string and a numeric admin key are read as APISIX reads them', () => {
    const { config } = loadYaml(
      'apisix:\n  data_encryption:\n    keyring: abcdefghijklmnop\ndeployment:\n  admin:\n    admin_key:\n      - { name: a, key: 1234567890123456, role: admin }\n',
    );
    expect(config.apisix.data_encryption.keyring).toEqual(['abcdefghijklmnop']);
    expect(config.deployment.admin.admin_key[0]!.key).toBe('1234567890123456');
  });
});
