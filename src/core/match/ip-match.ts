/**
 * IP address and CIDR matching, compiled once per list (route `remote_addrs`,
 * the `ipmatch` vars operator, ip-restriction). Behaves like
 * lua-resty-ipmatcher: entries are IPv4/IPv6 addresses or CIDRs, a bad entry
 * fails compilation with `invalid ip address: <entry>`, and a client address
 * that does not parse simply does not match.
 *
 * Node reports IPv4 clients of a dual-stack socket as `::ffff:a.b.c.d`; such an
 * address is matched against the IPv4 entries as well as the IPv6 ones, so a
 * route written for `10.0.0.0/8` works whichever way the listener was bound.
 */

export type IpMatcher = (ip: string) => boolean;

/** Parses dotted-quad IPv4 strictly (no leading zeros, as inet_pton); -1 when invalid. */
export function parseIPv4(s: string): number {
  const len = s.length;
  if (len < 7 || len > 15) return -1;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      // A leading zero would be read as octal by some resolvers: refuse it.
      if (digits === 1 && octet === 0) return -1;
      octet = octet * 10 + (c - 48);
      if (octet > 255) return -1;
      digits++;
    } else if (c === 46) {
      if (digits === 0) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
      if (dots > 3) return -1;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  // Multiplication keeps it an unsigned 32-bit number (no sign bit surprises).
  return value * 256 + octet;
}

/** Parses an IPv6 address (with `::` and an optional dotted IPv4 tail) into a 128-bit bigint. */
export function parseIPv6(s: string): bigint | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  const dbl = s.indexOf('::');
  if (dbl !== -1 && s.indexOf('::', dbl + 1) !== -1) return undefined;

  const head = dbl === -1 ? s : s.slice(0, dbl);
  const tail = dbl === -1 ? '' : s.slice(dbl + 2);
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === '' ? [] : tail.split(':');

  const words: number[] = [];
  const parseGroups = (groups: string[], allowV4Tail: boolean): boolean => {
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (allowV4Tail && i === groups.length - 1 && g.includes('.')) {
        const v4 = parseIPv4(g);
        if (v4 < 0) return false;
        words.push(Math.floor(v4 / 65536), v4 % 65536);
        continue;
      }
      if (g.length === 0 || g.length > 4 || !/^[0-9a-fA-F]+$/.test(g)) return false;
      words.push(parseInt(g, 16));
    }
    return true;
  };

  if (dbl === -1) {
    if (!parseGroups(headGroups, true) || words.length !== 8) return undefined;
  } else {
    if (!parseGroups(headGroups, false)) return undefined;
    const headLen = words.length;
    if (!parseGroups(tailGroups, true)) return undefined;
    const tailWords = words.splice(headLen);
    // `::` stands for at least one zero group.
    if (headLen + tailWords.length > 7) return undefined;
    while (words.length + tailWords.length < 8) words.push(0);
    words.push(...tailWords);
  }

  let v = 0n;
  for (const w of words) v = (v << 16n) | BigInt(w);
  return v;
}

const MAPPED_PREFIX = 0xffffn << 32n;
const LOW32 = 0xffffffffn;

/** `::ffff:1.2.3.4` → `1.2.3.4`; anything else unchanged. For `remote_addr` display. */
export function unmapIPv4(ip: string): string {
  if (ip.length > 7 && (ip.startsWith('::ffff:') || ip.startsWith('::FFFF:')) && ip.indexOf('.') !== -1) {
    const v4 = ip.slice(7);
    if (parseIPv4(v4) >= 0) return v4;
  }
  return ip;
}

export function isValidIp(ip: string): boolean {
  return parseIPv4(ip) >= 0 || parseIPv6(ip) !== undefined;
}

/** True when `entry` is an address or CIDR that compileIpMatcher accepts. */
export function isValidIpOrCidr(entry: string): boolean {
  try {
    compileIpMatcher([entry]);
    return true;
  } catch {
    return false;
  }
}

function v4Mask(bits: number): number {
  // 2**32 - 2**(32-bits) stays an exact unsigned value; bit operators would go signed.
  return bits === 0 ? 0 : 4294967296 - 2 ** (32 - bits);
}

function v6Mask(bits: number): bigint {
  return bits === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - bits)) - 1n);
}

function stripZone(ip: string): string {
  const z = ip.indexOf('%');
  return z === -1 ? ip : ip.slice(0, z);
}

/**
 * Compiles a list of addresses/CIDRs. Networks are grouped by prefix length, so
 * a lookup costs one set probe per distinct prefix length (≤ 33 for IPv4,
 * ≤ 129 for IPv6), whatever the list's size.
 */
export function compileIpMatcher(list: readonly string[]): IpMatcher {
  const v4 = new Map<number, Set<number>>();
  const v6 = new Map<number, Set<bigint>>();

  for (const raw of list) {
    if (typeof raw !== 'string') throw new Error(`invalid ip address: ${String(raw)}`);
    const slash = raw.indexOf('/');
    const addr = slash === -1 ? raw : raw.slice(0, slash);
    const bitsText = slash === -1 ? undefined : raw.slice(slash + 1);
    if (bitsText !== undefined && !/^\d{1,3}$/.test(bitsText)) throw new Error(`invalid ip address: ${raw}`);

    const a4 = parseIPv4(addr);
    if (a4 >= 0) {
      const bits = bitsText === undefined ? 32 : Number(bitsText);
      if (bits > 32) throw new Error(`invalid ip address: ${raw}`);
      const mask = v4Mask(bits);
      let set = v4.get(mask);
      if (!set) v4.set(mask, (set = new Set()));
      set.add(maskV4(a4, mask));
      continue;
    }
    const a6 = parseIPv6(addr);
    if (a6 !== undefined) {
      const bits = bitsText === undefined ? 128 : Number(bitsText);
      if (bits > 128) throw new Error(`invalid ip address: ${raw}`);
      const mask = v6Mask(bits);
      let set = v6.get(bits);
      if (!set) v6.set(bits, (set = new Set()));
      set.add(a6 & mask);
      continue;
    }
    throw new Error(`invalid ip address: ${raw}`);
  }

  const v4Groups = [...v4.entries()];
  const v6Groups = [...v6.entries()].map(([bits, set]) => [v6Mask(bits), set] as const);
  const hasV6 = v6Groups.length > 0;

  const matchV4 = (a: number): boolean => {
    for (let i = 0; i < v4Groups.length; i++) {
      const g = v4Groups[i]!;
      if (g[1].has(maskV4(a, g[0]))) return true;
    }
    return false;
  };

  return (ip: string): boolean => {
    if (typeof ip !== 'string') return false;
    const a4 = parseIPv4(ip);
    if (a4 >= 0) return matchV4(a4);
    const a6 = parseIPv6(stripZone(ip));
    if (a6 === undefined) return false;
    if (v4Groups.length > 0 && (a6 >> 32n) << 32n === MAPPED_PREFIX && matchV4(Number(a6 & LOW32))) return true;
    if (!hasV6) return false;
    for (let i = 0; i < v6Groups.length; i++) {
      const g = v6Groups[i]!;
      if (g[1].has(a6 & g[0])) return true;
    }
    return false;
  };
}

function maskV4(a: number, mask: number): number {
  // `&` yields a signed int32; `>>> 0` brings it back to the unsigned range used as set keys.
  return (a & mask) >>> 0;
}
