/**
 * Request smuggling and header spoofing through real sockets: CL+TE, obfuscated
 * and duplicate TE, bare LF, chunk extensions; hop-by-hop and X-Forwarded-* headers.
 *
 * Each smuggling case is written byte for byte on its own TCP connection to
 * the data plane. The upstream is a node:http server that records every
 * request its own parser saw (started and completed) and every byte that
 * reached it, so a case asserts three things: what the client got back, how
 * many requests the upstream parsed (never a smuggled extra one), and how the
 * forwarded request was framed (undici re-frames the body: never both
 * Content-Length and Transfer-Encoding, never a Content-Length on a forward
 * without a body, never the client's chunk syntax copied through).
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PluginDefinition } from '../../src/core/plugin/contract.js';
import { send, startPlane, type Plane } from './helpers.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
  complete: boolean;
}

interface Recorder {
  port: number;
  server: Server;
  /** Requests the upstream's parser started, in arrival order; `complete` once the body ended. */
  seen: Seen[];
  /** Every byte that reached the upstream, on any connection. */
  wire: string;
  close(): Promise<void>;
}

async function startRecorder(): Promise<Recorder> {
  const rec = { seen: [] as Seen[], wire: '' } as Recorder;
  const server = createServer((req, res) => {
    const entry: Seen = { method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: '', complete: false };
    rec.seen.push(entry);
    req.on('data', (c: Buffer) => (entry.body += c.toString('latin1')));
    req.on('end', () => {
      entry.complete = true;
      res.setHeader('content-type', 'text/plain');
      res.end(`seen ${req.method} ${req.url} body=${entry.body}`);
    });
    req.on('error', () => undefined);
  });
  server.on('connection', (s) => s.on('data', (d: Buffer) => (rec.wire += d.toString('latin1'))));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  rec.server = server;
  rec.port = (server.address() as AddressInfo).port;
  rec.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return rec;
}

/**
 * Writes `parts` on a fresh connection (pausing `gapMs` between them) and
 * returns everything the gateway sent back before it closed the connection,
 * or after `idleMs` of silence once something arrived.
 */
function rawExchange(port: number, parts: string[], opts: { gapMs?: number; idleMs?: number } = {}): Promise<string> {
  const { gapMs = 50, idleMs = 1500 } = opts;
  return new Promise((resolve) => {
    let out = '';
    let timer: NodeJS.Timeout | undefined;
    const s = connect(port, '127.0.0.1');
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(out);
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(done, idleMs);
    };
    s.on('connect', async () => {
      for (let i = 0; i < parts.length; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, gapMs));
        if (!s.destroyed) s.write(parts[i]!);
      }
      arm();
    });
    s.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      arm();
    });
    s.on('close', done);
    s.on('error', done);
  });
}

/**
 * Status codes of the HTTP responses in a raw byte string, in order, walked by
 * their Content-Length (every response here has one), so text inside a body
 * never counts as a response; trailing bytes that are not a response fail the test.
 */
function statuses(raw: string): number[] {
  const out: number[] = [];
  let at = 0;
  while (at < raw.length) {
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(raw.slice(at));
    const end = raw.indexOf('\r\n\r\n', at);
    if (m === null || end < 0) throw new Error(`not a response at ${at}: ${JSON.stringify(raw.slice(at, at + 80))}`);
    out.push(Number(m[1]));
    const length = /\r\ncontent-length: *(\d+)/i.exec(raw.slice(at, end));
    at = end + 4 + (length === null ? 0 : Number(length[1]));
  }
  return out;
}

/** Header names (lower-case) of a request as the upstream received them. */
function names(s: Seen): string[] {
  return s.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
}

/** Framing invariants of anything forwarded: one framing header at most, and none without a body. */
function expectSaneFraming(s: Seen): void {
  const n = names(s);
  const cl = n.filter((x) => x === 'content-length').length;
  const te = n.filter((x) => x === 'transfer-encoding').length;
  expect(cl + te, `framing headers of ${s.method} ${s.url}: ${n.join(',')}`).toBeLessThanOrEqual(1);
  if (s.body === '') expect(cl === 0 || s.headers['content-length'] === '0').toBe(true);
  if (te === 1) expect(s.headers['transfer-encoding']).toBe('chunked');
}

const H = 'Host: smuggle.test\r\n';

