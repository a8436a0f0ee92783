/**
 * opentelemetry through real sockets: a local OTLP/HTTP receiver decodes the
 * spans the gateway exports, and the upstream shows the traceparent it was
 * sent, so parent/child links are checked end to end.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectRouteConfsRefused, send, startEnv, type Env } from './helpers.js';

interface OtlpValue {
  stringValue?: string;
  intValue?: number | string;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Array<{ key: string; value: OtlpValue }>;
  status?: { code?: number; message?: string };
}
interface Received {
  resource: Record<string, OtlpValue>;
  span: OtlpSpan;
}

let env: Env;
let receiver: Server;
let collector: string;
const received: Received[] = [];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces' && req.method === 'POST') {
        const body = JSON.parse(Buffer.concat(parts).toString()) as {
          resourceSpans: Array<{ resource: { attributes: Array<{ key: string; value: OtlpValue }> }; scopeSpans: Array<{ spans: OtlpSpan[] }> }>;
        };
        for (const rs of body.resourceSpans) {
          const resource = Object.fromEntries(rs.resource.attributes.map((a) => [a.key, a.value]));
          for (const ss of rs.scopeSpans) for (const span of ss.spans) received.push({ resource, span });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  collector = `127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  env = await startEnv();
  await env.put('/apisix/admin/plugin_metadata/opentelemetry', {
    resource: { 'service.name': 'portico-test', 'deployment.environment': 'ci' },
    collector: { address: collector, request_timeout: 3 },
    batch_span_processor: { batch_timeout: 0.05, inactive_timeout: 0.05, max_export_batch_size: 4 },
  });
});
afterAll(async () => {
  await env?.close();
  receiver?.closeAllConnections();
  receiver?.close();
});
beforeEach(() => {
  env.up.seen.length = 0;
});

async function spanOf(traceId: string): Promise<Received> {
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
    const found = received.find((r) => r.span.traceId === traceId);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no span of trace ${traceId} reached the receiver`);
}

const attr = (s: OtlpSpan, key: string) => {
  const v = s.attributes.find((a) => a.key === key)?.value;
  return v?.stringValue ?? (v?.intValue !== undefined ? Number(v.intValue) : (v?.boolValue ?? v?.doubleValue));
};

function upstreamTraceparent(): string {
  const tp = env.up.seen.at(-1)?.headers.traceparent;
  expect(typeof tp).toBe('string');
  return tp as string;
}

describe('opentelemetry', () => {
  it("parent_base: the client's sampled traceparent is the span's parent, and the upstream's parent is the span", async () => {
    await env.route('ot1', '/ot1', { opentelemetry: { sampler: { name: 'parent_base' }, additional_attributes: ['arg_tenant'], additional_header_prefix_attributes: ['x-team'] } });
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const clientSpan = '00f067aa0ba902b7';
    const res = await send(`${env.gw.dataUrl}/ot1?tenant=acme`, { headers: { traceparent: `00-${traceId}-${clientSpan}-01`, 'user-agent': 'otel-test', 'x-team': 'blue' } });
    expect(res.status).toBe(200);
    const got = await spanOf(traceId);
    expect(got.span.parentSpanId).toBe(clientSpan);
    expect(got.span.name).toBe('GET /ot1');
    expect(got.span.kind).toBe(2); // SERVER
    expect(upstreamTraceparent()).toBe(`00-${traceId}-${got.span.spanId}-01`);
    expect(attr(got.span, 'http.method')).toBe('GET');
    expect(attr(got.span, 'http.target')).toBe('/ot1?tenant=acme');
    expect(attr(got.span, 'http.route')).toBe('/ot1');
    expect(attr(got.span, 'apisix.route_id')).toBe('ot1');
    expect(attr(got.span, 'http.user_agent')).toBe('otel-test');
    expect(attr(got.span, 'http.status_code')).toBe(200);
    expect(attr(got.span, 'arg_tenant')).toBe('acme');
    expect(attr(got.span, 'x-team')).toBe('blue');
    expect(got.resource['service.name']?.stringValue).toBe('portico-test');
    expect(got.resource['deployment.environment']?.stringValue).toBe('ci');
    expect(got.resource.hostname?.stringValue).toBeTruthy();

    // An unsampled parent stays unsampled: nothing exported, flags 00 upstream.
    const quiet = '5bf92f3577b34da6a3ce929d0e0e4737';
    await send(`${env.gw.dataUrl}/ot1`, { headers: { traceparent: `00-${quiet}-${clientSpan}-00` } });
    expect(upstreamTraceparent()).toMatch(new RegExp(`^00-${quiet}-[0-9a-f]{16}-00$`));
    // No parent at all: the root sampler (always_off by default) decides.
    await send(`${env.gw.dataUrl}/ot1`);
    expect(upstreamTraceparent()).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    await new Promise((r) => setTimeout(r, 500));
    expect(received.some((r) => r.span.traceId === quiet)).toBe(false);
  });

  it('always_on starts a root span; a 5xx answer marks it an error', async () => {
    env.up.replies.set('/ot2', { status: 503, body: 'down' });
    await env.route('ot2', '/ot2', { opentelemetry: { sampler: { name: 'always_on' } } });
    await send(`${env.gw.dataUrl}/ot2`);
    const tp = upstreamTraceparent();
    const [, traceId, spanId, flags] = tp.split('-');
    expect(flags).toBe('01');
    const got = await spanOf(traceId!);
    expect(got.span.spanId).toBe(spanId);
    expect(got.span.parentSpanId ?? '').toBe('');
    expect(attr(got.span, 'http.status_code')).toBe(503);
    expect(got.span.status?.code).toBe(2); // ERROR
    env.up.replies.clear();
  });

  it('always_off and trace_id_ratio 0 export nothing; trace_id_ratio 1 exports every trace', async () => {
    await env.route('ot3', '/ot3/*', { opentelemetry: { sampler: { name: 'trace_id_ratio', options: { fraction: 1 } } } });
    await env.route('ot4', '/ot4', { opentelemetry: { sampler: { name: 'always_off' } } });
    await send(`${env.gw.dataUrl}/ot3/a`);
    const sampled = upstreamTraceparent().split('-')[1]!;
    expect((await spanOf(sampled)).span.name).toBe('GET /ot3/*');
    await send(`${env.gw.dataUrl}/ot4`);
    const dropped = upstreamTraceparent().split('-')[1]!;
    await new Promise((r) => setTimeout(r, 500));
    expect(received.some((r) => r.span.traceId === dropped)).toBe(false);
  });

  it('refuses what Portico cannot apply, naming the field', async () => {
    await expectRouteConfsRefused(env, 'opentelemetry', [
      [{ sampler: { name: 'sometimes' } }, /sampler/],
      [{ additional_header_prefix_attributes: ['x-*'] }, /additional_header_prefix_attributes/],
    ]);
    const r = await env.gw.admin('PUT', '/apisix/admin/plugin_metadata/opentelemetry', { set_ngx_var: true });
    expect(r.status).toBe(400);
    expect(r.text).toMatch(/set_ngx_var/);
  });
});
