/**
 * The client side of proto/pubsub.proto without protobufjs, so the same code
 * loads in Node and, unbundled, in a browser: requests are written with
 * core/pubsub/wire.ts, responses read field by field. Byte fields are views
 * into the received frame (no copies).
 */
import { encodeMessage, utf8String, WireReader, type WireFields } from '../../core/pubsub/wire.js';

export interface Header {
  key: string;
  value: Uint8Array;
}

export interface Message {
  offset: bigint;
  /** ms since the epoch. */
  timestamp: bigint;
  key: Uint8Array;
  value: Uint8Array;
  headers: Header[];
}

export interface ProduceInput {
  key?: Uint8Array | string;
  value: Uint8Array | string;
  headers?: Array<{ key: string; value: Uint8Array | string }>;
  /** ms; the broker's (or gateway's) clock when absent. */
  timestamp?: bigint;
}

export type Request =
  | { cmd: 'ping'; state: Uint8Array }
  | { cmd: 'list_offset'; topic: string; partition: number; timestamp: bigint }
  | { cmd: 'fetch'; topic: string; partition: number; offset: bigint }
  | { cmd: 'subscribe'; topic: string; partition: number; offset: bigint; group: string; messages: bigint; bytes: bigint }
  | { cmd: 'credit'; subscription: number; messages: bigint; bytes: bigint }
  | { cmd: 'unsubscribe'; subscription: number }
  | { cmd: 'ack'; subscription: number; offset: bigint }
  | { cmd: 'produce'; topic: string; partition: number; acks: string; messages: ProduceInput[] };

export type Response =
  | { kind: 'error'; message: string }
  | { kind: 'pong'; state: Uint8Array }
  | { kind: 'fetch'; messages: Message[] }
  | { kind: 'list_offset'; offset: bigint }
  | { kind: 'subscribe'; subscription: number; offset: bigint }
  | { kind: 'credit'; messages: bigint; bytes: bigint }
  | { kind: 'unsubscribe'; offset: bigint }
  | { kind: 'ack'; committed: bigint }
  | { kind: 'produce'; results: Array<{ offset: bigint; error: string }> }
  | { kind: 'push'; subscription: number; messages: Message[]; error: string };

const enc = new TextEncoder();
const bytes = (v: Uint8Array | string | undefined): Uint8Array | undefined => (typeof v === 'string' ? enc.encode(v) : v);

function command(r: Request): [number, WireFields] {
  switch (r.cmd) {
    case 'ping':
      return [32, [[1, r.state]]];
    case 'fetch':
      return [33, [[1, r.topic], [2, r.partition], [3, r.offset]]];
    case 'list_offset':
      return [34, [[1, r.topic], [2, r.partition], [3, r.timestamp]]];
    case 'subscribe':
      return [35, [[1, r.topic], [2, r.partition], [3, r.offset], [4, r.group], [5, r.messages], [6, r.bytes]]];
    case 'credit':
      return [36, [[1, r.subscription], [2, r.messages], [3, r.bytes]]];
    case 'unsubscribe':
      return [37, [[1, r.subscription]]];
    case 'ack':
      return [38, [[1, r.subscription], [2, r.offset]]];
    case 'produce':
      return [
        39,
        [
          [1, r.topic],
          [2, r.partition],
          [3, r.acks],
          [
            4,
            {
              repeated: r.messages.map((m): WireFields => [
                [1, bytes(m.key)],
                [2, bytes(m.value)],
                [3, { repeated: (m.headers ?? []).map((h): WireFields => [[1, h.key], [2, bytes(h.value)]]) }],
                [4, m.timestamp],
              ]),
            },
          ],
        ],
      ];
  }
}

export function encodeRequest(sequence: bigint, r: Request): Uint8Array {
  const [field, body] = command(r);
  return encodeMessage([[1, sequence], [field, body]]);
}

const EMPTY: Uint8Array = new Uint8Array(0);

