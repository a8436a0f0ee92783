/**
 * deployment.admin.allow_admin: CIDRs that may reach the Admin API. Checked
 * against the socket's peer address only; X-Forwarded-For and X-Real-IP are
 * client-controlled and never consulted (CVE-2022-24112).
 */
import { BlockList, isIP } from 'node:net';

export type AddressCheck = (address: string | undefined) => boolean;

const MAPPED_V4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

export function compileAllowList(cidrs: readonly string[]): AddressCheck {
  // APISIX writes no allow/deny lines for an empty list, so everyone may connect.
  if (cidrs.length === 0) return () => true;
  const list = new BlockList();
  for (const entry of cidrs) {
    const [addr, bits, extra] = entry.split('/');
    const family = isIP(addr ?? '');
    if (extra !== undefined || family === 0) throw new Error(`deployment.admin.allow_admin: invalid address "${entry}"`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) {
      list.addAddress(addr!, type);
      continue;
    }
    const prefix = Number(bits);
    if (!/^\d+$/.test(bits) || prefix > (family === 4 ? 32 : 128)) {
      throw new Error(`deployment.admin.allow_admin: invalid prefix length in "${entry}"`);
    }
    list.addSubnet(addr!, prefix, type);
  }
  return (address) => {
    if (!address) return false;
    // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; match them against IPv4 rules too.
    const mapped = MAPPED_V4.exec(address);
    if (mapped) return list.check(mapped[1]!, 'ipv4') || list.check(address, 'ipv6');
    const family = isIP(address);
    if (family === 0) return false;
    return list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  };
}
