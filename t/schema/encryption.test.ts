/**
 * APISIX-compatible field encryption (a plugin's encrypt_fields, encrypted after
 * validation as apisix/plugin.lua does): golden value, key rotation, path
 * walking, copies.
 */
import { describe, expect, it } from 'vitest';
import { decryptPluginFields, decryptValue, encryptPluginFields, encryptValue, KeyringError } from '../../src/core/secrets/encryption.js';
import { testRegistry } from './helpers.js';

const KEY16 = 'edd1c9f0985e76a2';
const KEY32 = 'abcdefghijklmnopqrstuvwxyz012345';
const registry = testRegistry();

describe('values', () => {
  it('matches APISIX and openssl: admin-secret under edd1c9f0985e76a2', () => {
    expect(encryptValue('admin-secret', [KEY16])).toBe('y4Z3aqo51xrt3f9UziNUrg==');
    expect(decryptValue('y4Z3aqo51xrt3f9UziNUrg==', [KEY16])).toBe('admin-secret');
  });

  it('uses AES-256 for 32-byte keys and round-trips unicode and empty strings', () => {
    for (const plain of ['', 'pässwörd-😀', 'x'.repeat(100)]) {
      const c = encryptValue(plain, [KEY32]);
      expect(c).not.toBe(plain);
      expect(decryptValue(c, [KEY32])).toBe(plain);
    }
  });

  it('tries every keyring entry when decrypting, encrypts with the first', () => {
    const old = encryptValue('s3cret', [KEY16]);
    expect(decryptValue(old, [KEY32, KEY16])).toBe('s3cret');
    expect(encryptValue('s3cret', [KEY32, KEY16])).toBe(encryptValue('s3cret', [KEY32]));
  });

  it('leaves what no key decrypts undecided', () => {
    expect(decryptValue('plain text', [KEY16])).toBeUndefined();
    expect(decryptValue('YWJj', [KEY16])).toBeUndefined(); // base64, not a whole block
    expect(decryptValue(encryptValue('x', [KEY32]), [KEY16])).toBeUndefined();
  });

  it('refuses bad keyrings', () => {
    expect(() => encryptValue('x', [])).toThrow(KeyringError);
    expect(() => encryptValue('x', ['short'])).toThrow('16 or 32 bytes');
  });
});

describe('plugin confs', () => {
  it('encrypts encrypt_fields in a copy and decrypts back', () => {
    const plugins = {
      'kafka-proxy': { sasl: { username: 'admin', password: 'admin-secret' } },
      checked: { min: 1 },
      unknown: { password: 'stays' },
    };
    const before = structuredClone(plugins);
    const enc = encryptPluginFields(plugins, registry, [KEY16]);
    expect(plugins).toEqual(before);
    expect(enc).toEqual({
      'kafka-proxy': { sasl: { username: 'admin', password: 'y4Z3aqo51xrt3f9UziNUrg==' } },
      checked: { min: 1 },
      unknown: { password: 'stays' },
    });
    expect(decryptPluginFields(enc, registry, [KEY16])).toEqual(plugins);
  });

  it('walks arrays on the way and encrypts string arrays and maps at the leaf', () => {
    const conf = {
      auth: { secret: 'a' },
      list: [{ token: 't1' }, { token: 't2' }, 'not-an-object'],
      tags: ['x', 1],
      headers: { h1: 'v1', n: 2 },
      other: 'plain',
    };
    const enc = encryptPluginFields({ nested: conf }, registry, [KEY16]).nested as typeof conf;
    const e = (s: string) => encryptValue(s, [KEY16]);
    expect(enc).toEqual({
      auth: { secret: e('a') },
      list: [{ token: e('t1') }, { token: e('t2') }, 'not-an-object'],
      tags: [e('x'), 1],
      headers: { h1: e('v1'), n: 2 },
      other: 'plain',
    });
    expect(decryptPluginFields({ nested: enc }, registry, [KEY16]).nested).toEqual(conf);
  });

  it('keeps values stored before encryption was on', () => {
    const plugins = { 'kafka-proxy': { sasl: { username: 'u', password: 'written-in-plain' } } };
    expect(decryptPluginFields(plugins, registry, [KEY16])).toEqual(plugins);
  });

  it('skips missing paths', () => {
    expect(encryptPluginFields({ 'kafka-proxy': {} }, registry, [KEY16])).toEqual({ 'kafka-proxy': {} });
  });
});
