/**
 * The pub/sub wire codec: proto/pubsub.proto, loaded once at module load.
 *
 * int64 fields (sequence, offsets, timestamps) are bigint on our side of the
 * boundary and Long inside protobufjs, so a value above 2^53 never passes
 * through a JS number. Encoding leaves default values out the way APISIX's
 * lua-protobuf does (sequence 0 is absent), while a present sub-message is
 * always written, even when empty (`82 02 00`), because its presence is what
 * names the command or response.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { encodeRecordsFrame, FETCH_RESP_FIELD, PUSH_RESP_FIELD, recordWireSize, varintSize } from './wire.js';

// ---------------------------------------------------------------- public types

export interface CmdPing {
  state: Uint8Array;
}
export type CmdEmpty = Record<string, never>;
export interface CmdKafkaListOffset {
  topic: string;
  partition: number;
  /** -1 latest, -2 earliest, otherwise unix ms. */
  timestamp: bigint;
}
export interface CmdKafkaFetch {
  topic: string;
  partition: number;
  offset: bigint;
}

export interface MessageHeader {
  key: string;
  value?: Uint8Array;
}
export interface CmdSubscribe {
  topic: string;
  partition: number;
  /** -1 latest, -2 earliest, otherwise the first offset to push. */
  offset: bigint;
  /** Consumer group whose committed offset wins and which CmdAck commits for; '' = none. */
  group: string;
  credit_messages: bigint;
  /** 0 = no byte limit. */
  credit_bytes: bigint;
}
export interface CmdCredit {
  subscription: number;
  messages: bigint;
  bytes: bigint;
}
export interface CmdUnsubscribe {
  subscription: number;
}
export interface CmdAck {
  subscription: number;
  offset: bigint;
}
export interface ProduceMessage {
  key: Uint8Array;
  value: Uint8Array;
  headers: MessageHeader[];
  /** ms; 0 = now. */
  timestamp: bigint;
}
export interface CmdProduce {
  topic: string;
  partition: number;
  /** 'all' (also '' and '-1'), 'leader' ('1') or 'none' ('0'). */
  acks: string;
  messages: ProduceMessage[];
}

/** Command name (the `req` oneof member's field name) → its decoded params. Add new commands here. */
export interface CommandParams {
  cmd_empty: CmdEmpty;
  cmd_ping: CmdPing;
  cmd_kafka_fetch: CmdKafkaFetch;
  cmd_kafka_list_offset: CmdKafkaListOffset;
  cmd_subscribe: CmdSubscribe;
  cmd_credit: CmdCredit;
  cmd_unsubscribe: CmdUnsubscribe;
  cmd_ack: CmdAck;
  cmd_produce: CmdProduce;
}
export type CommandName = keyof CommandParams;

export type DecodedCommand = { [K in CommandName]: { sequence: bigint; command: K; params: CommandParams[K] } }[CommandName];

/**
 * A request without a command we know. `unknownField` is set when the frame
 * carried a field numbered above 30 that this proto does not define (a
 * command from a newer client), which deserves an "unknown command" answer
 * rather than silence.
 */
export interface DecodedNoCommand {
  sequence: bigint;
  command: undefined;
  params: undefined;
  unknownField?: number;
}

export type DecodedRequest = DecodedCommand | DecodedNoCommand;

/** What a client sends: one command with any of its fields (absent = proto3 default). */
export type PubSubRequestBody = { [K in CommandName]: { [P in K]: Loose<CommandParams[K]> } }[CommandName];
/** Every field optional, nested messages included (absent = proto3 default). */
export type Loose<T> = T extends Uint8Array | bigint | string | number | boolean
  ? T
  : T extends Array<infer U>
    ? Array<Loose<U>>
    : { [P in keyof T]?: Loose<T[P]> };
export type PubSubRequest = PubSubRequestBody & { sequence?: bigint };

