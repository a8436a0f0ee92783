/**
 * How long a verified client's chain is, for client.depth (nginx's
 * ssl_verify_depth). OpenSSL's verify depth is not reachable from Node, and
 * the chain Node reports for a peer (`getPeerCertificate(true)`) is not
 * completed from the context an SNI callback switched to, so it can stop at
 * the client's own certificate. The chain is rebuilt here from what the
 * client sent and the object's CA certificates, by issuer: OpenSSL has
 * already verified the signatures (the socket is authorized), so this only
 * counts links.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';

/** The certificates of a PEM bundle (an ssls object's client.ca), parsed once when config changes. */
export function parseCaBundle(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

type PeerCert = { raw?: Buffer; issuerCertificate?: PeerCert };

/** Certificates in the verified chain, the client's own included (client, intermediates, root). */
export function verifiedChainLength(socket: TLSSocket, cas: readonly X509Certificate[]): number {
  const leaf = socket.getPeerX509Certificate();
  if (leaf === undefined) return 0;
  const candidates = [...cas];
  // What the client sent beside its own certificate (intermediates).
  const seen = new Set<PeerCert>();
  for (let c = (socket.getPeerCertificate(true) as PeerCert).issuerCertificate; c !== undefined && !seen.has(c); c = c.issuerCertificate) {
    seen.add(c);
    if (c.raw !== undefined) candidates.push(new X509Certificate(c.raw));
  }
  let n = 1;
  const used = new Set<string>([leaf.fingerprint256]);
  for (let current = leaf; n < 32 && !current.checkIssued(current); n++) {
    const issuer = candidates.find((c) => !used.has(c.fingerprint256) && current.checkIssued(c));
    if (issuer === undefined) break;
    used.add(issuer.fingerprint256);
    current = issuer;
  }
  return n;
}
