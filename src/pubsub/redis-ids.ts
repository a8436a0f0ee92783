/**
 * Redis Streams entry IDs (`<ms>-<seq>`) as the protocol's int64 offsets, so
 * Redis answers the same commands Kafka does: offset = ms * 2^20 + seq. The
 * order of IDs is the order of offsets, `offset + 1` is the smallest ID after
 * an entry (what a client asks for next), and the message timestamp is the
 * ID's ms. Limits: seq below 2^20 (auto-generated IDs stay far below; a
 * stream written with larger explicit sequence numbers is refused by name)
 * and ms below 2^43 (the year 2248).
 */
const SEQ_BITS = 20n;
const SEQ_LIMIT = 1n << SEQ_BITS;
const MS_LIMIT = 1n << 43n;

/** `1700000000000-3` → offset. Throws on an ID outside the mapping. */
export function idToOffset(id: string): bigint {
  const dash = id.indexOf('-');
  const ms = BigInt(dash < 0 ? id : id.slice(0, dash));
  const seq = dash < 0 ? 0n : BigInt(id.slice(dash + 1));
  if (seq >= SEQ_LIMIT) throw new Error(`stream entry ${id} has a sequence number of ${SEQ_LIMIT} or more, which no int64 offset can carry`);
  if (ms >= MS_LIMIT) throw new Error(`stream entry ${id} is beyond the offsets this gateway can express`);
  return (ms << SEQ_BITS) | seq;
}

/** offset → the ID it stands for (offsets with no entry still name a valid range bound). */
export function offsetToId(offset: bigint): string {
  if (offset < 0n) return '0-0';
  return `${offset >> SEQ_BITS}-${offset & (SEQ_LIMIT - 1n)}`;
}

/** The entry's milliseconds, for KafkaMessage.timestamp. */
export function offsetTimestamp(offset: bigint): bigint {
  return offset >> SEQ_BITS;
}