export interface ErrorResp {
  /** Always 0 in APISIX; kept for wire compatibility. */
  code?: number;
  message: string;
}
export interface PongResp {
  state?: Uint8Array;
}
export interface KafkaMessage {
  offset: bigint;
  /** Milliseconds since the epoch. */
  timestamp: bigint;
  key?: Uint8Array | null;
  value?: Uint8Array | null;
  headers?: MessageHeader[];
}
export interface KafkaFetchResp {
  messages: KafkaMessage[];
}
export interface KafkaListOffsetResp {
  offset: bigint;
}

export interface SubscribeResp {
  subscription: number;
  /** The first offset the subscription will push. */
  offset: bigint;
}
export interface CreditResp {
  messages: bigint;
  bytes: bigint;
}
export interface UnsubscribeResp {
  offset: bigint;
}
export interface AckResp {
  committed: bigint;
}
export interface ProduceResult {
  offset: bigint;
  error?: string;
}
export interface ProduceResp {
  results: ProduceResult[];
}
export interface PushResp {
  subscription: number;
  messages: KafkaMessage[];
  /** Set on the last push of a subscription that failed. */
  error?: string;
}

/** Response name (the `resp` oneof member's field name) → its body. Add new responses here. */
export interface ResponseBodies {
  error_resp: ErrorResp;
  pong_resp: PongResp;
  kafka_fetch_resp: KafkaFetchResp;
  kafka_list_offset_resp: KafkaListOffsetResp;
  subscribe_resp: SubscribeResp;
  credit_resp: CreditResp;
  unsubscribe_resp: UnsubscribeResp;
  ack_resp: AckResp;
  produce_resp: ProduceResp;
  push_resp: PushResp;
}
export type ResponseName = keyof ResponseBodies;

/** Exactly one response member, e.g. `{ pong_resp: { state } }`. */
export type PubSubResponseBody = { [K in ResponseName]: { [P in K]: ResponseBodies[K] } }[ResponseName];
export type PubSubResponse = PubSubResponseBody & { sequence: bigint };

// ---------------------------------------------------------------- loading

const Long = protobuf.util.Long;
if (!Long) {
  // Without Long, protobufjs silently rounds int64 to a double: refuse to run rather than corrupt offsets.
  throw new Error('failed to load pubsub protocol: protobufjs has no Long support (package "long" missing)');
}

