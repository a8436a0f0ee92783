/**
 * examples/browser in a real headless Chromium (Debian's /usr/bin/chromium
 * driven by playwright-core): the page loads protobufjs and the .proto, tails
 * a canned Kafka partition over a real pub/sub WebSocket, and shows the rows.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeKafka, startSchemeServer, type FakeKafka, type SchemeTestServer } from '../helpers/pubsub-client.js';

const CHROMIUM = '/usr/bin/chromium';
const root = (p: string): string => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const files: Record<string, [string, string]> = {
  '/index.html': [root('examples/browser/index.html'), 'text/html'],
  '/tail.js': [root('examples/browser/tail.js'), 'text/javascript'],
  '/protobuf.min.js': [root('node_modules/protobufjs/dist/protobuf.min.js'), 'text/javascript'],
  '/long.js': [root('node_modules/long/umd/index.js'), 'text/javascript'],
  '/pubsub.proto': [root('proto/pubsub.proto'), 'text/plain'],
};

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`browser example test skipped: ${CHROMIUM} is not installed (apt-get install chromium)`);

describe.skipIf(!haveChromium)('examples/browser in headless Chromium', () => {
  let web: Server;
  let webUrl: string;
  let kafka: FakeKafka;
  let pubsub: SchemeTestServer;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    web = createServer((req, res) => {
      const f = files[new URL(req.url ?? '/', 'http://x').pathname];
      if (!f) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': f[1] }).end(readFileSync(f[0]));
    });
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    webUrl = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
    kafka = fakeKafka({
      demo: [{ key: 'k0', value: 'hello 0' }, { key: 'k1', value: 'hello 1' }, { value: 'hello 2' }],
    });
    pubsub = await startSchemeServer(kafka.handler);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await pubsub?.close();
    web?.closeAllConnections();
    await new Promise((resolve) => web?.close(resolve));
  });

  // Runs in the page; typed loosely because this project compiles without the DOM lib.
  const rows = (): Promise<string[][]> =>
    page.$$eval('#messages tr', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td') as ArrayLike<{ textContent: string | null }>, (td) => td.textContent ?? '')));
  const rowCount = (n: number): Promise<unknown> =>
    page.waitForFunction((want) => (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll('#messages tr').length === want, n, { timeout: 10_000 });

  it('shows the partition from the earliest offset and follows new messages', async () => {
    const q = new URLSearchParams({ ws: `${pubsub.wsUrl}/kafka`, topic: 'demo', partition: '0', from: 'earliest', interval: '50' });
    await page.goto(`${webUrl}/index.html?${q}`);
    await rowCount(3);
    expect(await rows()).toEqual([
      ['0', 'k0', 'hello 0'],
      ['1', 'k1', 'hello 1'],
      ['2', '', 'hello 2'],
    ]);
    expect(await page.textContent('#status')).toBe('following demo/0 from offset 0');
    kafka.append('demo', { key: 'late', value: 'from the producer' });
    await rowCount(4);
    expect((await rows())[3]).toEqual(['3', 'late', 'from the producer']);
  });

  it('shows the server error for an unknown topic', async () => {
    const q = new URLSearchParams({ ws: `${pubsub.wsUrl}/kafka`, topic: 'nope', from: 'latest' });
    await page.goto(`${webUrl}/index.html?${q}`);
    await page.waitForSelector('#status.error', { timeout: 10_000 });
    expect(await page.textContent('#status')).toBe('error: failed to list offset, topic: nope, partition: 0, err: not found topic');
    expect(await rows()).toEqual([]);
  });
});
