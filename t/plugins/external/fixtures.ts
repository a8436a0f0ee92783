/**
 * External plugin sources written into a temporary plugin directory, as an
 * operator's plugin_dirs would hold them: a TypeScript plugin with a relative
 * import and types (no build step), a plain JavaScript one, and a plugin that
 * throws or rejects on request.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** `tag` ends up in the x-ts-hello header, so a test can tell which code served a request. */
export function tsPlugin(tag: string): string {
  return `import { definePlugin, type RequestContext } from 'portico/plugin';
import { label } from './lib/label.js';

interface Conf { greeting: string }

export default definePlugin<Conf>({
  name: 'ts-hello',
  priority: 1500,
  schema: {
    type: 'object',
    properties: { greeting: { type: 'string', minLength: 1 } },
    required: ['greeting'],
  },
  // x-delay: ms to wait in access, to keep a request in flight across a reload.
  async access(_conf: Conf, ctx: RequestContext): Promise<void> {
    const delay = Number(ctx.requestHeader('x-delay') ?? 0);
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
  },
  header_filter(conf: Conf, ctx: RequestContext): void {
    ctx.response.headers.set('x-ts-hello', label(conf.greeting, ${JSON.stringify(tag)}));
    ctx.response.headers.set('x-served-by', String(process.pid));
  },
});
`;
}

export const TS_HELPER = `export function label(greeting: string, tag: string): string {
  return greeting + '/' + tag;
}
`;

export const JS_PLUGIN = `export default {
  name: 'js-block',
  priority: 2600,
  schema: {
    type: 'object',
    properties: { header: { type: 'string', default: 'x-block' }, status: { type: 'integer', minimum: 200, maximum: 599 } },
    required: ['status'],
  },
  access(conf, ctx) {
    if (ctx.requestHeader(conf.header) !== undefined) return { status: conf.status, body: { blocked: true } };
  },
};
`;

export const THROWING_PLUGIN = `import { definePlugin } from 'portico/plugin';

export default definePlugin({
  name: 'throws',
  priority: 1400,
  schema: { type: 'object' },
  async access(_conf, ctx) {
    if (ctx.requestHeader('x-throw') !== undefined) throw new Error('boom from a plugin');
    if (ctx.requestHeader('x-reject') !== undefined) await Promise.reject(new Error('rejected by a plugin'));
  },
});
`;

export interface PluginDir {
  readonly dir: string;
  write(file: string, source: string): void;
  remove(file: string): void;
  close(): void;
}

/** A temporary plugin directory whose package.json makes .ts and .js files ES modules. */
export function pluginDir(files: Record<string, string> = {}): PluginDir {
  const dir = mkdtempSync(join(tmpdir(), 'portico-plugins-'));
  const write = (file: string, source: string): void => {
    mkdirSync(join(dir, file, '..'), { recursive: true });
    writeFileSync(join(dir, file), source);
  };
  write('package.json', '{ "type": "module" }\n');
  for (const [file, source] of Object.entries(files)) write(file, source);
  return { dir, write, remove: (file) => rmSync(join(dir, file), { force: true }), close: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface FreshResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request on a new connection, so the kernel may hand it to any worker. */
export function fresh(url: string, headers: Record<string, string> = {}): Promise<FreshResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: { connection: 'close', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}
