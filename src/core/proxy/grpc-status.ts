/**
 * What gRPC needs beyond plain proxying (nginx's grpc_pass behaviour, seen by
 * the client): the status in trailers, and UNAVAILABLE for a failed upstream.
 */
import type { ServerResponse } from 'node:http';
import { latin1 } from '../http/headers.js';

const GRPC_MESSAGE: Readonly<Record<number, string>> = { 502: 'upstream unavailable (502 Bad Gateway)', 504: 'upstream timed out (504 Gateway Timeout)' };

/** Removes grpc-status, grpc-message and grpc-status-details-bin from `out` (name, value pairs); undefined when absent. */
export function takeGrpcStatus(out: string[]): Record<string, string> | undefined {
  let taken: Record<string, string> | undefined;
  for (let i = 0; i < out.length; i += 2) {
    const name = out[i]!.toLowerCase();
    if (name === 'grpc-status' || name === 'grpc-message' || name === 'grpc-status-details-bin') {
      (taken ??= {})[name] = out[i + 1]!;
      out.splice(i, 2);
      i -= 2;
    }
  }
  return taken;
}

/** The upstream's HTTP/2 trailers (undici hands them as an object) or HTTP/1.1 ones (raw pairs) onto the client's response. */
export function relayTrailers(res: ServerResponse, trailers: Buffer[] | Record<string, string | string[]>): void {
  const out: Record<string, string | string[]> = {};
  if (Array.isArray(trailers)) {
    for (let i = 0; i < trailers.length; i += 2) out[latin1(trailers[i]!).toLowerCase()] = latin1(trailers[i + 1]!);
  } else for (const name of Object.keys(trailers)) out[name] = trailers[name]!;
  if (Object.keys(out).length > 0) res.addTrailers(out);
}

/**
 * Headers of the gateway's 502/504 for a gRPC upstream: nginx's status for a
 * failed grpc_pass, which gRPC's HTTP mapping reads as UNAVAILABLE, said in
 * grpc-status too.
 */
export function grpcFailureHeaders(status: number, server: string): Record<string, string> {
  return { server, 'grpc-status': '14', 'grpc-message': GRPC_MESSAGE[status] ?? 'upstream failed' };
}
