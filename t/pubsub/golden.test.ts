/**
 * Golden encodings of APISIX's pubsub.proto messages, produced by lua-protobuf
 * 0.5.3 (APISIX's encoder): ours must encode to the same bytes and decode them back.
 */
import { describe, expect, it } from 'vitest';
import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  kafkaMessageWireSize,
  maxBodyBytes,
  type PubSubRequest,
  type PubSubResponse,
} from '../../src/core/pubsub/codec.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (h: string): Buffer => Buffer.from(h.replace(/\s+/g, ''), 'hex');
const ascii = (s: string): string => Buffer.from(s).toString('hex');
const b = (s: string): Buffer => Buffer.from(s);

const requests: Array<[string, PubSubRequest, string]> = [
  ['ping state=test, sequence 0', { sequence: 0n, cmd_ping: { state: b('test') } }, '82 02 06 0a 04 74 65 73 74'],
  ['ping without state, sequence 5', { sequence: 5n, cmd_ping: {} }, '08 05 82 02 00'],
  ['cmd_empty', { sequence: 0n, cmd_empty: {} }, 'fa 01 00'],
];

const responses: Array<[string, PubSubResponse, string]> = [
  ['pong state=test', { sequence: 0n, pong_resp: { state: b('test') } }, '82 02 06 0a 04 74 65 73 74'],
  ['empty pong keeps its sub-message', { sequence: 0n, pong_resp: {} }, '82 02 00'],
  ['unknown command error, code 0 left out', { sequence: 0n, error_resp: { code: 0, message: 'unknown command' } }, 'fa 01 11 12 0f' + ascii('unknown command')],
  ['list offset 30', { sequence: 2n, kafka_list_offset_resp: { offset: 30n } }, '08 02 92 02 02 08 1e'],
  ['list offset -1 (ten-byte varint)', { sequence: 2n, kafka_list_offset_resp: { offset: -1n } }, '08 02 92 02 0b 08 ff ff ff ff ff ff ff ff ff 01'],
  [
    'fetch with one message, empty key left out',
    { sequence: 6n, kafka_fetch_resp: { messages: [{ offset: 14n, timestamp: 1700000000000n, key: Buffer.alloc(0), value: b('testmsg15') }] } },
    '08 06 8a 02 16 0a 14 08 0e 10 80 d0 95 ff bc 31 22 09' + ascii('testmsg15'),
  ],
];

describe('golden encodings (lua-protobuf 0.5.3)', () => {
  for (const [name, req, h] of requests) {
    it(`request: ${name}`, () => {
      expect(hex(encodeRequest(req))).toBe(h.replace(/\s+/g, ''));
      const d = decodeRequest(bytes(h));
      const [cmd] = Object.keys(req).filter((k) => k !== 'sequence');
      expect(d.sequence).toBe(req.sequence);
      expect(d.command).toBe(cmd);
    });
  }

  it('request: ping params decode with proto3 defaults filled in', () => {
    const d = decodeRequest(bytes('08 05 82 02 00'));
    expect(d).toEqual({ sequence: 5n, command: 'cmd_ping', params: { state: Buffer.alloc(0) } });
    const t = decodeRequest(bytes('82 02 06 0a 04 74 65 73 74'));
    expect(t.command === 'cmd_ping' && Buffer.from(t.params.state).toString()).toBe('test');
    expect(decodeRequest(bytes('fa 01 00'))).toEqual({ sequence: 0n, command: 'cmd_empty', params: {} });
  });

  it('request: list offset as lua-protobuf wrote it (field 3 before 1) decodes, and ours is the same message', () => {
    // lua-protobuf emits fields in hash order; protobufjs in field-number order. Proto3 does not care
    // about field order, so the golden bytes must decode and our bytes must decode to the same request.
    const golden = bytes('08 03 92 02 0e 18 ff ff ff ff ff ff ff ff ff 01 0a 01 74');
    const expected = { sequence: 3n, command: 'cmd_kafka_list_offset', params: { topic: 't', partition: 0, timestamp: -1n } };
    expect(decodeRequest(golden)).toEqual(expected);
    const ours = encodeRequest({ sequence: 3n, cmd_kafka_list_offset: { topic: 't', partition: 0, timestamp: -1n } });
    expect(hex(ours)).toBe('080392020e0a017418ffffffffffffffffff01');
    expect(ours.length).toBe(golden.length);
    expect(decodeRequest(ours)).toEqual(expected);
  });

  for (const [name, resp, h] of responses) {
    it(`response: ${name}`, () => {
      expect(hex(encodeResponse(resp))).toBe(h.replace(/\s+/g, ''));
      const d = decodeResponse(bytes(h));
      expect(d.sequence).toBe(resp.sequence);
      expect(Object.keys(d).sort()).toEqual(Object.keys(resp).sort());
    });
  }

  it('response: decoded values match what was encoded', () => {
    const fetch = decodeResponse(bytes('08 06 8a 02 16 0a 14 08 0e 10 80 d0 95 ff bc 31 22 09' + ascii('testmsg15')));
    if (!('kafka_fetch_resp' in fetch)) throw new Error('not a fetch response');
    expect(fetch.kafka_fetch_resp.messages).toHaveLength(1);
    const [m] = fetch.kafka_fetch_resp.messages;
    expect(m!.offset).toBe(14n);
    expect(m!.timestamp).toBe(1700000000000n);
    expect(m!.key).toEqual(Buffer.alloc(0));
    expect(Buffer.from(m!.value!).toString()).toBe('testmsg15');
    expect(decodeResponse(bytes('08 02 92 02 0b 08 ff ff ff ff ff ff ff ff ff 01'))).toEqual({ sequence: 2n, kafka_list_offset_resp: { offset: -1n } });
    expect(decodeResponse(bytes('fa 01 11 12 0f' + ascii('unknown command')))).toEqual({ sequence: 0n, error_resp: { code: 0, message: 'unknown command' } });
  });
});

