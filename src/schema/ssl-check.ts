/** The Admin API's checks on an SSL object beyond its schema (apisix/ssl.lua check_ssl_conf). */
import type { CompiledSchema } from './compile.js';
import { validateCertKey } from './pem.js';
import { isSecretRef } from './secret-ref.js';

type Obj = Record<string, unknown>;

export function checkSsl(conf: Obj, schema: CompiledSchema): string | undefined {
  const err = schema.check(conf);
  if (err) return `invalid configuration: ${err}`;

  if (typeof conf.cert === 'string' && !isSecretRef(conf.cert) && !isSecretRef(conf.key)) {
    const e = validateCertKey(conf.cert, typeof conf.key === 'string' ? conf.key : undefined);
    if (e) return e;
  }
  if (conf.type === 'client') return undefined;

  const certs = Array.isArray(conf.certs) ? (conf.certs as string[]) : [];
  const keys = Array.isArray(conf.keys) ? (conf.keys as string[]) : [];
  if (certs.length !== keys.length) return 'mismatched number of certs and keys';
  for (let i = 0; i < certs.length; i++) {
    const cert = certs[i] as string;
    const key = keys[i] as string;
    if (isSecretRef(cert) || isSecretRef(key)) continue;
    const e = validateCertKey(cert, key);
    if (e) return `failed to handle cert-key pair[${i + 1}]: ${e}`;
  }

  const client = conf.client as Obj | undefined;
  if (client && typeof client.ca === 'string' && !isSecretRef(client.ca)) {
    const e = validateCertKey(client.ca);
    if (e) return `failed to validate client_cert: ${e}`;
  }
  return undefined;
}
