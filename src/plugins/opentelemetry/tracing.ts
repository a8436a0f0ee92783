/**
 * The OpenTelemetry SDK side of the opentelemetry plugin: one batch span
 * processor and OTLP/HTTP exporter per plugin_metadata version (the
 * collector, its headers and the batching are metadata, as in APISIX), and
 * per route conf a tracer whose provider shares that processor but has the
 * route's sampler. W3C trace context in and out through the SDK's propagator.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type TextMapGetter, type TextMapSetter, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  RandomIdGenerator,
  TraceIdRatioBasedSampler,
  type IdGenerator,
  type Sampler,
} from '@opentelemetry/sdk-trace-base';
import { hostname } from 'node:os';
import type { HeaderEdits } from '../../core/plugin/index.js';

export interface SamplerConf {
  name: 'always_on' | 'always_off' | 'trace_id_ratio' | 'parent_base';
  options?: { fraction?: number; root?: { name: 'always_on' | 'always_off' | 'trace_id_ratio'; options?: { fraction?: number } } };
}

export interface OtelMetadata {
  trace_id_source?: 'x-request-id' | 'random';
  resource?: Record<string, string | number | boolean>;
  collector?: { address?: string; request_timeout?: number; request_headers?: Record<string, string | number | boolean> };
  batch_span_processor?: {
    drop_on_queue_full?: boolean;
    max_queue_size?: number;
    batch_timeout?: number;
    inactive_timeout?: number;
    max_export_batch_size?: number;
  };
  set_ngx_var?: boolean;
}

function simpleSampler(name: string, fraction: number | undefined): Sampler {
  if (name === 'always_on') return new AlwaysOnSampler();
  if (name === 'trace_id_ratio') return new TraceIdRatioBasedSampler(fraction ?? 0);
  return new AlwaysOffSampler();
}

/** APISIX's sampler factory: parent_base follows a sampled/unsampled parent, else its root sampler. */
export function samplerFor(conf: SamplerConf | undefined): Sampler {
  const name = conf?.name ?? 'always_off';
  if (name === 'parent_base') {
    const root = conf?.options?.root;
    return new ParentBasedSampler({ root: root === undefined ? new AlwaysOffSampler() : simpleSampler(root.name, root.options?.fraction) });
  }
  return simpleSampler(name, conf?.options?.fraction);
}

/**
 * trace_id_source x-request-id: startSpan asks the generator synchronously,
 * so the request's id is handed over in this slot just before and taken back
 * right after.
 */
class RequestIdGenerator implements IdGenerator {
  next: string | undefined;
  private readonly random = new RandomIdGenerator();
  generateTraceId(): string {
    const id = this.next;
    this.next = undefined;
    return id ?? this.random.generateTraceId();
  }
  generateSpanId(): string {
    return this.random.generateSpanId();
  }
}

/** A request id usable as a trace id: 32 hex digits, a UUID's dashes removed, not all zero. */
export function traceIdFrom(requestId: string | undefined): string | undefined {
  if (requestId === undefined) return undefined;
  const hex = requestId.replace(/-/g, '').toLowerCase();
  return /^[0-9a-f]{32}$/.test(hex) && !/^0+$/.test(hex) ? hex : undefined;
}

/** What one plugin_metadata version builds: the export pipeline every route's tracer feeds. */
export class Pipeline {
  readonly processor: BatchSpanProcessor;
  readonly resource: Resource;
  readonly ids = new RequestIdGenerator();
  private readonly tracers = new WeakMap<Sampler, Tracer>();

  constructor(readonly meta: OtelMetadata) {
    const c = meta.collector ?? {};
    const address = c.address ?? '127.0.0.1:4318';
    const base = /^https?:\/\//.test(address) ? address : `http://${address}`;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(c.request_headers ?? {})) headers[k] = String(v);
    const exporter = new OTLPTraceExporter({ url: `${base.replace(/\/+$/, '')}/v1/traces`, headers, timeoutMillis: (c.request_timeout ?? 3) * 1000 });
    const b = meta.batch_span_processor ?? {};
    // The SDK's processor exports when a batch is full or on its timer; both APISIX timeouts bound that timer.
    const delayS = Math.min(b.batch_timeout ?? 2, b.inactive_timeout ?? 1);
    this.processor = new BatchSpanProcessor(exporter, {
      maxQueueSize: b.max_queue_size ?? 1024,
      maxExportBatchSize: Math.min(b.max_export_batch_size ?? 16, b.max_queue_size ?? 1024),
      scheduledDelayMillis: Math.max(1, delayS * 1000),
      exportTimeoutMillis: (c.request_timeout ?? 3) * 1000,
    });
    const attrs: Attributes = { hostname: hostname(), 'service.name': 'APISIX' };
    for (const [k, v] of Object.entries(meta.resource ?? {})) attrs[k] = v;
    this.resource = resourceFromAttributes(attrs);
  }

  tracer(sampler: Sampler): Tracer {
    let t = this.tracers.get(sampler);
    if (t === undefined) {
      // A provider per sampler, all feeding the one processor; never shut down one by one (that would close it).
      const provider = new BasicTracerProvider({ resource: this.resource, sampler, spanProcessors: [this.processor], idGenerator: this.ids });
      t = provider.getTracer('opentelemetry-lua');
      this.tracers.set(sampler, t);
    }
    return t;
  }

  async close(): Promise<void> {
    await this.processor.shutdown();
  }
}

const propagator = new W3CTraceContextPropagator();
const requestGetter: TextMapGetter<(name: string) => string | undefined> = {
  keys: () => ['traceparent', 'tracestate'],
  get: (read, key) => read(key),
};
const upstreamSetter: TextMapSetter<HeaderEdits> = {
  set: (headers, key, value) => headers.set(key, value),
};

export function extractParent(read: (name: string) => string | undefined): Context {
  return propagator.extract(ROOT_CONTEXT, read, requestGetter);
}

export function startServerSpan(pipeline: Pipeline, tracer: Tracer, name: string, attributes: Attributes, parent: Context, traceId: string | undefined): Span {
  pipeline.ids.next = traceId;
  const span = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
  pipeline.ids.next = undefined;
  return span;
}

/** Sends the span's context upstream as traceparent (and tracestate), as APISIX's propagator does. */
export function injectInto(span: Span, parent: Context, headers: HeaderEdits): void {
  propagator.inject(trace.setSpan(parent, span), headers, upstreamSetter);
}

export function endServerSpan(span: Span, status: number): void {
  span.setAttribute('http.status_code', status);
  if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: `upstream response status: ${status}` });
  span.end();
}
