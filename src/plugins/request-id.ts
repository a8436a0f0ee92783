/**
 * request-id (APISIX priority 12015): gives every request an id, sent to the
 * upstream and (by default) back to the client (apisix/plugins/request-id.lua).
 * A non-empty id the client already sent is kept, so ids propagate through
 * chains of gateways.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { dataKey, definePlugin, type DataKey, type RequestContext } from '../core/plugin/index.js';

const DEFAULT_CHARSET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIGKLMNOPQRSTUVWXYZ0123456789';

export const schema = {
  type: 'object',
  properties: {
    header_name: { type: 'string', default: 'X-Request-Id' },
    include_in_response: { type: 'boolean', default: true },
    algorithm: { type: 'string', enum: ['uuid', 'nanoid', 'range_id', 'ksuid', 'uuidv7'], default: 'uuid' },
    range_id: {
      type: 'object',
      properties: {
        length: { type: 'integer', minimum: 6, default: 16 },
        // At least 6 characters so ids do not repeat too soon (APISIX's reason).
        char_set: { type: 'string', minLength: 6, default: DEFAULT_CHARSET },
      },
      default: { length: 16, char_set: DEFAULT_CHARSET },
    },
  },
};

export interface RequestIdConf {
  header_name?: string;
  include_in_response?: boolean;
  algorithm?: 'uuid' | 'nanoid' | 'range_id' | 'ksuid' | 'uuidv7';
  range_id?: { length?: number; char_set?: string };
}

interface RequestIdCompiled extends RequestIdConf {
  /** `id` is where rewrite leaves the id for header_filter, one slot per header name. */
  readonly rt: { header: string; id: DataKey<string>; generate: () => string };
}

// Standard nanoid alphabet: 64 characters, so 6 random bits pick one without bias.
const NANOID_ALPHABET = '-_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

function nanoid(): string {
  const bytes = randomBytes(21);
  let id = '';
  for (let i = 0; i < 21; i++) id += NANOID_ALPHABET[(bytes[i] as number) & 63];
  return id;
}

function rangeId(length: number, charset: string): () => string {
  return () => {
    let id = '';
    for (let i = 0; i < length; i++) id += charset[Math.floor(Math.random() * charset.length)];
    return id;
  };
}

/** RFC 9562 UUIDv7: 48-bit millisecond timestamp, then random bits, so ids sort by time. */
function uuidv7(): string {
  const b = randomBytes(16);
  const ms = Date.now();
  b.writeUIntBE(ms, 0, 6);
  b[6] = ((b[6] as number) & 0x0f) | 0x70;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const KSUID_EPOCH = 1_400_000_000;

/** Segment's KSUID: 4-byte timestamp since 2014-05-13 + 16 random bytes, base62, 27 characters. */
function ksuid(): string {
  const b = Buffer.allocUnsafe(20);
  b.writeUInt32BE(Math.floor(Date.now() / 1000) - KSUID_EPOCH, 0);
  randomBytes(16).copy(b, 4);
  let n = BigInt(`0x${b.toString('hex')}`);
  let out = '';
  while (n > 0n) {
    out = BASE62[Number(n % 62n)] + out;
    n /= 62n;
  }
  return out.padStart(27, '0');
}

function compile(conf: RequestIdConf): RequestIdCompiled {
  const header = (conf.header_name ?? 'X-Request-Id').toLowerCase();
  let generate: () => string;
  switch (conf.algorithm) {
    case 'nanoid': generate = nanoid; break;
    case 'range_id': generate = rangeId(conf.range_id?.length ?? 16, conf.range_id?.char_set ?? DEFAULT_CHARSET); break;
    case 'ksuid': generate = ksuid; break;
    case 'uuidv7': generate = uuidv7; break;
    default: generate = randomUUID;
  }
  return { ...conf, rt: { header, id: dataKey<string>(`request-id-${header}`), generate } };
}

function rewrite(conf: RequestIdCompiled, ctx: RequestContext): void {
  const rt = conf.rt;
  const headers = ctx.upstreamRequest.headers;
  let id = headers.get(rt.header);
  if (!id) {
    id = rt.generate();
    headers.set(rt.header, id);
  }
  if (conf.include_in_response !== false) ctx.setData(rt.id, id);
}

function header_filter(conf: RequestIdCompiled, ctx: RequestContext): void {
  if (conf.include_in_response === false) return;
  const rt = conf.rt;
  const id = ctx.getData(rt.id);
  // An id the upstream chose itself wins, as in APISIX.
  if (id !== undefined && !ctx.response.headers.get(rt.header)) ctx.response.headers.set(rt.header, id);
}

export default definePlugin({
  name: 'request-id',
  priority: 12015,
  version: '0.1',
  schema,
  compile,
  rewrite,
  header_filter,
});
