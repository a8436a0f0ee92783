import { describe, expect, it } from 'vitest';
import { compileIpMatcher, isValidIpOrCidr, parseIPv4, parseIPv6, unmapIPv4 } from '../../src/core/match/ip-match.js';

describe('parseIPv4', () => {
  it('parses dotted quads to unsigned integers', () => {
    expect(parseIPv4('0.0.0.0')).toBe(0);
    expect(parseIPv4('255.255.255.255')).toBe(4294967295);
    expect(parseIPv4('10.1.2.3')).toBe(10 * 2 ** 24 + 1 * 65536 + 2 * 256 + 3);
  });
  it.each(['1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.4 ', '1..2.3', 'a.b.c.d', '', '1.2.3.'])(
    'rejects %j',
    (s) => expect(parseIPv4(s)).toBe(-1),
  );
});

describe('parseIPv6', () => {
  it('parses compressed, full and v4-tailed forms', () => {
    expect(parseIPv6('::')).toBe(0n);
    expect(parseIPv6('::1')).toBe(1n);
    expect(parseIPv6('2001:db8::1')).toBe((0x2001n << 112n) | (0xdb8n << 96n) | 1n);
    expect(parseIPv6('2001:0db8:0000:0000:0000:0000:0000:0001')).toBe(parseIPv6('2001:db8::1'));
    expect(parseIPv6('::ffff:1.2.3.4')).toBe((0xffffn << 32n) | 0x01020304n);
    expect(parseIPv6('1:2:3:4:5:6:7::')).toBe(parseIPv6('1:2:3:4:5:6:7:0'));
  });
  it.each([':::', '1::2::3', '12345::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', 'g::1', ':1::', '::1.2.3'])(
    'rejects %j',
    (s) => expect(parseIPv6(s)).toBeUndefined(),
  );
});

describe('compileIpMatcher', () => {
  it('matches exact IPv4 addresses and CIDRs', () => {
    const m = compileIpMatcher(['127.0.0.1', '10.0.0.0/8', '192.168.1.77/24']);
    expect(m('127.0.0.1')).toBe(true);
    expect(m('127.0.0.2')).toBe(false);
    expect(m('10.255.1.1')).toBe(true);
    expect(m('11.0.0.1')).toBe(false);
    // Host bits in the CIDR are masked off, as ipmatcher does.
    expect(m('192.168.1.1')).toBe(true);
    expect(m('192.168.2.1')).toBe(false);
  });

  it('handles /0, /32 and the top of the range without sign trouble', () => {
    expect(compileIpMatcher(['0.0.0.0/0'])('203.0.113.9')).toBe(true);
    const top = compileIpMatcher(['255.255.255.0/24']);
    expect(top('255.255.255.254')).toBe(true);
    expect(top('255.255.254.1')).toBe(false);
    expect(compileIpMatcher(['128.0.0.0/1'])('200.1.1.1')).toBe(true);
    expect(compileIpMatcher(['128.0.0.0/1'])('127.1.1.1')).toBe(false);
  });

  it('matches IPv6 addresses and CIDRs', () => {
    const m = compileIpMatcher(['::1', '2001:db8::/32', 'fe80::/10']);
    expect(m('::1')).toBe(true);
    expect(m('0:0:0:0:0:0:0:1')).toBe(true);
    expect(m('2001:db8:ffff::5')).toBe(true);
    expect(m('2001:db9::5')).toBe(false);
    expect(m('fe80::1%eth0')).toBe(true);
    expect(m('127.0.0.1')).toBe(false);
  });

  it('matches IPv4-mapped client addresses against IPv4 entries', () => {
    const m = compileIpMatcher(['10.0.0.0/8']);
    expect(m('::ffff:10.1.2.3')).toBe(true);
    expect(m('::ffff:11.1.2.3')).toBe(false);
    expect(m('::ffff:a01:203')).toBe(true);
  });

  it('does not match garbage or a v4 client against v6-only lists', () => {
    const m = compileIpMatcher(['::/0']);
    expect(m('not-an-ip')).toBe(false);
    expect(m('')).toBe(false);
    expect(m('::2')).toBe(true);
  });

  it.each(['1.2.3.4/33', '::1/129', '1.2.3.4/', '1.2.3.4/x', 'example.com', '1.2.3.256', '::1/-1'])(
    'refuses %j with ipmatcher\'s message',
    (bad) => {
      expect(() => compileIpMatcher([bad])).toThrow(`invalid ip address: ${bad}`);
      expect(isValidIpOrCidr(bad)).toBe(false);
    },
  );

  it('keeps lookup cost bounded by prefix lengths, not list size', () => {
    const list: string[] = [];
    for (let i = 0; i < 5000; i++) list.push(`10.${(i >> 8) & 255}.${i & 255}.0/24`);
    const m = compileIpMatcher(list);
    expect(m('10.19.135.7')).toBe(true);
    expect(m('10.200.0.1')).toBe(false);
  });
});

describe('unmapIPv4', () => {
  it('strips the mapped prefix only from mapped IPv4 addresses', () => {
    expect(unmapIPv4('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(unmapIPv4('::1')).toBe('::1');
    expect(unmapIPv4('10.0.0.1')).toBe('10.0.0.1');
  });
});
