/**
 * examples/browser in a real headless Chromium (Debian's /usr/bin/chromium
 * driven by playwright-core): the page loads portico/pubsub-client's browser
 * build (dist/src, built by the test run's global setup) as plain ES modules,
 * subscribes through the gateway to a partition of librdkafka's mock cluster,
 * and shows what the gateway pushes, including a message produced by kcat
 * after the page opened.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeKafkaBackends } from '../../src/pubsub/index.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startKafkaMock, type KafkaMock } from '../helpers/kafka-mock.js';

const CHROMIUM = '/usr/bin/chromium';
const root = (p: string): string => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const files: Record<string, [string, string]> = {
  '/index.html': [root('examples/browser/index.html'), 'text/html'],
  '/tail.js': [root('examples/browser/tail.js'), 'text/javascript'],
};
/** The page imports ./portico/client/pubsub/browser.js: the build's dist/src, as the example says to serve it. */
function fileFor(path: string): [string, string] | undefined {
  if (path.startsWith('/portico/') && path.endsWith('.js') && !path.includes('..')) return [root(`dist/src/${path.slice('/portico/'.length)}`), 'text/javascript'];
  return files[path];
}

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`browser example test skipped: ${CHROMIUM} is not installed (apt-get install chromium)`);

describe.skipIf(!haveChromium)('examples/browser in headless Chromium', () => {
  let web: Server;
  let webUrl: string;
  let mock: KafkaMock;
  let gw: TestGateway;
  let wsBase: string;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    web = createServer((req, res) => {
      const f = fileFor(new URL(req.url ?? '/', 'http://x').pathname);
      if (!f || !existsSync(f[0])) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': f[1] }).end(readFileSync(f[0]));
    });
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    webUrl = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
    mock = await startKafkaMock();
    await mock.produceWithKcat('demo', ['k0\thello 0', 'k1\thello 1', 'hello 2']);
    gw = await startTestGateway();
    const upstream = { nodes: Object.fromEntries(mock.brokers.map((b) => [b, 1])), type: 'none', scheme: 'kafka' };
    const res = await gw.admin('PUT', '/apisix/admin/routes/kafka', { uri: '/kafka', upstream, plugins: { 'pubsub-acl': { topics: ['demo'] } } });
    if (res.status >= 300) throw new Error(res.text);
    wsBase = `ws://127.0.0.1:${gw.dataPort}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await gw?.close();
    await closeKafkaBackends();
    await mock?.stop();
    web?.closeAllConnections();
    await new Promise((resolve) => web?.close(resolve));
  });

  // Runs in the page; typed loosely because this project compiles without the DOM lib.
  const rows = (): Promise<string[][]> =>
    page.$$eval('#messages tr', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td') as ArrayLike<{ textContent: string | null }>, (td) => td.textContent ?? '')));
  const rowCount = (n: number): Promise<unknown> =>
    page.waitForFunction((want) => (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll('#messages tr').length === want, n, { timeout: 10_000 });

  it('shows the partition from the earliest offset and the messages pushed after the page opened', async () => {
    const q = new URLSearchParams({ ws: `${wsBase}/kafka`, topic: 'demo', partition: '0', from: 'earliest' });
    await page.goto(`${webUrl}/index.html?${q}`);
    await rowCount(3);
    expect(await rows()).toEqual([
      ['0', 'k0', 'hello 0'],
      ['1', 'k1', 'hello 1'],
      ['2', '', 'hello 2'],
    ]);
    expect(await page.textContent('#status')).toBe('following demo/0 from offset 0');
    await mock.produceWithKcat('demo', ['late\tfrom the producer']);
    await rowCount(4);
    expect((await rows())[3]).toEqual(['3', 'late', 'from the producer']);
  });

  it('shows the server error for a topic the route does not allow', async () => {
    // The mock creates every topic it is asked about, so the refusal comes from the route's allow-list.
    const q = new URLSearchParams({ ws: `${wsBase}/kafka`, topic: 'nope', from: 'latest' });
    await page.goto(`${webUrl}/index.html?${q}`);
    await page.waitForSelector('#status.error', { timeout: 10_000 });
    expect(await page.textContent('#status')).toBe(`error: permission denied: topic "nope" is not in this route's allow-list`);
    expect(await rows()).toEqual([]);
  });
});