/** Works from src/core/pubsub (tsx, vitest) and from dist/src/core/pubsub (compiled). */
function findProto(): string {
  for (const rel of ['../../../proto/pubsub.proto', '../../../../proto/pubsub.proto']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('failed to load pubsub protocol: proto/pubsub.proto not found');
}

export const PROTO_PATH = findProto();
const root = new protobuf.Root().loadSync(PROTO_PATH, { keepCase: true });
root.resolveAll();
const ReqType = root.lookupType('PubSubReq');
const RespType = root.lookupType('PubSubResp');

/** How each field is converted, worked out once per message type. */
type Kind = 'int64' | 'bytes' | 'scalar' | 'message';
interface FieldPlan {
  name: string;
  kind: Kind;
  repeated: boolean;
  type?: protobuf.Type;
  /** The proto3 default a decoded message reports when the field is absent. */
  zero: () => unknown;
}

const plans = new Map<protobuf.Type, FieldPlan[]>();
function planOf(type: protobuf.Type): FieldPlan[] {
  let plan = plans.get(type);
  if (plan) return plan;
  plan = type.fieldsArray.map((f): FieldPlan => {
    f.resolve();
    const rt = f.resolvedType;
    if (rt instanceof protobuf.Type) return { name: f.name, kind: 'message', repeated: f.repeated, type: rt, zero: () => undefined };
    if (rt instanceof protobuf.Enum) return { name: f.name, kind: 'scalar', repeated: f.repeated, zero: () => 0 };
    switch (f.type) {
      case 'int64': case 'sint64': case 'sfixed64': case 'uint64': case 'fixed64':
        return { name: f.name, kind: 'int64', repeated: f.repeated, zero: () => 0n };
      case 'bytes':
        return { name: f.name, kind: 'bytes', repeated: f.repeated, zero: () => Buffer.alloc(0) };
      case 'string':
        return { name: f.name, kind: 'scalar', repeated: f.repeated, zero: () => '' };
      case 'bool':
        return { name: f.name, kind: 'scalar', repeated: f.repeated, zero: () => false };
      default:
        return { name: f.name, kind: 'scalar', repeated: f.repeated, zero: () => 0 };
    }
  });
  plans.set(type, plan);
  for (const f of plan) if (f.type) planOf(f.type);
  return plan;
}

/** oneof member name → field number and message type, for the request envelope. */
const reqCommands = new Map<number, { name: CommandName; type: protobuf.Type }>();
for (const f of ReqType.oneofs.req!.fieldsArray) {
  f.resolve();
  reqCommands.set(f.id, { name: f.name as CommandName, type: f.resolvedType as protobuf.Type });
}
const respMembers = RespType.oneofs.resp!.fieldsArray.map((f) => f.name as ResponseName);
planOf(ReqType);
planOf(RespType);

// ---------------------------------------------------------------- int64 <-> bigint

type LongLike = { low: number; high: number; unsigned?: boolean };

function toBigInt(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(v);
  if (typeof v === 'string') return BigInt(v);
  if (v && typeof v === 'object' && 'low' in v) {
    const l = v as LongLike;
    const hi = l.unsigned ? BigInt(l.high >>> 0) : BigInt(l.high | 0);
    return (hi << 32n) | BigInt(l.low >>> 0);
  }
  return 0n;
}

/** protobufjs's writer accepts {low, high} for int64 fields, so no Long object is needed. */
function toLongBits(v: bigint | number): LongLike {
  const b = BigInt.asUintN(64, BigInt(v));
  return { low: Number(b & 0xffffffffn) | 0, high: Number(b >> 32n) | 0, unsigned: false };
}

// ---------------------------------------------------------------- plain <-> wire objects

function isDefault(v: unknown): boolean {
  return v === undefined || v === null || v === 0 || v === 0n || v === '' || v === false || (v instanceof Uint8Array && v.length === 0);
}

/** Plain object → protobufjs encodable object, defaults left out, sub-messages kept even if empty. */
function toWire(type: protobuf.Type, obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of planOf(type)) {
    const v = obj[f.name];
    if (f.repeated) {
      if (!Array.isArray(v) || v.length === 0) continue;
      out[f.name] =
        f.kind === 'message' ? v.map((x) => toWire(f.type!, x as Record<string, unknown>)) : f.kind === 'int64' ? v.map((x) => toLongBits(x as bigint)) : v;
    } else if (f.kind === 'message') {
      if (v !== undefined && v !== null) out[f.name] = toWire(f.type!, v as Record<string, unknown>);
    } else if (!isDefault(v)) {
      out[f.name] = f.kind === 'int64' ? toLongBits(v as bigint) : v;
    }
  }
  return out;
}

/**
 * Fields Portico added to APISIX's messages: left out of a decoded message
 * when absent, so what an APISIX-era message decodes to does not change.
 */
const ADDED_TO_APISIX = new Set(['KafkaMessage.headers']);

/** Decoded protobufjs message → plain object with proto3 defaults filled in and int64 as bigint. */
function fromWire(type: protobuf.Type, msg: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of planOf(type)) {
    const v = msg[f.name];
    if (f.repeated) {
      const arr = Array.isArray(v) ? v : [];
      if (arr.length === 0 && ADDED_TO_APISIX.has(`${type.name}.${f.name}`)) continue;
      out[f.name] =
        f.kind === 'message'
          ? arr.map((x) => fromWire(f.type!, x as Record<string, unknown>))
          : f.kind === 'int64'
            ? arr.map(toBigInt)
            : arr.slice();
    } else if (f.kind === 'message') {
      if (v !== undefined && v !== null) out[f.name] = fromWire(f.type!, v as Record<string, unknown>);
    } else if (v === undefined || v === null) {
      out[f.name] = f.zero();
    } else if (f.kind === 'int64') {
      out[f.name] = toBigInt(v);
    } else if (f.kind === 'bytes') {
      out[f.name] = v instanceof Uint8Array ? v : f.zero();
    } else {
      out[f.name] = v;
    }
  }
  return out;
}

