/**
 * Protobuf wire primitives without protobufjs, for the two places where a
 * general encoder costs too much or cannot go: the gateway's record frames
 * (fetch answers and pushes, one per batch of records, written straight into
 * one buffer with the values copied once) and the client library, which has
 * to load in a browser without a bundler. Plain Uint8Array and TextEncoder
 * only, so it runs in Node and in browsers alike. The bytes are those
 * protobufjs writes (fields in number order, proto3 defaults left out);
 * t/pubsub/golden.test.ts holds both to APISIX's golden encodings.
 */

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

export function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** Size of an int64 field's varint: negative values take ten bytes (two's complement). */
export function int64Size(v: bigint): number {
  if (v >= 0n && v <= MAX_SAFE) return varintSize(Number(v));
  if (v < 0n) return 10;
  let size = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    size++;
  }
  return size;
}

/** A writer over a buffer sized in advance: callers add up sizes first, so it never grows. */
export class WireWriter {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  varint(n: number): void {
    const b = this.buf;
    while (n >= 0x80) {
      b[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    b[this.pos++] = n;
  }

  int64(v: bigint): void {
    if (v >= 0n && v <= MAX_SAFE) return this.varint(Number(v));
    let u = BigInt.asUintN(64, v);
    const b = this.buf;
    while (u >= 0x80n) {
      b[this.pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    b[this.pos++] = Number(u);
  }

  /** int32 fields: negative values are sign-extended to ten bytes, as protobuf does. */
  int32(n: number): void {
    if (n >= 0) this.varint(n);
    else this.int64(BigInt(n));
  }

  bytes(v: Uint8Array): void {
    this.varint(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }
}

export function int32Size(n: number): number {
  return n >= 0 ? varintSize(n) : 10;
}

export function utf8Bytes(s: string): Uint8Array {
  return utf8.encode(s);
}

export function utf8String(b: Uint8Array): string {
  return utf8Decoder.decode(b);
}

// ---------------------------------------------------------------- records

export interface WireHeader {
  key: string;
  value?: Uint8Array | null;
}

/** A record as KafkaMessage carries it (offset 1, timestamp 2, key 3, value 4, headers 5). */
export interface WireRecord {
  offset: bigint;
  timestamp: bigint;
  key?: Uint8Array | null;
  value?: Uint8Array | null;
  headers?: readonly WireHeader[] | null;
}

function headerBodySize(h: WireHeader, key: Uint8Array): number {
  const v = h.value?.length ?? 0;
  return (key.length > 0 ? 1 + varintSize(key.length) + key.length : 0) + (v > 0 ? 1 + varintSize(v) + v : 0);
}

/** Header keys as UTF-8, computed once per record for both the sizing and the writing pass. */
function headerKeys(r: WireRecord): Uint8Array[] | undefined {
  const hs = r.headers;
  if (!hs || hs.length === 0) return undefined;
  return hs.map((h) => utf8.encode(h.key));
}

function recordBodySize(r: WireRecord, keys: Uint8Array[] | undefined): number {
  let body = 0;
  if (r.offset !== 0n) body += 1 + int64Size(r.offset);
  if (r.timestamp !== 0n) body += 1 + int64Size(r.timestamp);
  const k = r.key?.length ?? 0;
  if (k > 0) body += 1 + varintSize(k) + k;
  const v = r.value?.length ?? 0;
  if (v > 0) body += 1 + varintSize(v) + v;
  if (keys) {
    const hs = r.headers!;
    for (let i = 0; i < hs.length; i++) {
      const hb = headerBodySize(hs[i]!, keys[i]!);
      body += 1 + varintSize(hb) + hb;
    }
  }
  return body;
}

/** Bytes one record adds inside a repeated KafkaMessage field: tag, length and body. */
export function recordWireSize(r: WireRecord): number {
  const body = recordBodySize(r, headerKeys(r));
  return 1 + varintSize(body) + body;
}

/** How many of `records`, from the first, fit in `room` bytes of a repeated KafkaMessage field. */
export function recordsFitting(records: readonly WireRecord[], room: number): number {
  let n = 0;
  for (; n < records.length; n++) {
    const size = recordWireSize(records[n]!);
    if (size > room) break;
    room -= size;
  }
  return n;
}

function writeRecord(w: WireWriter, tag: number, r: WireRecord, body: number, keys: Uint8Array[] | undefined): void {
  w.buf[w.pos++] = tag;
  w.varint(body);
  if (r.offset !== 0n) {
    w.buf[w.pos++] = 0x08;
    w.int64(r.offset);
  }
  if (r.timestamp !== 0n) {
    w.buf[w.pos++] = 0x10;
    w.int64(r.timestamp);
  }
  if (r.key && r.key.length > 0) {
    w.buf[w.pos++] = 0x1a;
    w.bytes(r.key);
  }
  if (r.value && r.value.length > 0) {
    w.buf[w.pos++] = 0x22;
    w.bytes(r.value);
  }
  if (keys) {
    const hs = r.headers!;
    for (let i = 0; i < hs.length; i++) {
      const h = hs[i]!;
      const key = keys[i]!;
      w.buf[w.pos++] = 0x2a;
      w.varint(headerBodySize(h, key));
      if (key.length > 0) {
        w.buf[w.pos++] = 0x0a;
        w.bytes(key);
      }
      if (h.value && h.value.length > 0) {
        w.buf[w.pos++] = 0x12;
        w.bytes(h.value);
      }
    }
  }
}

/** Envelope field numbers of the two record-carrying responses. */
export const FETCH_RESP_FIELD = 33;
export const PUSH_RESP_FIELD = 40;

/**
 * One PubSubResp frame carrying records: `kafka_fetch_resp{messages}` (field
 * 33) or `push_resp{subscription, messages, error}` (field 40), written in
 * one pass into one buffer. `alloc` lets Node callers pass Buffer.allocUnsafe.
 */
export function encodeRecordsFrame(
  sequence: bigint,
  field: typeof FETCH_RESP_FIELD | typeof PUSH_RESP_FIELD,
  records: readonly WireRecord[],
  push?: { subscription: number; error?: string },
  alloc: (n: number) => Uint8Array = (n) => new Uint8Array(n),
): Uint8Array {
  const n = records.length;
  const bodies = new Array<number>(n);
  const keys = new Array<Uint8Array[] | undefined>(n);
  // Inside push_resp the messages are field 2; inside kafka_fetch_resp field 1.
  const msgTag = field === PUSH_RESP_FIELD ? 0x12 : 0x0a;
  let inner = 0;
  for (let i = 0; i < n; i++) {
    const r = records[i]!;
    const k = headerKeys(r);
    keys[i] = k;
    const b = recordBodySize(r, k);
    bodies[i] = b;
    inner += 1 + varintSize(b) + b;
  }
  let errBytes: Uint8Array | undefined;
  if (push) {
    if (push.subscription !== 0) inner += 1 + int32Size(push.subscription);
    if (push.error) {
      errBytes = utf8.encode(push.error);
      inner += 1 + varintSize(errBytes.length) + errBytes.length;
    }
  }
  const seqSize = sequence !== 0n ? 1 + int64Size(sequence) : 0;
  const total = seqSize + 2 + varintSize(inner) + inner;
  const w = new WireWriter(alloc(total));
  if (sequence !== 0n) {
    w.buf[w.pos++] = 0x08;
    w.int64(sequence);
  }
  w.varint((field << 3) | 2);
  w.varint(inner);
  if (push && push.subscription !== 0) {
    w.buf[w.pos++] = 0x08;
    w.int32(push.subscription);
  }
  for (let i = 0; i < n; i++) writeRecord(w, msgTag, records[i]!, bodies[i]!, keys[i]);
  if (errBytes) {
    w.buf[w.pos++] = 0x1a;
    w.bytes(errBytes);
  }
  return w.buf;
}

// ---------------------------------------------------------------- reading

/** A forward-only reader; `bytes()` returns views into the frame, never copies. */
export class WireReader {
  pos = 0;
  readonly end: number;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    end = buf.length,
  ) {
    this.pos = start;
    this.end = end;
  }

  /** A varint as a number: exact up to 2^53, which is all a length, tag or int32 needs. */
  varint(): number {
    const b = this.buf;
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error('truncated varint');
      const byte = b[this.pos++]!;
      result += (byte & 0x7f) * mul;
      if (byte < 0x80) return result;
      mul *= 128;
    }
    throw new Error('varint too long');
  }

  /** A varint as a signed int64. */
  int64(): bigint {
    const start = this.pos;
    const b = this.buf;
    // Fast path: up to seven bytes cannot leave the safe-integer range.
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 7 && this.pos < this.end; i++) {
      const byte = b[this.pos++]!;
      result += (byte & 0x7f) * mul;
      if (byte < 0x80) return BigInt(result);
      mul *= 128;
    }
    this.pos = start;
    let u = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error('truncated varint');
      const byte = b[this.pos++]!;
      u |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return BigInt.asIntN(64, u);
      shift += 7n;
    }
    throw new Error('varint too long');
  }

