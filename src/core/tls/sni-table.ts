/**
 * The `ssls` objects compiled for the HTTPS listeners: one secure context per
 * object, built when config changes (never per handshake), looked up by the
 * handshake's SNI as APISIX's apisix/ssl/router/radixtree_sni.lua does:
 *
 * - only `type: server` objects with `status` 1 (or unset) take part;
 * - names are lower-cased, a trailing dot dropped;
 * - an exact name wins over a wildcard; `*.example.com` covers one label
 *   (`a.example.com`, not `a.b.example.com` nor `example.com`); a bare `*`
 *   covers every name;
 * - `cert`/`key` and every `certs[i]`/`keys[i]` pair go into the same context,
 *   so an RSA and an ECDSA certificate stand side by side and OpenSSL hands
 *   each client the one its signature algorithms accept.
 *
 * An object whose PEM does not load (a key no keyring entry opens, a secret
 * reference that did not resolve) is left out and logged, as APISIX fails that
 * object's handshakes; the others keep serving.
 */
import type { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { SslConf } from '../model.js';
import { decryptValue } from '../secrets/encryption.js';
import { parseCaBundle } from './chain-depth.js';

/** What a handshake and its requests need from the matched object. */
export interface SniEntry {
  readonly id: string;
  readonly context: SecureContext;
  /** What built `context`: a listener's default context (fallback_sni) is set from it. */
  readonly options: SecureContextOptions;
  /** client.ca is set: the handshake asks for a client certificate. */
  readonly mtls: MtlsPolicy | undefined;
  /** The object's own ssl_protocols, checked once the handshake settled (undefined: the listener's). */
  readonly protocols: ReadonlySet<string> | undefined;
}

export interface MtlsPolicy {
  /**
   * With skip_mtls_uri_regex, a handshake without a valid certificate goes on
   * and requests outside these paths get 400 (APISIX's access-phase check);
   * without it the handshake itself fails.
   */
  readonly skip: readonly RegExp[] | undefined;
  /**
   * client.depth (default 1, nginx's ssl_verify_depth): CA certificates allowed
   * above the client's own. OpenSSL's verify depth is not reachable from Node,
   * so the verified chain is measured once the handshake is done (chain-depth.ts).
   */
  readonly depth: number;
  /** client.ca's certificates, to rebuild a client's chain from. */
  readonly cas: readonly X509Certificate[];
}

export interface SniTable {
  /** Store revisions of the objects it was built from, so an unchanged batch keeps the same table. */
  readonly revKey: string;
  match(servername: string): SniEntry | undefined;
  readonly size: number;
  /** Each served object's entry and revision, for the next compile's reuse. */
  readonly byId: SniTableReuse;
}

/** One stored object with the revision it was written at. */
export interface SslItem {
  readonly id: string;
  readonly value: SslConf;
  readonly modRevision: number;
}

export interface SniCompileEnv {
  readonly logger: Logger;
  /** apisix.data_encryption.keyring: private keys are stored encrypted with it (APISIX encrypts ssl keys). */
  readonly keyring: readonly string[];
  /** The listener's protocol range, ciphers and ticket policy, shared by every context. */
  readonly base: SecureContextOptions;
}

/** SNI as APISIX normalises it (ssl_filter, server_name): lower case, no trailing dot. */
export function normalizeSni(name: string): string {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  return /[A-Z]/.test(trimmed) ? trimmed.toLowerCase() : trimmed;
}

class CompiledSniTable implements SniTable {
  readonly exact = new Map<string, SniEntry>();
  /** `*.example.com` stored as `.example.com`. */
  readonly wildcard = new Map<string, SniEntry>();
  any: SniEntry | undefined = undefined;
  /** For the next compile's reuse. */
  readonly byId = new Map<string, { modRevision: number; entry: SniEntry }>();

  constructor(readonly revKey: string) {}

  get size(): number {
    return this.byId.size;
  }

  match(servername: string): SniEntry | undefined {
    const name = normalizeSni(servername);
    const hit = this.exact.get(name);
    if (hit !== undefined) return hit;
    const dot = name.indexOf('.');
    if (dot > 0) {
      const wild = this.wildcard.get(name.slice(dot));
      if (wild !== undefined) return wild;
    }
    return this.any;
  }

  add(name: string, entry: SniEntry): void {
    const n = normalizeSni(name);
    if (n === '*') this.any ??= entry;
    else if (n.startsWith('*.')) {
      if (!this.wildcard.has(n.slice(1))) this.wildcard.set(n.slice(1), entry);
    } else if (!this.exact.has(n)) this.exact.set(n, entry);
  }
}

export const EMPTY_SNI_TABLE: SniTable = new CompiledSniTable('');

export function sniRevKey(items: readonly SslItem[]): string {
  return items.map((i) => `${i.id}@${i.modRevision}`).join(',');
}

/**
 * The snapshot's table after a batch: `prev` itself when no `ssls` object
 * changed, else a new one reusing the contexts of unchanged objects.
 */
export function nextSniTable(raw: ReadonlyMap<string, { readonly value: unknown; readonly modRevision: number }>, prev: SniTable, env: SniCompileEnv): SniTable {
  const items: SslItem[] = [];
  for (const [id, item] of raw) items.push({ id, value: item.value as SslConf, modRevision: item.modRevision });
  items.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (sniRevKey(items) === prev.revKey) return prev;
  return compileSniTable(items, env, prev.byId);
}

/** Builds the table; objects that cannot be served are logged and left out. */
export function compileSniTable(items: readonly SslItem[], env: SniCompileEnv, previous?: SniTableReuse): SniTable {
  // Ids sorted, so when two objects claim one name the same one wins in every worker and after every change.
  const sorted = [...items].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const table = new CompiledSniTable(sniRevKey(sorted));
  for (const item of sorted) {
    const conf = item.value;
    if ((conf.type ?? 'server') !== 'server' || (conf.status ?? 1) !== 1) continue;
    let entry: SniEntry;
    const old = previous?.get(item.id);
    if (old !== undefined && old.modRevision === item.modRevision) entry = old.entry;
    else {
      try {
        entry = compileEntry(item.id, conf, env);
      } catch (err) {
        env.logger.error({ ssl: item.id, err: (err as Error).message }, 'ssl: cannot load this certificate; its SNIs are not served');
        continue;
      }
    }
    table.byId.set(item.id, { modRevision: item.modRevision, entry });
    const names = Array.isArray(conf.snis) && conf.snis.length > 0 ? conf.snis : conf.sni !== undefined ? [conf.sni] : [];
    for (const name of names) table.add(name, entry);
  }
  return table;
}

export type SniTableReuse = ReadonlyMap<string, { readonly modRevision: number; readonly entry: SniEntry }>;

function compileEntry(id: string, conf: SslConf, env: SniCompileEnv): SniEntry {
  const certs = [conf.cert, ...(conf.certs ?? [])];
  const keys = [conf.key, ...(conf.keys ?? [])];
  const options: SecureContextOptions = { ...env.base, cert: [], key: [] };
  for (let i = 0; i < certs.length; i++) {
    const cert = certs[i];
    const key = keys[i];
    if (typeof cert !== 'string' || typeof key !== 'string') throw new Error(`certificate pair ${i + 1} is incomplete`);
    (options.cert as string[]).push(cert);
    // A key the Admin API stored encrypted is opened with the keyring; a PEM as written reads as itself.
    (options.key as string[]).push(decryptValue(key, env.keyring) ?? key);
  }
  const client = conf.client as { ca?: string; depth?: number; skip_mtls_uri_regex?: string[] } | undefined;
  let mtls: MtlsPolicy | undefined;
  if (client?.ca !== undefined) {
    options.ca = client.ca;
    mtls = { skip: client.skip_mtls_uri_regex?.map((p) => new RegExp(p)), depth: client.depth ?? 1, cas: parseCaBundle(client.ca) };
  }
  const context = createSecureContext(options);
  const protocols = Array.isArray(conf.ssl_protocols) && conf.ssl_protocols.length > 0 ? new Set(conf.ssl_protocols as string[]) : undefined;
  return { id, context, options, mtls, protocols };
}
