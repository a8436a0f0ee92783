/**
 * Golden encodings of Portico's protocol extensions (docs/pubsub.md): the
 * server's protobufjs codec and the client library's own encoder must write
 * the same bytes, and each side must read the other's.
 */
import { describe, expect, it } from 'vitest';
import { decodeResponse as clientDecode, encodeRequest as clientEncode } from '../../src/client/pubsub/protocol.js';
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse } from '../../src/core/pubsub/codec.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (h: string): Buffer => Buffer.from(h.replace(/\s+/g, ''), 'hex');
const b = (s: string): Buffer => Buffer.from(s);
/** protobufjs hands out plain Uint8Array views when it decodes a Uint8Array frame. */
const u = (s: string): Uint8Array => new Uint8Array(Buffer.from(s));

describe('requests', () => {
  const cases: Array<[string, Parameters<typeof encodeRequest>[0], Parameters<typeof clientEncode>[1], string]> = [
    [
      'subscribe from earliest with 10 messages of credit',
      { sequence: 7n, cmd_subscribe: { topic: 't', offset: -2n, credit_messages: 10n } },
      { cmd: 'subscribe', topic: 't', partition: 0, offset: -2n, group: '', messages: 10n, bytes: 0n },
      '08 07 9a 02 10 0a 01 74 18 fe ff ff ff ff ff ff ff ff 01 28 0a',
    ],
    ['credit', { sequence: 3n, cmd_credit: { subscription: 1, messages: 5n } }, { cmd: 'credit', subscription: 1, messages: 5n, bytes: 0n }, '08 03 a2 02 04 08 01 10 05'],
    [
      'produce one value',
      { sequence: 4n, cmd_produce: { topic: 't', messages: [{ value: b('v') }] } },
      { cmd: 'produce', topic: 't', partition: 0, acks: '', messages: [{ value: 'v' }] },
      '08 04 ba 02 08 0a 01 74 22 03 12 01 76',
    ],
  ];
  for (const [name, server, client, h] of cases) {
    it(name, () => {
      expect(hex(encodeRequest(server))).toBe(h.replace(/\s+/g, ''));
      expect(hex(clientEncode(server.sequence!, client))).toBe(h.replace(/\s+/g, ''));
      expect(decodeRequest(bytes(h)).sequence).toBe(server.sequence);
    });
  }

  it('produce with key, headers and timestamp decodes on the server as the client wrote it', () => {
    const wire = clientEncode(9n, { cmd: 'produce', topic: 'orders', partition: 2, acks: 'leader', messages: [{ key: 'k', value: 'v', headers: [{ key: 'h', value: 'x' }], timestamp: 1700000000000n }] });
    expect(decodeRequest(wire)).toEqual({
      sequence: 9n,
      command: 'cmd_produce',
      params: { topic: 'orders', partition: 2, acks: 'leader', messages: [{ key: u('k'), value: u('v'), headers: [{ key: 'h', value: u('x') }], timestamp: 1700000000000n }] },
    });
  });
});

describe('responses', () => {
  it('push: the hand encoder writes what protobufjs reads, and the client reads it', () => {
    const frame = encodeResponse({ sequence: 0n, push_resp: { subscription: 1, messages: [{ offset: 5n, timestamp: 0n, value: b('v') }] } });
    expect(hex(frame)).toBe('c202090801120508052201 76'.replace(/\s+/g, ''));
    expect(decodeResponse(frame)).toEqual({ sequence: 0n, push_resp: { subscription: 1, messages: [{ offset: 5n, timestamp: 0n, key: Buffer.alloc(0), value: b('v') }], error: '' } });
    const c = clientDecode(frame);
    expect(c.sequence).toBe(0n);
    expect(c.response.kind).toBe('push');
  });

  it('a record with headers, and a push carrying an error', () => {
    const frame = encodeResponse({
      sequence: 3n,
      kafka_fetch_resp: { messages: [{ offset: 2n ** 60n, timestamp: 1700000000000n, key: b('k'), value: b('v'), headers: [{ key: 'a', value: b('1') }, { key: 'b' }] }] },
    });
    const viaProtobufjs = decodeResponse(frame);
    expect(viaProtobufjs).toEqual({
      sequence: 3n,
      kafka_fetch_resp: { messages: [{ offset: 2n ** 60n, timestamp: 1700000000000n, key: b('k'), value: b('v'), headers: [{ key: 'a', value: b('1') }, { key: 'b', value: Buffer.alloc(0) }] }] },
    });
    const c = clientDecode(frame).response;
    if (c.kind !== 'fetch') throw new Error(c.kind);
    expect(c.messages[0]!.offset).toBe(2n ** 60n);
    expect(c.messages[0]!.headers.map((h) => [h.key, Buffer.from(h.value).toString()])).toEqual([['a', '1'], ['b', '']]);
    const failed = clientDecode(encodeResponse({ sequence: 0n, push_resp: { subscription: 2, messages: [], error: 'boom' } })).response;
    expect(failed).toEqual({ kind: 'push', subscription: 2, messages: [], error: 'boom' });
  });

  it('produce results, subscribe, credit, ack and errors', () => {
    const produce = encodeResponse({ sequence: 4n, produce_resp: { results: [{ offset: 5n }] } });
    expect(hex(produce)).toBe('0804ba02040a020805');
    expect(clientDecode(produce).response).toEqual({ kind: 'produce', results: [{ offset: 5n, error: '' }] });
    expect(clientDecode(encodeResponse({ sequence: 1n, subscribe_resp: { subscription: 3, offset: -1n } })).response).toEqual({ kind: 'subscribe', subscription: 3, offset: -1n });
    expect(clientDecode(encodeResponse({ sequence: 1n, credit_resp: { messages: 7n, bytes: 0n } })).response).toEqual({ kind: 'credit', messages: 7n, bytes: 0n });
    expect(clientDecode(encodeResponse({ sequence: 1n, ack_resp: { committed: 11n } })).response).toEqual({ kind: 'ack', committed: 11n });
    expect(clientDecode(encodeResponse({ sequence: 1n, error_resp: { code: 0, message: 'unknown command' } })).response).toEqual({ kind: 'error', message: 'unknown command' });
  });
});
