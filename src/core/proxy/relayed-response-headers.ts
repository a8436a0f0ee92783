/**
 * What the client receives of the upstream's response head: the upstream's
 * lines, names in their case as nginx relays them, minus hop-by-hop headers
 * and Server (the gateway sends its own).
 */
import { connectionTokens, isHopByHop, latin1 } from '../http/headers.js';

/**
 * The upstream's response header pairs as strings for writeHead, minus
 * hop-by-hop headers, names its Connection header lists, and Server (ours
 * replaces it). Names keep the upstream's case, as nginx relays them.
 * `length.bodyLeft` gets the Content-Length (-1 without one).
 */
export function relayedHeaders(raw: Buffer[], length: { bodyLeft: number }): string[] {
  const out: string[] = [];
  let connection: string | undefined;
  length.bodyLeft = -1;
  for (let i = 0; i < raw.length; i += 2) {
    const name = latin1(raw[i]!);
    const value = latin1(raw[i + 1]!);
    // Only names of these lengths (or starting with p, for proxy-*) can be dropped: skip lower-casing the rest.
    const n = name.length;
    if (n === 2 || n === 6 || n === 7 || n === 10 || n === 17 || (name.charCodeAt(0) | 0x20) === 0x70) {
      const lower = name.toLowerCase();
      if (lower === 'connection') {
        connection = connection === undefined ? value : `${connection}, ${value}`;
        continue;
      }
      if (lower === 'server' || isHopByHop(lower)) continue;
    } else if (n === 14 && (name.charCodeAt(0) | 0x20) === 0x63 && name.toLowerCase() === 'content-length') {
      // undici's parser already refused a malformed or conflicting one.
      length.bodyLeft = Number(value);
    }
    out.push(name, value);
  }
  if (connection === undefined) return out;
  const drop = connectionTokens(connection);
  if (drop === undefined) return out;
  const kept: string[] = [];
  for (let i = 0; i < out.length; i += 2) if (!drop.has(out[i]!.toLowerCase())) kept.push(out[i]!, out[i + 1]!);
  return kept;
}