  int32(): number {
    return Number(BigInt.asIntN(32, this.int64()));
  }

  bytes(): Uint8Array {
    const len = this.varint();
    if (this.pos + len > this.end) throw new Error('field cut short');
    const v = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return v;
  }

  string(): string {
    return utf8Decoder.decode(this.bytes());
  }

  /** Skips a field of wire type `wire`. */
  skip(wire: number): void {
    switch (wire) {
      case 0:
        this.varint();
        return;
      case 1:
        this.pos += 8;
        break;
      case 2: {
        const len = this.varint();
        this.pos += len;
        break;
      }
      case 5:
        this.pos += 4;
        break;
      default:
        throw new Error(`unsupported wire type ${wire}`);
    }
    if (this.pos > this.end) throw new Error('field cut short');
  }
}

// ---------------------------------------------------------------- generic writing

/** A repeated sub-message field for `encodeMessage`. */
export interface Repeated {
  readonly repeated: readonly WireFields[];
}
/**
 * A field value for `encodeMessage`: numbers are int32, bigint int64, a
 * WireFields array a sub-message (always written, even empty).
 */
export type WireValue = number | bigint | string | Uint8Array | boolean | WireFields | Repeated | undefined | null;
/** [field number, value] pairs in field order. */
export type WireFields = ReadonlyArray<readonly [number, WireValue]>;

function isRepeated(v: WireValue): v is Repeated {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function tagSize(field: number): number {
  return varintSize(field << 3);
}

function messageSize(fields: WireFields): number {
  let size = 0;
  for (const [field, v] of fields) {
    if (v === undefined || v === null) continue;
    if (isRepeated(v)) {
      for (const m of v.repeated) {
        const body = messageSize(m);
        size += tagSize(field) + varintSize(body) + body;
      }
    } else if (typeof v === 'number') {
      if (v !== 0) size += tagSize(field) + int32Size(v);
    } else if (typeof v === 'bigint') {
      if (v !== 0n) size += tagSize(field) + int64Size(v);
    } else if (typeof v === 'boolean') {
      if (v) size += tagSize(field) + 1;
    } else if (typeof v === 'string') {
      const n = utf8.encode(v).length;
      if (n > 0) size += tagSize(field) + varintSize(n) + n;
    } else if (v instanceof Uint8Array) {
      if (v.length > 0) size += tagSize(field) + varintSize(v.length) + v.length;
    } else {
      const body = messageSize(v);
      size += tagSize(field) + varintSize(body) + body;
    }
  }
  return size;
}

function writeFields(w: WireWriter, fields: WireFields): void {
  for (const [field, v] of fields) {
    if (v === undefined || v === null) continue;
    if (isRepeated(v)) {
      for (const m of v.repeated) {
        w.varint((field << 3) | 2);
        w.varint(messageSize(m));
        writeFields(w, m);
      }
    } else if (typeof v === 'number') {
      if (v === 0) continue;
      w.varint(field << 3);
      w.int32(v);
    } else if (typeof v === 'bigint') {
      if (v === 0n) continue;
      w.varint(field << 3);
      w.int64(v);
    } else if (typeof v === 'boolean') {
      if (!v) continue;
      w.varint(field << 3);
      w.varint(1);
    } else if (typeof v === 'string') {
      if (v === '') continue;
      w.varint((field << 3) | 2);
      w.bytes(utf8.encode(v));
    } else if (v instanceof Uint8Array) {
      if (v.length === 0) continue;
      w.varint((field << 3) | 2);
      w.bytes(v);
    } else {
      w.varint((field << 3) | 2);
      w.varint(messageSize(v));
      writeFields(w, v);
    }
  }
}

/**
 * Encodes a message given as [field, value] pairs (proto3: defaults left out,
 * sub-messages always written). For small messages: sizes are worked out
 * before writing, so nested ones are measured more than once.
 */
export function encodeMessage(fields: WireFields): Uint8Array {
  const w = new WireWriter(new Uint8Array(messageSize(fields)));
  writeFields(w, fields);
  return w.buf;
}