function readMessage(r: WireReader): Message {
  const m: Message = { offset: 0n, timestamp: 0n, key: EMPTY, value: EMPTY, headers: [] };
  while (r.pos < r.end) {
    const tag = r.varint();
    switch (tag) {
      case 0x08:
        m.offset = r.int64();
        break;
      case 0x10:
        m.timestamp = r.int64();
        break;
      case 0x1a:
        m.key = r.bytes();
        break;
      case 0x22:
        m.value = r.bytes();
        break;
      case 0x2a: {
        const b = r.bytes();
        const h = new WireReader(b);
        const header: Header = { key: '', value: EMPTY };
        while (h.pos < h.end) {
          const t = h.varint();
          if (t === 0x0a) header.key = h.string();
          else if (t === 0x12) header.value = h.bytes();
          else h.skip(t & 7);
        }
        m.headers.push(header);
        break;
      }
      default:
        r.skip(tag & 7);
    }
  }
  return m;
}

/** Reads the fields of a sub-message: `on(field, reader)` consumes each known field, others are skipped. */
function fields(buf: Uint8Array, on: (field: number, wire: number, r: WireReader) => boolean): void {
  const r = new WireReader(buf);
  while (r.pos < r.end) {
    const tag = r.varint();
    if (!on(tag >>> 3, tag & 7, r)) r.skip(tag & 7);
  }
}

function sub(r: WireReader): WireReader {
  const len = r.varint();
  const s = new WireReader(r.buf, r.pos, r.pos + len);
  if (s.end > r.end) throw new Error('field cut short');
  r.pos += len;
  return s;
}

export function decodeResponse(frame: Uint8Array): { sequence: bigint; response: Response } {
  const r = new WireReader(frame);
  let sequence = 0n;
  let response: Response | undefined;
  while (r.pos < r.end) {
    const tag = r.varint();
    const field = tag >>> 3;
    if (field === 1 && (tag & 7) === 0) {
      sequence = r.int64();
      continue;
    }
    if ((tag & 7) !== 2 || field < 31 || field > 40) {
      r.skip(tag & 7);
      continue;
    }
    const body = sub(r);
    response = decodeMember(field, body);
  }
  if (!response) throw new Error('pubsub response without a response member');
  return { sequence, response };
}

function decodeMember(field: number, b: WireReader): Response {
  const buf = b.buf.subarray(b.pos, b.end);
  switch (field) {
    case 31: {
      let message = '';
      fields(buf, (f, w, r) => (f === 2 && w === 2 ? ((message = r.string()), true) : false));
      return { kind: 'error', message };
    }
    case 32: {
      let state: Uint8Array = EMPTY;
      fields(buf, (f, w, r) => (f === 1 && w === 2 ? ((state = r.bytes()), true) : false));
      return { kind: 'pong', state };
    }
    case 33: {
      const messages: Message[] = [];
      fields(buf, (f, w, r) => (f === 1 && w === 2 ? (messages.push(readMessage(sub(r))), true) : false));
      return { kind: 'fetch', messages };
    }
    case 40: {
      const out: Response & { kind: 'push' } = { kind: 'push', subscription: 0, messages: [], error: '' };
      fields(buf, (f, w, r) => {
        if (f === 1 && w === 0) out.subscription = r.int32();
        else if (f === 2 && w === 2) out.messages.push(readMessage(sub(r)));
        else if (f === 3 && w === 2) out.error = r.string();
        else return false;
        return true;
      });
      return out;
    }
    case 39: {
      const results: Array<{ offset: bigint; error: string }> = [];
      fields(buf, (f, w, r) => {
        if (f !== 1 || w !== 2) return false;
        const res = { offset: 0n, error: '' };
        fields(r.bytes(), (g, x, q) => (g === 1 && x === 0 ? ((res.offset = q.int64()), true) : g === 2 && x === 2 ? ((res.error = utf8String(q.bytes())), true) : false));
        results.push(res);
        return true;
      });
      return { kind: 'produce', results };
    }
    default: {
      // The rest carry scalars only: up to two int fields.
      const v: [bigint, bigint] = [0n, 0n];
      fields(buf, (f, w, r) => (w === 0 && (f === 1 || f === 2) ? ((v[f - 1] = r.int64()), true) : false));
      switch (field) {
        case 34:
          return { kind: 'list_offset', offset: v[0] };
        case 35:
          return { kind: 'subscribe', subscription: Number(v[0]), offset: v[1] };
        case 36:
          return { kind: 'credit', messages: v[0], bytes: v[1] };
        case 37:
          return { kind: 'unsubscribe', offset: v[0] };
        default:
          return { kind: 'ack', committed: v[0] };
      }
    }
  }
}

export function text(b: Uint8Array): string {
  return utf8String(b);
}
