/**
 * apisix.ssl's protocol, cipher and ticket settings as Node's secure context
 * options, shared by every certificate's context.
 */
import { constants } from 'node:crypto';
import { DEFAULT_CIPHERS, type SecureContextOptions, type SecureVersion } from 'node:tls';
import { ConfigError } from '../config/project-root.js';
import type { PorticoConfig } from '../config/types.js';

const VERSIONS: readonly SecureVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];
/** OpenSSL's TLS 1.3 suites in Node's default order. */
const TLS13_SUITES = DEFAULT_CIPHERS.split(':').filter((c) => c.startsWith('TLS_'));

export function tlsBaseOptions(ssl: PorticoConfig['apisix']['ssl']): SecureContextOptions {
  const asked = ssl.ssl_protocols.trim().split(/\s+/);
  const indexes = asked.map((v) => VERSIONS.indexOf(v as SecureVersion)).sort();
  const min = indexes[0]!;
  const max = indexes[indexes.length - 1]!;
  // Node sets a range, not a set: a gap (TLSv1.1 TLSv1.3) cannot be served as written.
  if (new Set(indexes).size !== max - min + 1) {
    throw new ConfigError(`apisix.ssl.ssl_protocols: "${ssl.ssl_protocols}" has a gap; Portico serves a contiguous range of versions`);
  }
  let ciphers = ssl.ssl_ciphers;
  // nginx's ssl_ciphers leaves TLS 1.3 suites alone; Node drops TLS 1.3 when a list names none, so keep them.
  if (!ciphers.split(':').some((c) => c.startsWith('TLS_'))) ciphers = `${TLS13_SUITES.join(':')}:${ciphers}`;
  // OpenSSL 3 refuses TLS 1.0/1.1 at its default security level; an operator who lists them asks for them.
  if (min < 2) ciphers += ':@SECLEVEL=0';
  return {
    minVersion: VERSIONS[min],
    maxVersion: VERSIONS[max],
    ciphers,
    // nginx's ssl_prefer_server_ciphers on, as APISIX's template sets.
    honorCipherOrder: true,
    // ssl_session_tickets off (APISIX's default): no tickets, so no long-lived ticket key weakens forward secrecy.
    secureOptions: ssl.ssl_session_tickets ? 0 : constants.SSL_OP_NO_TICKET,
  };
}

