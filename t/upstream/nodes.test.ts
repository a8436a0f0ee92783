import { describe, expect, it } from 'vitest';
import { parseNodes } from '../../src/core/upstream/nodes.js';
import { defaultPort, parseAddr } from '../../src/core/upstream/index.js';

describe('node lists', () => {
  it('parses hash-form addresses, IPv6 included', () => {
    expect(parseAddr('example.com')).toEqual({ host: 'example.com' });
    expect(parseAddr('example.com:8080')).toEqual({ host: 'example.com', port: 8080 });
    expect(parseAddr('[::1]:8080')).toEqual({ host: '[::1]', port: 8080 });
    expect(parseAddr('[::1]')).toEqual({ host: '[::1]' });
    expect(parseAddr('::1')).toEqual({ host: '[::1]' });
    expect(() => parseAddr('a:0')).toThrow(/invalid port/);
    expect(() => parseAddr('a:65536')).toThrow(/invalid port/);
  });

  it('fills default ports by scheme and keeps weight and priority', () => {
    expect([defaultPort(undefined), defaultPort('http'), defaultPort('https'), defaultPort('grpc'), defaultPort('grpcs')]).toEqual([80, 80, 443, 80, 443]);
    const parsed = parseNodes({
      scheme: 'https',
      nodes: [
        { host: 'a', weight: 3, priority: 2 },
        { host: 'fe80::1', port: 9443, weight: 0 },
      ],
    });
    expect(parsed).toEqual([
      { key: 'a:443', host: 'a', connectHost: 'a', port: 443, weight: 3, priority: 2 },
      { key: '[fe80::1]:9443', host: '[fe80::1]', connectHost: 'fe80::1', port: 9443, weight: 0, priority: 0 },
    ]);
    expect(parseNodes({ nodes: { 'b:81': 2, '[::1]': 1 } }).map((n) => [n.key, n.weight])).toEqual([
      ['b:81', 2],
      ['[::1]:80', 1],
    ]);
    expect(parseNodes({ service_name: 'x', discovery_type: 'dns' })).toEqual([]);
  });
});