describe('int64 stays exact', () => {
  const extremes = [2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n, -1n, -2n, 9999999999999n];
  for (const v of extremes) {
    it(`${v} round-trips as sequence, offset and timestamp`, () => {
      const req = decodeRequest(encodeRequest({ sequence: v, cmd_kafka_fetch: { topic: 'x', partition: 1, offset: v } }));
      expect(req).toEqual({ sequence: v, command: 'cmd_kafka_fetch', params: { topic: 'x', partition: 1, offset: v } });
      const resp = decodeResponse(encodeResponse({ sequence: v, kafka_fetch_resp: { messages: [{ offset: v, timestamp: v, value: b('x') }] } }));
      expect(resp).toEqual({ sequence: v, kafka_fetch_resp: { messages: [{ offset: v, timestamp: v, key: Buffer.alloc(0), value: b("x") }] } });
    });
  }

  it('2^63-1 is the nine-byte varint ff..7f on the wire', () => {
    expect(hex(encodeRequest({ sequence: 2n ** 63n - 1n, cmd_empty: {} }))).toBe('08ffffffffffffffff7ffa0100');
  });
});

describe('decoder edge cases (lua-protobuf parity and better)', () => {
  it('empty payload decodes to no command', () => {
    expect(decodeRequest(Buffer.alloc(0))).toEqual({ sequence: 0n, command: undefined, params: undefined });
  });
  it('unknown low field numbers are skipped', () => {
    // field 2 varint 7, field 5 length-delimited "ab", then ping
    expect(decodeRequest(bytes('10 07 2a 02 61 62 08 09 82 02 00'))).toMatchObject({ sequence: 9n, command: 'cmd_ping' });
  });
  it('an unknown command number (>30) is reported, not silently dropped', () => {
    expect(decodeRequest(bytes('08 05 c2 02 00'))).toEqual({ sequence: 5n, command: undefined, params: undefined, unknownField: 40 });
  });
  it('the last command on the wire wins', () => {
    expect(decodeRequest(bytes('82 02 00 fa 01 00')).command).toBe('cmd_empty');
    expect(decodeRequest(bytes('fa 01 00 82 02 00')).command).toBe('cmd_ping');
  });
  it.each([
    ['cut-short sub-message', '82 02 05 0a 04'],
    ['sequence with the wrong wire type', '0a 01 00'],
    ['truncated varint', '08 ff'],
    ['field number 0', '00 01'],
    ['invalid wire type', '0f'],
    ['command with the wrong wire type', '80 02 01'],
  ])('throws on %s', (_name, h) => {
    expect(() => decodeRequest(bytes(h))).toThrow();
  });
});

describe('size helpers', () => {
  it('kafkaMessageWireSize matches the encoded size of each message', () => {
    const msgs = [
      { offset: 0n, timestamp: 0n },
      { offset: 14n, timestamp: 1700000000000n, value: b('testmsg15') },
      { offset: -1n, timestamp: 2n ** 62n, key: b('k'.repeat(200)), value: b('v'.repeat(70000)) },
    ];
    for (const m of msgs) {
      const without = encodeResponse({ sequence: 0n, kafka_fetch_resp: { messages: [] } }).length;
      const withOne = encodeResponse({ sequence: 0n, kafka_fetch_resp: { messages: [m] } }).length;
      // The outer length prefix may grow by a byte or two as the body grows.
      const body = kafkaMessageWireSize(m);
      expect(withOne - without).toBeGreaterThanOrEqual(body);
      expect(withOne - without).toBeLessThanOrEqual(body + 2);
    }
  });
  it('a body of maxBodyBytes fits the frame with the largest sequence', () => {
    for (const frame of [200, 65535, 1 << 20]) {
      const budget = maxBodyBytes(frame);
      // a pong whose state fills the budget exactly: body = 1 tag + len varint + data
      let n = budget - 1 - 3;
      while (1 + (n < 128 ? 1 : n < 16384 ? 2 : 3) + n > budget) n--;
      const buf = encodeResponse({ sequence: -1n, pong_resp: { state: Buffer.alloc(n, 1) } });
      expect(buf.length).toBeLessThanOrEqual(frame);
    }
  });
});
