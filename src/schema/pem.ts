/** PEM checks with APISIX's messages (apisix/ssl.lua validate), done with Node's crypto. */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';

function parseCert(pem: string): X509Certificate | undefined {
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

function parseKey(pem: string): KeyObject | undefined {
  try {
    return createPrivateKey(pem);
  } catch {
    return undefined;
  }
}

/**
 * `cert` must parse; with `key`, so must the key, and (beyond APISIX, which
 * leaves this as a TODO) the two must belong together, or every handshake
 * with the pair would fail later.
 */
export function validateCertKey(cert: string, key?: string): string | undefined {
  const c = parseCert(cert);
  if (!c) return 'failed to parse cert: PEM_read_bio_X509_AUX() failed';
  if (key === undefined) return undefined;
  const k = parseKey(key);
  if (!k) return 'failed to parse key: PEM_read_bio_PrivateKey() failed';
  if (!c.checkPrivateKey(k)) return 'failed to match cert and key: the private key does not belong to the certificate';
  return undefined;
}
