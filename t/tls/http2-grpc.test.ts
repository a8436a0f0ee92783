/**
 * HTTP/2 through the gateway: by ALPN on the HTTPS listener (curl --http2,
 * with http/1.1 still offered), h2c with prior knowledge on the plain port
 * when node_listen.enable_http2 is set, and gRPC to `scheme: grpc` upstreams
 * with a real @grpc/grpc-js server and client: unary, server streaming and
 * bidirectional calls, status and trailers relayed, UNAVAILABLE when the
 * upstream is down; and `scheme: grpcs` upstreams (gRPC over TLS), whose
 * certificate is verified unless `tls.verify` is false.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makePki, type TestPki } from '../helpers/certs.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../dataplane/helpers.js';

const run = promisify(execFile);
const PROTO = fileURLToPath(new URL('./fixtures/echo.proto', import.meta.url));

interface Msg {
  text: string;
  n: number;
}
type EchoClient = grpc.Client & {
  Say(m: Msg, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: Msg) => void): grpc.ClientUnaryCall;
  Count(m: Msg): grpc.ClientReadableStream<Msg>;
  Chat(): grpc.ClientDuplexStream<Msg, Msg>;
};

let pki: TestPki;
let gw: TestGateway;
let up: Upstream;
let tlsPort: number;
let grpcServer: grpc.Server;
let grpcPort: number;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- proto-loader's package object is untyped
let echoService: any;
let echoImpl: grpc.UntypedServiceImplementation;

beforeAll(async () => {
  pki = makePki();
  up = await startUpstream();
  const def = protoLoader.loadSync(PROTO, { keepCase: true, defaults: true });
  echoService = (grpc.loadPackageDefinition(def) as any).portico.test.Echo;
  grpcServer = new grpc.Server();
  grpcServer.addService(echoService.service, (echoImpl = {
    Say(call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      if (call.request.text === 'fail') {
        cb({ code: grpc.status.FAILED_PRECONDITION, details: 'asked to fail' });
        return;
      }
      const md = new grpc.Metadata();
      md.set('x-upstream-trailer', 'yes');
      cb(null, { text: `hello ${call.request.text} via ${call.getPath()}`, n: Number(call.metadata.get('x-n')[0] ?? 0) }, md);
    },
    Count(call: grpc.ServerWritableStream<Msg, Msg>) {
      for (let i = 1; i <= call.request.n; i++) call.write({ text: call.request.text, n: i });
      call.end();
    },
    Chat(call: grpc.ServerDuplexStream<Msg, Msg>) {
      call.on('data', (m: Msg) => call.write({ text: m.text.toUpperCase(), n: m.n * 2 }));
      call.on('end', () => call.end());
    },
  }));
  grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  gw = await startTestGateway({
    config: {
      apisix: {
        node_listen: { ip: '127.0.0.1', port: 0, enable_http2: true },
        ssl: { enable: true, listen: [{ ip: '127.0.0.1', port: 0 }] },
      },
    },
  });
  tlsPort = gw.gateway.tlsAddresses[0]!.port;
  const server = pki.server(['h2.test']);
  expect((await gw.admin('PUT', '/apisix/admin/ssls/h2', { cert: server.cert, key: server.key, sni: 'h2.test' })).status).toBe(201);
  expect((await gw.admin('PUT', '/apisix/admin/routes/web', { uri: '/web/*', upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${up.port}`]: 1 } } })).status).toBe(201);
  expect(
    (await gw.admin('PUT', '/apisix/admin/routes/grpc', {
      uri: '/portico.test.Echo/*',
      upstream: { scheme: 'grpc', type: 'roundrobin', nodes: { [`127.0.0.1:${grpcPort}`]: 1 } },
    })).status,
  ).toBe(201);
  await new Promise((r) => setTimeout(r, 100));
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await up?.close();
  grpcServer?.forceShutdown();
  pki?.remove();
});

async function curl(args: string[]): Promise<{ body: string; version: string; code: string }> {
  const { stdout } = await run('curl', ['-sS', ...args, '-w', '\n%{http_version} %{http_code}']);
  const lines = stdout.split('\n');
  const [version, code] = lines.pop()!.split(' ');
  return { body: lines.join('\n'), version: version!, code: code! };
}

describe('HTTP/2 to the gateway', () => {
  test('ALPN h2 on the HTTPS listener, HTTP/1.1 still offered; the flow sees the same request', async () => {
    const base = ['--cacert', pki.ca.certFile, '--resolve', `h2.test:${tlsPort}:127.0.0.1`];
    const h2 = await curl([...base, '--http2', '-d', 'payload', `https://h2.test:${tlsPort}/web/a?q=1`]);
    expect(h2.version).toBe('2');
    expect(h2.code).toBe('200');
    const seen = JSON.parse(h2.body) as { method: string; url: string; headers: Record<string, string>; body: string };
    expect(seen).toMatchObject({ method: 'POST', url: '/web/a?q=1', body: 'payload' });
    expect(seen.headers).toMatchObject({ host: `h2.test:${tlsPort}`, 'x-forwarded-proto': 'https' });
    expect(Object.keys(seen.headers).some((h) => h.startsWith(':'))).toBe(false);
    const h1 = await curl([...base, '--http1.1', `https://h2.test:${tlsPort}/web/b`]);
    expect(h1).toMatchObject({ version: '1.1', code: '200' });
    // The gateway's own answers too.
    expect(await curl([...base, '--http2', `https://h2.test:${tlsPort}/nowhere`])).toMatchObject({ version: '2', code: '404' });
  });

  test('h2c with prior knowledge on node_listen with enable_http2, HTTP/1.1 beside it', async () => {
    const h2c = await curl(['--http2-prior-knowledge', '-d', 'x', `http://127.0.0.1:${gw.dataPort}/web/c`]);
    expect(h2c).toMatchObject({ version: '2', code: '200' });
    expect(JSON.parse(h2c.body)).toMatchObject({ url: '/web/c', body: 'x', headers: { 'x-forwarded-proto': 'http' } });
    expect(await curl([`http://127.0.0.1:${gw.dataPort}/web/d`])).toMatchObject({ version: '1.1', code: '200' });
  });
});

describe('gRPC through the gateway (scheme: grpc)', () => {
  const clientOver = (tls: boolean): EchoClient =>
    tls
      ? new echoService(`127.0.0.1:${tlsPort}`, grpc.credentials.createSsl(Buffer.from(pki.ca.cert)), { 'grpc.ssl_target_name_override': 'h2.test' })
      : new echoService(`127.0.0.1:${gw.dataPort}`, grpc.credentials.createInsecure());

  for (const tls of [true, false]) {
    const over = tls ? 'over TLS' : 'over h2c';
    test(`unary call with metadata, trailers and an error status, ${over}`, async () => {
      const client = clientOver(tls);
      try {
        const md = new grpc.Metadata();
        md.set('x-n', '7');
        const trailers = new Promise<grpc.Metadata>((resolve) => {
          const call = client.Say({ text: 'portico', n: 0 }, md, (err, res) => {
            expect(err).toBeNull();
            expect(res).toEqual({ text: 'hello portico via /portico.test.Echo/Say', n: 7 });
          });
          call.on('status', (s: grpc.StatusObject) => resolve(s.metadata));
        });
        expect((await trailers).get('x-upstream-trailer')).toEqual(['yes']);
        const failed = await new Promise<grpc.ServiceError | null>((resolve) => client.Say({ text: 'fail', n: 0 }, new grpc.Metadata(), (err) => resolve(err)));
        expect(failed?.details).toBe('asked to fail');
        expect(failed?.code).toBe(grpc.status.FAILED_PRECONDITION);
        expect(failed?.details).toBe('asked to fail');
      } finally {
        client.close();
      }
    });

    test(`server streaming and bidirectional streaming, ${over}`, async () => {
      const client = clientOver(tls);
      try {
        const counted: number[] = [];
        await new Promise<void>((resolve, reject) => {
          const stream = client.Count({ text: 'c', n: 5 });
          stream.on('data', (m: Msg) => counted.push(m.n));
          stream.on('end', resolve);
          stream.on('error', reject);
        });
        expect(counted).toEqual([1, 2, 3, 4, 5]);
        const chat = client.Chat();
        const replies: Msg[] = [];
        const done = new Promise<void>((resolve, reject) => {
          chat.on('data', (m: Msg) => {
            replies.push(m);
            // Answer to each reply: the exchange is interleaved, not buffered until the end.
            if (replies.length < 3) chat.write({ text: `again${replies.length}`, n: replies.length });
            else chat.end();
          });
          chat.on('end', resolve);
          chat.on('error', reject);
        });
        chat.write({ text: 'hi', n: 21 });
        await done;
        expect(replies).toEqual([
          { text: 'HI', n: 42 },
          { text: 'AGAIN1', n: 2 },
          { text: 'AGAIN2', n: 4 },
        ]);
      } finally {
        client.close();
      }
    });
  }

  test('an upstream that is down answers UNAVAILABLE, and the gateway keeps serving', async () => {
    expect(
      (await gw.admin('PUT', '/apisix/admin/routes/grpc-down', {
        uri: '/portico.test.Echo/Count',
        upstream: { scheme: 'grpc', type: 'roundrobin', nodes: { '127.0.0.1:1': 1 } },
      })).status,
    ).toBe(201);
    await new Promise((r) => setTimeout(r, 100));
    const client = clientOver(false);
    try {
      const err = await new Promise<grpc.ServiceError>((resolve) => {
        const stream = client.Count({ text: 'c', n: 1 });
        stream.on('data', () => undefined);
        stream.on('error', resolve);
      });
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
      const ok = await new Promise<Msg>((resolve, reject) => client.Say({ text: 'still', n: 0 }, new grpc.Metadata(), (e, r) => (e ? reject(e) : resolve(r))));
      expect(ok.text).toBe('hello still via /portico.test.Echo/Say');
    } finally {
      client.close();
    }
  });
});

describe('scheme grpcs: gRPC over TLS to the upstream', () => {
  let tlsServer: grpc.Server;
  let tlsGrpcPort: number;

  beforeAll(async () => {
    // Signed by the test CA, which Node's trust store does not hold: verification must fail unless turned off.
    const cert = pki.server(['grpc.upstream.test']);
    tlsServer = new grpc.Server();
    tlsServer.addService(echoService.service, echoImpl);
    const creds = grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(cert.key), cert_chain: Buffer.from(cert.cert) }], false);
    tlsGrpcPort = await new Promise<number>((resolve, reject) => tlsServer.bindAsync('127.0.0.1:0', creds, (err, port) => (err ? reject(err) : resolve(port))));
    for (const [id, host, tls] of [
      ['grpcs-noverify', 'noverify.grpcs.test', { verify: false }],
      ['grpcs-verify', 'verify.grpcs.test', undefined],
    ] as const) {
      const upstream = { scheme: 'grpcs', type: 'roundrobin', nodes: { [`127.0.0.1:${tlsGrpcPort}`]: 1 }, ...(tls ? { tls } : {}) };
      expect((await gw.admin('PUT', `/apisix/admin/routes/${id}`, { uri: '/portico.test.Echo/*', hosts: [host], upstream })).status).toBe(201);
    }
    await new Promise((r) => setTimeout(r, 100));
  });
  afterAll(() => tlsServer?.forceShutdown());

  /** A client of the gateway's h2c port whose requests carry `host` as :authority, which routes them. */
  const clientFor = (host: string): EchoClient => new echoService(`127.0.0.1:${gw.dataPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': host });

  test('unary and server-streaming calls reach a TLS-only gRPC server (tls.verify false)', async () => {
    const client = clientFor('noverify.grpcs.test');
    try {
      const md = new grpc.Metadata();
      md.set('x-n', '3');
      const res = await new Promise<Msg>((resolve, reject) => client.Say({ text: 'tls', n: 0 }, md, (e, r) => (e ? reject(e) : resolve(r))));
      expect(res).toEqual({ text: 'hello tls via /portico.test.Echo/Say', n: 3 });
      const counted: number[] = [];
      await new Promise<void>((resolve, reject) => {
        const stream = client.Count({ text: 'c', n: 4 });
        stream.on('data', (m: Msg) => counted.push(m.n));
        stream.on('end', resolve);
        stream.on('error', reject);
      });
      expect(counted).toEqual([1, 2, 3, 4]);
    } finally {
      client.close();
    }
  });

  test('by default the upstream certificate is verified: an untrusted one answers UNAVAILABLE, and the gateway keeps serving', async () => {
    const client = clientFor('verify.grpcs.test');
    try {
      const err = await new Promise<grpc.ServiceError | null>((resolve) => client.Say({ text: 'x', n: 0 }, new grpc.Metadata(), (e) => resolve(e)));
      expect(err?.code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      client.close();
    }
    const again = clientFor('noverify.grpcs.test');
    try {
      const ok = await new Promise<Msg>((resolve, reject) => again.Say({ text: 'after', n: 0 }, new grpc.Metadata(), (e, r) => (e ? reject(e) : resolve(r))));
      expect(ok.text).toBe('hello after via /portico.test.Echo/Say');
    } finally {
      again.close();
    }
  });
});
