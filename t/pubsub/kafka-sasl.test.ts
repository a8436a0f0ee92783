/**
 * SASL on the wire. librdkafka's mock has no SASL (its ApiVersions answer does
 * not even offer SaslHandshake, see kafka-gateway.test.ts), so here a tiny
 * Kafka-protocol server on a real TCP socket speaks just enough of the
 * protocol (ApiVersions, SaslHandshake, SaslAuthenticate) to record what the
 * client sends and to refuse it the way a real broker does.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafkaBackend, type SaslMechanism } from '../../src/pubsub/kafka-client.js';

interface Seen {
  apiKeys: number[];
  handshakeMechanisms: string[];
  authBytes: Buffer[];
}

const API_VERSIONS = 18;
const SASL_HANDSHAKE = 17;
const SASL_AUTHENTICATE = 36;

function str(s: string): Buffer {
  const b = Buffer.alloc(2 + Buffer.byteLength(s));
  b.writeInt16BE(Buffer.byteLength(s));
  b.write(s, 2);
  return b;
}
function i16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}
function i32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

/** A broker that offers `offered` mechanisms and rejects every credential. */
async function startSaslBroker(offered: string[]): Promise<{ server: Server; port: number; seen: Seen }> {
  const seen: Seen = { apiKeys: [], handshakeMechanisms: [], authBytes: [] };
  const server = createServer((sock: Socket) => {
    let buf = Buffer.alloc(0);
    sock.on('error', () => undefined);
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        const frame = buf.subarray(4, 4 + buf.readInt32BE(0));
        buf = buf.subarray(4 + frame.length);
        const apiKey = frame.readInt16BE(0);
        const apiVersion = frame.readInt16BE(2);
        const correlationId = frame.readInt32BE(4);
        const clientIdLen = frame.readInt16BE(8);
        const body = frame.subarray(10 + Math.max(0, clientIdLen));
        seen.apiKeys.push(apiKey);
        let resp: Buffer;
        if (apiKey === API_VERSIONS) {
          const apis: Array<[number, number, number]> = [
            [API_VERSIONS, 0, 2],
            [SASL_HANDSHAKE, 0, 1],
            [SASL_AUTHENTICATE, 0, 1],
            [3, 0, 4], // Metadata: never reached, auth comes first
          ];
          resp = Buffer.concat([
            i16(0),
            i32(apis.length),
            ...apis.flatMap(([k, min, max]) => [i16(k), i16(min), i16(max)]),
            ...(apiVersion >= 1 ? [i32(0)] : []),
          ]);
        } else if (apiKey === SASL_HANDSHAKE) {
          const mech = body.subarray(2, 2 + body.readInt16BE(0)).toString();
          seen.handshakeMechanisms.push(mech);
          const ok = offered.includes(mech);
          // 33 = UNSUPPORTED_SASL_MECHANISM
          resp = Buffer.concat([i16(ok ? 0 : 33), i32(offered.length), ...offered.map(str)]);
        } else if (apiKey === SASL_AUTHENTICATE) {
          seen.authBytes.push(Buffer.from(body));
          // 58 = SASL_AUTHENTICATION_FAILED, with the broker's reason as a real broker words it.
          resp = Buffer.concat([
            i16(58),
            str('Authentication failed during authentication due to invalid credentials with SASL mechanism'),
            i32(0),
            ...(apiVersion >= 1 ? [Buffer.alloc(8)] : []),
          ]);
        } else {
          sock.destroy();
          return;
        }
        const out = Buffer.concat([i32(correlationId), resp]);
        sock.write(Buffer.concat([i32(out.length), out]));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, seen };
}

const servers: Server[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
});

async function attempt(mechanism: SaslMechanism, offered: string[], password: string) {
  const broker = await startSaslBroker(offered);
  servers.push(broker.server);
  const backend = createKafkaBackend({
    brokers: [`127.0.0.1:${broker.port}`],
    sasl: { mechanism, username: 'portico-user', password },
  });
  let message = '';
  try {
    await backend.listOffset('t', 0, -1n);
  } catch (e) {
    message = (e as Error).message;
  }
  await backend.close();
  return { message, seen: broker.seen };
}

describe('SASL reaches the wire', () => {
  let plain: Awaited<ReturnType<typeof attempt>>;
  let scram: Awaited<ReturnType<typeof attempt>>;
  beforeAll(async () => {
    plain = await attempt('PLAIN', ['PLAIN', 'SCRAM-SHA-256'], 'plain-pw-1234');
    scram = await attempt('SCRAM-SHA-256', ['PLAIN', 'SCRAM-SHA-256'], 'scram-pw-5678');
  });

  it('PLAIN: handshake names PLAIN, the credentials go to the broker, the refusal comes back without them', () => {
    expect(plain.seen.handshakeMechanisms[0]).toBe('PLAIN');
    expect(plain.seen.apiKeys).not.toContain(3); // no Metadata before authentication
    // RFC 4616: authzid NUL authcid NUL passwd, the one place the password belongs.
    expect(plain.seen.authBytes[0]!.includes(Buffer.from('\0portico-user\0plain-pw-1234'))).toBe(true);
    expect(plain.message).toMatch(/^SASL PLAIN authentication failed/);
    expect(plain.message).not.toContain('plain-pw-1234');
  });

  it('SCRAM-SHA-256: handshake names the mechanism, the client-first message carries the user and a nonce, never the password', () => {
    expect(scram.seen.handshakeMechanisms[0]).toBe('SCRAM-SHA-256');
    const first = scram.seen.authBytes[0]!.toString('latin1');
    // kafkajs's nonce is URL-safe base64 (RFC 5802 allows any printable character but ',').
    expect(first).toMatch(/n,,n=portico-user,r=[A-Za-z0-9_-]{16,}/);
    expect(scram.seen.authBytes.some((b) => b.includes(Buffer.from('scram-pw-5678')))).toBe(false);
    expect(scram.message).toMatch(/^SASL SCRAM-SHA-256 authentication failed/);
    expect(scram.message).not.toContain('scram-pw-5678');
  });

  it('a mechanism the broker does not offer fails at the handshake, naming the mechanism', async () => {
    const r = await attempt('SCRAM-SHA-512', ['PLAIN'], 'never-sent-9999');
    expect(r.seen.handshakeMechanisms).toContain('SCRAM-SHA-512');
    expect(r.seen.authBytes).toHaveLength(0);
    expect(r.message).toMatch(/^SASL SCRAM-SHA-512 authentication failed: .*UNSUPPORTED_SASL_MECHANISM|not supported/);
    expect(r.message).not.toContain('never-sent-9999');
  });
});