// ---------------------------------------------------------------- server side

/**
 * Decodes a client frame. The envelope is walked by hand so that, like
 * lua-protobuf, the last command on the wire wins, a known field with the
 * wrong wire type is an error, and an unknown command number is noticed.
 * Throws on a structurally broken frame (cut-short field, bad wire type,
 * truncated varint); the session answers those with "wrong command".
 */
export function decodeRequest(buf: Uint8Array): DecodedRequest {
  const r = protobuf.Reader.create(buf);
  let sequence = 0n;
  let cmd: { name: CommandName; type: protobuf.Type } | undefined;
  let start = 0;
  let len = 0;
  let unknownField: number | undefined;
  while (r.pos < r.len) {
    const tag = r.uint32();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 0) throw new Error(`invalid field number 0 at offset ${r.pos}`);
    if (field === 1) {
      if (wire !== 0) throw new Error(`type mismatch for field 'sequence' (wire type ${wire})`);
      sequence = toBigInt(r.int64());
      continue;
    }
    const c = reqCommands.get(field);
    if (c) {
      if (wire !== 2) throw new Error(`type mismatch for field '${c.name}' (wire type ${wire})`);
      len = r.uint32();
      start = r.pos;
      r.skip(len); // throws when the field is cut short
      cmd = c;
      continue;
    }
    if (field > 30 && unknownField === undefined) unknownField = field;
    r.skipType(wire);
  }
  if (!cmd) return unknownField === undefined ? { sequence, command: undefined, params: undefined } : { sequence, command: undefined, params: undefined, unknownField };
  r.pos = start;
  const msg = cmd.type.decode(r, len) as unknown as Record<string, unknown>;
  return { sequence, command: cmd.name, params: fromWire(cmd.type, msg) } as DecodedCommand;
}

const allocFrame = (n: number): Uint8Array => Buffer.allocUnsafe(n);

export function encodeResponse(resp: PubSubResponse): Uint8Array {
  // Record frames are the bulk of the traffic: written in one pass, values copied once.
  if ('kafka_fetch_resp' in resp) return encodeRecordsFrame(resp.sequence, FETCH_RESP_FIELD, resp.kafka_fetch_resp.messages, undefined, allocFrame);
  if ('push_resp' in resp) {
    const p = resp.push_resp;
    return encodeRecordsFrame(resp.sequence, PUSH_RESP_FIELD, p.messages, { subscription: p.subscription, error: p.error }, allocFrame);
  }
  return RespType.encode(toWire(RespType, resp as unknown as Record<string, unknown>)).finish();
}

// ---------------------------------------------------------------- client side

export function encodeRequest(req: PubSubRequest): Uint8Array {
  return ReqType.encode(toWire(ReqType, req as unknown as Record<string, unknown>)).finish();
}

/** Throws when the frame is not a PubSubResp or carries no response member. */
export function decodeResponse(buf: Uint8Array): PubSubResponse {
  const msg = RespType.decode(buf) as unknown as Record<string, unknown>;
  const plain = fromWire(RespType, msg);
  // More than one member cannot come from a conforming server; keep the last defined one like a oneof would.
  let name: ResponseName | undefined;
  for (const m of respMembers) if (plain[m] !== undefined) name = m;
  if (!name) throw new Error('pubsub response without a response member');
  return { sequence: plain.sequence as bigint, [name]: plain[name] } as unknown as PubSubResponse;
}

// ---------------------------------------------------------------- sizes

/**
 * Bytes one message adds to a KafkaFetchResp or PushResp (tag, length and
 * body), so a handler can stop adding records before the frame limit.
 */
export const kafkaMessageWireSize: (m: KafkaMessage) => number = recordWireSize;

/**
 * Largest response body (the bytes inside the oneof member, e.g. the summed
 * kafkaMessageWireSize of a fetch) that fits a frame of `frameSize` bytes
 * whatever the sequence: 11 bytes for the sequence, 2 for the member's tag,
 * and its length prefix.
 */
export function maxBodyBytes(frameSize: number): number {
  return Math.max(0, frameSize - 11 - 2 - varintSize(frameSize));
}