describe('data plane: request smuggling corpus (raw TCP)', () => {
  let plane: Plane;
  let up: Recorder;

  beforeAll(async () => {
    up = await startRecorder();
    plane = await startPlane();
    const upstream = { nodes: { [`127.0.0.1:${up.port}`]: 1 } };
    await plane.put('/apisix/routes/h', { uri: '/h', upstream });
    await plane.put('/apisix/routes/secret', { uri: '/secret', upstream });
  });
  afterAll(async () => {
    await plane?.close();
    await up?.close();
  });

  /** Runs one case; returns the client's bytes and what the upstream saw meanwhile. */
  async function exchange(parts: string[], opts?: { gapMs?: number; idleMs?: number }): Promise<{ reply: string; seen: Seen[]; wire: string }> {
    const s0 = up.seen.length;
    const w0 = up.wire.length;
    const reply = await rawExchange(plane.port, parts, opts);
    // Whatever the gateway was going to forward has been written by the time the client's answer came back; allow a beat for an abort.
    await new Promise((r) => setTimeout(r, 50));
    return { reply, seen: up.seen.slice(s0), wire: up.wire.slice(w0) };
  }

  async function expectRejected(name: string, request: string): Promise<void> {
    const { reply, seen } = await exchange([request]);
    expect(statuses(reply), name).toEqual([400]);
    expect(seen, name).toEqual([]);
  }

  it('baseline: two honest pipelined requests are two upstream requests and two responses', async () => {
    const { reply, seen } = await exchange([
      `POST /h HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhelloGET /h?second HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
    ]);
    expect(statuses(reply)).toEqual([200, 200]);
    expect(seen.map((s) => `${s.method} ${s.url} ${s.body} ${s.complete}`)).toEqual(['POST /h hello true', 'GET /h?second  true']);
    seen.forEach(expectSaneFraming);
  });

  it('CL+TE together (either order) → 400, nothing upstream', async () => {
    await expectRejected('CL then TE', `POST /h HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /secret HTTP/1.1\r\n${H}\r\n`);
    await expectRejected('TE then CL', `POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /secret HTTP/1.1\r\n${H}\r\n`);
    await expectRejected('TE then CL: 0', `POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
  });

  it('TE with an obfuscated value: a non-chunked final coding → 400', async () => {
    for (const te of ['xchunked', 'chunked, identity', 'identity', 'chunked;q=1', 'chunk']) {
      await expectRejected(`TE: ${te}`, `POST /h HTTP/1.1\r\n${H}Transfer-Encoding: ${te}\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /secret HTTP/1.1\r\n${H}\r\n`);
    }
  });

  it('TE with leading whitespace or other case is plain chunked (OWS): one request, body de-chunked and re-framed', async () => {
    for (const te of [' chunked', '\tchunked', 'CHUNKED']) {
      const { reply, seen, wire } = await exchange([`POST /h HTTP/1.1\r\n${H}Transfer-Encoding:${te}\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`]);
      expect(statuses(reply), JSON.stringify(te)).toEqual([200]);
      expect(reply).toMatch(/seen POST \/h body=hello$/);
      expect(seen.map((s) => `${s.method} ${s.url} ${s.body}`)).toEqual(['POST /h hello']);
      seen.forEach(expectSaneFraming);
      // undici writes its own lower-case header, never the client's spelling.
      expect(wire).not.toContain(`Transfer-Encoding:${te}`);
    }
  });

  it('duplicate Transfer-Encoding headers → 400', async () => {
    await expectRejected('chunked twice', `POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
    await expectRejected('chunked + identity', `POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
    // Combined as `identity, chunked`: chunked is final, so llhttp decodes it (RFC 9112 §6.3); what goes upstream is undici's framing.
    const { reply, seen, wire } = await exchange([
      `POST /h HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    ]);
    expect(statuses(reply)).toEqual([200]);
    expect(seen.map((s) => `${s.method} ${s.url} ${s.body} ${s.complete}`)).toEqual(['POST /h hello true']);
    seen.forEach(expectSaneFraming);
    expect(wire).not.toContain('identity');
  });

  it('duplicate Content-Length → 400 (differing values, and even equal ones)', async () => {
    await expectRejected('5 and 6', `POST /h HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`);
    await expectRejected('list 5, 6', `POST /h HTTP/1.1\r\n${H}Content-Length: 5, 6\r\n\r\nhello!`);
    await expectRejected('5 and 5', `POST /h HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`);
    await expectRejected('signed', `POST /h HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\nhello`);
  });

  it('LF-only line endings → 400', async () => {
    await expectRejected('LF everywhere', `POST /h HTTP/1.1\nHost: x\nContent-Length: 5\n\nhello`);
    await expectRejected('LF on one header line', `GET /h HTTP/1.1\r\n${H}X-A: 1\nContent-Length: 5\r\n\r\nhello`);
    await expectRejected('bare CR', `GET /h HTTP/1.1\r\n${H}X-A: 1\rContent-Length: 5\r\n\r\nhello`);
  });

  it('whitespace before the colon, or a folded header → 400', async () => {
    await expectRejected('space', `POST /h HTTP/1.1\r\n${H}Content-Length : 5\r\n\r\nhello`);
    await expectRejected('tab', `POST /h HTTP/1.1\r\n${H}Transfer-Encoding\t: chunked\r\nContent-Length: 5\r\n\r\nhello`);
    await expectRejected('obs-fold', `POST /h HTTP/1.1\r\n${H}X-A: 1\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello`);
  });

  it('chunk extensions are accepted and not forwarded: the upstream gets the plain body', async () => {
    const { reply, seen, wire } = await exchange([
      `POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;ext=1\r\nhello\r\n3;a="b;c"\r\n!!!\r\n0\r\n\r\n`,
    ]);
    expect(statuses(reply)).toEqual([200]);
    expect(seen.map((s) => `${s.method} ${s.body} ${s.complete}`)).toEqual(['POST hello!!! true']);
    seen.forEach(expectSaneFraming);
    expect(wire).not.toContain('ext=1');
    expect(wire).not.toContain('a="b');
  });

  it('a bad chunk size → 400; the upstream never completes a request, and nothing after it is parsed', async () => {
    // The request streams: once its headers are parsed it is on its way upstream, so a body
    // that turns bad later is aborted there (started, never complete), not buffered first.
    const cases: Array<[string, string[]]> = [
      ['zz', [`POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\nGET /secret HTTP/1.1\r\n${H}\r\n`]],
      ['overflow', [`POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nhello\r\n0\r\n\r\n`]],
      ['negative', [`POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n`]],
      ['no CRLF after data', [`POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\nGET /secret HTTP/1.1\r\n${H}\r\n`]],
      ['bad size in a later packet', [`POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`, `zz\r\n0\r\n\r\nGET /secret HTTP/1.1\r\n${H}\r\n`]],
    ];
    for (const [name, parts] of cases) {
      const { reply, seen } = await exchange(parts, { gapMs: 150 });
      expect(statuses(reply), name).toEqual([400]);
      expect(seen.filter((s) => s.complete), name).toEqual([]);
      expect(seen.map((s) => s.url), name).not.toContain('/secret');
    }
  });

  it('garbage after a request whose response is streaming cuts the connection; no 400 is spliced into the response', async () => {
    let release: () => void = () => undefined;
    const streaming = createServer((_req, res) => {
      res.writeHead(200, { 'content-length': '10' });
      res.write('first');
      release = () => res.end('-last');
    });
    await new Promise<void>((r) => streaming.listen(0, '127.0.0.1', r));
    try {
      await plane.put('/apisix/routes/stream', { uri: '/stream', upstream: { nodes: { [`127.0.0.1:${(streaming.address() as AddressInfo).port}`]: 1 } } });
      const reply = await new Promise<string>((resolve) => {
        let out = '';
        const s = connect(plane.port, '127.0.0.1', () => s.write(`GET /stream HTTP/1.1\r\n${H}\r\n`));
        s.on('data', (d: Buffer) => {
          const first = out === '';
          out += d.toString('latin1');
          // The response head and its first bytes are out: now a request llhttp refuses.
          if (first) setTimeout(() => s.write(`POST /h HTTP/1.1\r\n${H}Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n`), 50);
        });
        s.on('close', () => resolve(out));
        s.on('error', () => resolve(out));
        setTimeout(() => s.destroy(), 3000);
      });
      expect(reply).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(reply).toMatch(/\r\n\r\nfirst$/);
      expect(reply).not.toContain('400 Bad Request');
    } finally {
      release();
      streaming.closeAllConnections();
      await new Promise<void>((r) => streaming.close(() => r()));
    }
  });

  it('a GET carrying Content-Length and a body: one request, body framed by its own length; hidden request stays body', async () => {
    const hidden = `GET /secret HTTP/1.1\r\n${H}\r\n`;
    const { reply, seen } = await exchange([`GET /h HTTP/1.1\r\n${H}Content-Length: ${hidden.length}\r\nConnection: close\r\n\r\n${hidden}`]);
    expect(statuses(reply)).toEqual([200]);
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual(['GET /h']);
    expect(seen[0]!.body).toBe(hidden);
    expect(seen[0]!.headers['content-length']).toBe(String(hidden.length));
    seen.forEach(expectSaneFraming);
  });

  it('no stray Content-Length on a bodiless forward', async () => {
    for (const head of [`GET /h HTTP/1.1\r\n${H}Content-Length: 0\r\n`, `GET /h HTTP/1.1\r\n${H}`, `DELETE /h HTTP/1.1\r\n${H}Content-Length: 0\r\n`]) {
      const { reply, seen } = await exchange([`${head}Connection: close\r\n\r\n`]);
      expect(statuses(reply), head).toEqual([200]);
      expect(seen.length).toBe(1);
      expect(names(seen[0]!), head).not.toContain('content-length');
      expect(names(seen[0]!), head).not.toContain('transfer-encoding');
    }
    // A chunked upload of nothing: forwarded with one framing header (or none), never both.
    const { seen } = await exchange([`POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n`]);
    expect(seen.map((s) => `${s.method} ${s.body} ${s.complete}`)).toEqual(['POST  true']);
    seen.forEach(expectSaneFraming);
  });

  it('a pipelined request hidden in a body stays body (Content-Length and chunked framing)', async () => {
    const hidden = `GET /secret HTTP/1.1\r\n${H}\r\n`;
    const byLength = await exchange([`POST /h HTTP/1.1\r\n${H}Content-Length: ${hidden.length}\r\nConnection: close\r\n\r\n${hidden}`]);
    expect(statuses(byLength.reply)).toEqual([200]);
    expect(byLength.seen.map((s) => `${s.method} ${s.url} ${s.body === hidden}`)).toEqual(['POST /h true']);
    byLength.seen.forEach(expectSaneFraming);

    const size = hidden.length.toString(16);
    const chunked = await exchange([`POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n${size}\r\n${hidden}\r\n0\r\n\r\n`]);
    expect(statuses(chunked.reply)).toEqual([200]);
    expect(chunked.seen.map((s) => `${s.method} ${s.url} ${s.body === hidden}`)).toEqual(['POST /h true']);
    chunked.seen.forEach(expectSaneFraming);
  });

  it('an Upgrade request with a body on a plain route: the body is forwarded whole, the Upgrade is not, and trailing bytes stay unparsed', async () => {
    // Node hands any `Connection: upgrade` request to the upgrade path without reading its body;
    // curl --http2 on http:// sends exactly this (Upgrade: h2c) with its POST body.
    const hidden = `GET /secret HTTP/1.1\r\n${H}\r\n`;
    const { reply, seen } = await exchange(
      [`POST /h HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 5\r\n\r\nhel`, `lo${hidden}`],
      { gapMs: 100 },
    );
    expect(statuses(reply)).toEqual([200]);
    expect(reply).toMatch(/seen POST \/h body=hello$/);
    expect(seen.map((s) => `${s.method} ${s.url} ${s.body} ${s.complete}`)).toEqual(['POST /h hello true']);
    const n = names(seen[0]!);
    for (const hop of ['upgrade', 'http2-settings', 'connection']) expect(n.includes(hop) && seen[0]!.headers[hop] !== 'keep-alive', hop).toBe(false);
    seen.forEach(expectSaneFraming);
  });

  it('an Upgrade request with a chunked body on a plain route → 400, nothing upstream', async () => {
    await expectRejected('upgrade + chunked', `POST /h HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: h2c\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
  });

  it('nothing in Portico turns on lenient HTTP parsing', () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (/\.(ts|js|mjs|cjs|json|yaml)$/.test(name) && /insecureHTTPParser|insecure-http-parser|lenient/i.test(readFileSync(p, 'utf8'))) offenders.push(p);
      }
    };
    const root = new URL('../../', import.meta.url).pathname;
    for (const dir of ['src', 'conf', 'bin']) {
      try {
        walk(join(root, dir));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    expect(offenders).toEqual([]);
    expect(process.execArgv.join(' ') + ' ' + (process.env.NODE_OPTIONS ?? '')).not.toMatch(/insecure-http-parser/);
  });
});

describe('data plane: header spoofing and hop-by-hop headers', () => {
  let plane: Plane;
  let up: Recorder;
  /** What route `vars` and plugins read for the headers the gateway owns. */
  const varsSeen: Array<Record<string, string | undefined>> = [];
  const plugins: PluginDefinition[] = [
    {
      name: 'read-vars',
      priority: 100,
      schema: {},
      access: (_conf, ctx) => {
        varsSeen.push({
          xff: ctx.var.get('http_x_forwarded_for'),
          realIp: ctx.var.get('http_x_real_ip'),
          xfh: ctx.var.get('http_x_forwarded_host'),
        });
        return undefined;
      },
    },
    { name: 'internal-only', priority: 90, schema: {}, access: () => ({ status: 403, body: 'internal route' }) },
  ];

  beforeAll(async () => {
    up = await startRecorder();
    plane = await startPlane({ plugins });
    const upstream = { nodes: { [`127.0.0.1:${up.port}`]: 1 } };
    await plane.put('/apisix/routes/hdr', { uri: '/hdr', plugins: { 'read-vars': {} }, upstream });
    // vars match on the hyphenated header only: an underscored spelling must not select this route.
    await plane.put('/apisix/routes/internal', { uri: '/who', priority: 10, vars: [['http_x_real_ip', '==', '10.0.0.1']], plugins: { 'internal-only': {} }, upstream });
    await plane.put('/apisix/routes/public', { uri: '/who', priority: 0, upstream });
  });
  afterAll(async () => {
    await plane?.close();
    await up?.close();
  });

  async function forwarded(req: string): Promise<{ reply: string; seen: Seen }> {
    const s0 = up.seen.length;
    const reply = await rawExchange(plane.port, [req]);
    const seen = up.seen.slice(s0);
    expect(seen.length).toBe(1);
    return { reply, seen: seen[0]! };
  }

  it('underscored X_Forwarded_*/X_Real_IP never pose as the hyphenated headers, upstream or in http_* variables', async () => {
    varsSeen.length = 0;
    const { reply, seen } = await forwarded(
      `GET /hdr HTTP/1.1\r\n${H}X_Forwarded_For: 10.0.0.1\r\nX_Real_IP: 10.0.0.1\r\nX_Forwarded_Host: evil.example\r\n` +
        `X-Forwarded_Proto: https\r\nx_forwarded-port: 1\r\nX_Custom_Thing: kept\r\nConnection: close\r\n\r\n`,
    );
    expect(statuses(reply)).toEqual([200]);
    const n = names(seen);
    // The gateway's own headers arrive once each, with the gateway's values.
    for (const own of ['x-forwarded-for', 'x-real-ip', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port']) {
      expect(n.filter((x) => x === own), own).toHaveLength(1);
    }
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen.headers['x-real-ip']).toBe('127.0.0.1');
    expect(seen.headers['x-forwarded-host']).toBe('smuggle.test');
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    expect(seen.headers['x-forwarded-port']).toBe(String(plane.port));
    // Underscored spellings of those headers are dropped (a CGI-style upstream would fold them into the same name) ...
    for (const spoof of ['x_forwarded_for', 'x_real_ip', 'x_forwarded_host', 'x-forwarded_proto', 'x_forwarded-port']) expect(n, spoof).not.toContain(spoof);
    // ... other underscored headers pass unchanged, as APISIX (underscores_in_headers on) forwards them.
    expect(seen.headers['x_custom_thing']).toBe('kept');
    expect(n).not.toContain('x-custom-thing');
    // http_* variables read only the hyphenated header.
    expect(varsSeen).toEqual([{ xff: undefined, realIp: undefined, xfh: undefined }]);
  });

  it('an underscored X_Real_IP does not satisfy a vars match on http_x_real_ip; the real header does', async () => {
    const viaUnderscore = await rawExchange(plane.port, [`GET /who HTTP/1.1\r\n${H}X_Real_IP: 10.0.0.1\r\nConnection: close\r\n\r\n`]);
    const viaHyphen = await rawExchange(plane.port, [`GET /who HTTP/1.1\r\n${H}X-Real-IP: 10.0.0.1\r\nConnection: close\r\n\r\n`]);
    expect(statuses(viaUnderscore)).toEqual([200]);
    expect(viaUnderscore).toMatch(/seen GET \/who/);
    expect(statuses(viaHyphen)).toEqual([403]);
    expect(viaHyphen).toContain('internal route');
  });

  it('hop-by-hop headers are stripped: Connection and what it lists, Keep-Alive, TE, Trailer, Upgrade, Proxy-*', async () => {
    const { reply, seen } = await forwarded(
      `GET /hdr HTTP/1.1\r\n${H}Connection: keep-alive, X-Hop-A, x-hop-b\r\nConnection: X-Hop-C\r\nX-Hop-A: 1\r\nX-Hop-B: 2\r\nX-Hop-C: 3\r\n` +
        `Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-Sum\r\nUpgrade: h2c\r\nProxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\n` +
        `X-End-To-End: stays\r\n\r\n`,
    );
    expect(statuses(reply)).toEqual([200]);
    const n = names(seen);
    for (const hop of ['x-hop-a', 'x-hop-b', 'x-hop-c', 'keep-alive', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-connection']) {
      expect(n, hop).not.toContain(hop);
    }
    // undici's own Connection header for its pool, never the client's.
    expect(seen.headers.connection ?? 'keep-alive').toBe('keep-alive');
    expect(seen.headers['x-end-to-end']).toBe('stays');
  });

  it('dropped names are dropped in any letter case; end-to-end lines pass as sent, repeats and case kept', async () => {
    // The forwarder decides from length and first letter which names to lower-case and check: every
    // spelling of every dropped name must still be caught.
    const dropped = ['Keep-Alive', 'TE', 'Trailer', 'Upgrade', 'Proxy-Connection', 'Proxy-Foo', 'X-Real-IP', 'X_Real_Ip', 'X-Forwarded-For', 'X_FORWARDED_FOR', 'X-Forwarded-Host', 'X-Forwarded-Port', 'x_forwarded_port', 'X-Forwarded-Proto', 'X-FORWARDED_PROTO'];
    const spellings = (n: string) => [n, n.toLowerCase(), n.toUpperCase()];
    const lines = dropped.flatMap(spellings).map((n, i) => `${n}: spoof-${i}\r\n`).join('');
    const { reply, seen } = await forwarded(
      `GET /hdr HTTP/1.1\r\n${H}${lines}X-Repeat: one\r\nX-Repeat: two\r\nX-MiXeD-CaSe: kept\r\nConnection: close\r\n\r\n`,
    );
    expect(statuses(reply)).toEqual([200]);
    const raw = seen.rawHeaders;
    for (let i = 1; i < raw.length; i += 2) expect(raw[i], raw[i - 1]).not.toMatch(/^spoof-/);
    expect(raw.filter((x, i) => i % 2 === 0 && x === 'X-Repeat')).toHaveLength(2);
    expect(raw).toContain('X-MiXeD-CaSe');
  });

  it('client-sent X-Forwarded-For/-Host/-Proto/-Port and X-Real-IP are overwritten', async () => {
    const { seen } = await forwarded(
      `GET /hdr HTTP/1.1\r\n${H}X-Forwarded-For: 10.9.9.9\r\nX-Forwarded-For: 10.8.8.8\r\nX-Real-IP: 10.9.9.9\r\nX-Forwarded-Host: evil.example\r\n` +
        `X-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\nConnection: close\r\n\r\n`,
    );
    const n = names(seen);
    for (const own of ['x-forwarded-for', 'x-real-ip', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port']) expect(n.filter((x) => x === own), own).toHaveLength(1);
    expect(seen.headers['x-real-ip']).toBe('127.0.0.1');
    expect(seen.headers['x-forwarded-host']).toBe('smuggle.test');
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    expect(seen.headers['x-forwarded-port']).toBe(String(plane.port));
    // The peer is not in apisix.trusted_addresses: a forged chain is replaced by the socket address
    // (t/dataplane/trusted-addresses.test.ts covers a trusted peer, whose chain is kept and extended).
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
  });

  it('a plain request through send() still works after the attacks (the gateway keeps serving)', async () => {
    expect((await send(plane.port, { path: '/hdr' })).status).toBe(200);
  });
});
