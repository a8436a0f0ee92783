/**
 * A stand-in Kafka broker for SASL tests (librdkafka's mock cluster has no
 * SASL): it answers ApiVersions listing SaslHandshake and SaslAuthenticate,
 * accepts the client's mechanism, records the handshake and the first
 * authentication bytes, then refuses them (SASL_AUTHENTICATION_FAILED, 58).
 * Enough to see what a client puts on the wire.
 */
import { createServer, type Server, type Socket } from 'node:net';

export interface SaslSeen {
  mechanism: string;
  authBytes: Buffer;
}

export interface SaslBroker {
  readonly port: number;
  readonly seen: SaslSeen[];
  close(): Promise<void>;
}

const API_VERSIONS = 18;
const SASL_HANDSHAKE = 17;
const SASL_AUTHENTICATE = 36;

function frame(correlationId: number, body: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeInt32BE(4 + body.length, 0);
  head.writeInt32BE(correlationId, 4);
  return Buffer.concat([head, body]);
}

function str(s: string): Buffer {
  const b = Buffer.alloc(2 + Buffer.byteLength(s));
  b.writeInt16BE(Buffer.byteLength(s), 0);
  b.write(s, 2);
  return b;
}

export async function startSaslBroker(): Promise<SaslBroker> {
  const seen: SaslSeen[] = [];
  const sockets = new Set<Socket>();
  let mechanism = '';
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    let buf = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        const size = buf.readInt32BE(0);
        const msg = buf.subarray(4, 4 + size);
        buf = buf.subarray(4 + size);
        const apiKey = msg.readInt16BE(0);
        const version = msg.readInt16BE(2);
        const corr = msg.readInt32BE(4);
        const clientLen = msg.readInt16BE(8);
        const body = msg.subarray(10 + Math.max(clientLen, 0));
        if (apiKey === API_VERSIONS) {
          const apis = [
            [API_VERSIONS, 0, 2],
            [SASL_HANDSHAKE, 0, 1],
            [SASL_AUTHENTICATE, 0, 1],
          ];
          const out = Buffer.alloc(2 + 4 + apis.length * 6 + (version >= 1 ? 4 : 0));
          out.writeInt16BE(0, 0);
          out.writeInt32BE(apis.length, 2);
          apis.forEach(([k, min, max], i) => {
            out.writeInt16BE(k!, 6 + i * 6);
            out.writeInt16BE(min!, 8 + i * 6);
            out.writeInt16BE(max!, 10 + i * 6);
          });
          sock.write(frame(corr, out));
        } else if (apiKey === SASL_HANDSHAKE) {
          mechanism = body.subarray(2, 2 + body.readInt16BE(0)).toString();
          const count = Buffer.alloc(6);
          count.writeInt16BE(0, 0);
          count.writeInt32BE(1, 2);
          sock.write(frame(corr, Buffer.concat([count, str(mechanism)])));
        } else if (apiKey === SASL_AUTHENTICATE) {
          seen.push({ mechanism, authBytes: Buffer.from(body.subarray(4, 4 + body.readInt32BE(0))) });
          const code = Buffer.alloc(2);
          code.writeInt16BE(58, 0);
          const rest = Buffer.alloc(4 + (version >= 1 ? 8 : 0)); // empty auth bytes (+ session lifetime)
          sock.write(frame(corr, Buffer.concat([code, str('fake broker refuses everyone'), rest])));
        } else {
          sock.destroy();
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
