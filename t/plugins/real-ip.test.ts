/**
 * real-ip through real sockets: the address from a header, a variable or
 * X-Forwarded-For (last, or with `recursive` the rightmost untrusted one),
 * `trusted_addresses` gating who is believed, bad values ignored, and what
 * comes after: variables, a later plugin (ip-restriction), the upstream's
 * X-Real-IP and X-Forwarded-For.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectRouteConfsRefused, send, startEnv, type Env } from './helpers.js';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => {
  env.up.seen.length = 0;
});

/** proxy-rewrite runs after real-ip and writes what the variables say into a header the upstream records. */
const showVars = { 'proxy-rewrite': { headers: { set: { 'x-seen': '$remote_addr|$remote_port|$realip_remote_addr' } } } };

async function seenBy(path: string, headers: Record<string, string>): Promise<{ seen: string[]; realIp: unknown; xff: unknown }> {
  env.up.seen.length = 0;
  const res = await send(`${env.gw.dataUrl}${path}`, { headers });
  expect(res.status).toBe(200);
  const h = env.up.seen[0]!.headers;
  return { seen: String(h['x-seen']).split('|'), realIp: h['x-real-ip'], xff: h['x-forwarded-for'] };
}

describe('real-ip', () => {
  it('takes the address from a header: variables, X-Real-IP and X-Forwarded-For to the upstream follow it', async () => {
    await env.route('ri1', '/ri1', { 'real-ip': { source: 'http_x_real_ip' }, ...showVars });
    const r = await seenBy('/ri1', { 'x-real-ip': '10.1.2.3' });
    expect(r.seen[0]).toBe('10.1.2.3');
    expect(r.seen[2]).toBe('127.0.0.1');
    expect(r.realIp).toBe('10.1.2.3');
    expect(r.xff).toBe('10.1.2.3');
  });

  it('an address with a port sets remote_port too; IPv6 in brackets; a bad value changes nothing', async () => {
    await env.route('ri2', '/ri2', { 'real-ip': { source: 'http_x_real_ip' }, ...showVars });
    expect((await seenBy('/ri2', { 'x-real-ip': '10.1.2.3:4567' })).seen.slice(0, 2)).toEqual(['10.1.2.3', '4567']);
    expect((await seenBy('/ri2', { 'x-real-ip': '[2001:db8::7]:80' })).seen.slice(0, 2)).toEqual(['2001:db8::7', '80']);
    expect((await seenBy('/ri2', { 'x-real-ip': '2001:db8::8' })).seen[0]).toBe('2001:db8::8');
    for (const bad of ['not-an-ip', '10.1.2.3:0', '10.1.2.3:99999', '300.1.1.1', '[::1']) {
      expect((await seenBy('/ri2', { 'x-real-ip': bad })).seen[0], bad).toBe('127.0.0.1');
    }
  });

  it('later plugins see the real address: ip-restriction blocks by it', async () => {
    await env.route('ri3', '/ri3', { 'real-ip': { source: 'arg_realip' }, 'ip-restriction': { blacklist: ['192.0.2.0/24'] } });
    expect((await send(`${env.gw.dataUrl}/ri3?realip=192.0.2.9`)).status).toBe(403);
    expect((await send(`${env.gw.dataUrl}/ri3?realip=198.51.100.1`)).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/ri3`)).status).toBe(200);
  });

  it('trusted_addresses: a peer outside the list is not believed', async () => {
    await env.route('ri4', '/ri4', { 'real-ip': { source: 'http_x_real_ip', trusted_addresses: ['10.0.0.0/8'] }, ...showVars });
    expect((await seenBy('/ri4', { 'x-real-ip': '10.1.2.3' })).seen[0]).toBe('127.0.0.1');
    await env.route('ri5', '/ri5', { 'real-ip': { source: 'http_x_real_ip', trusted_addresses: ['127.0.0.0/8', '::1'] }, ...showVars });
    expect((await seenBy('/ri5', { 'x-real-ip': '10.1.2.3' })).seen[0]).toBe('10.1.2.3');
  });

  it('X-Forwarded-For: the last address, or with recursive the rightmost untrusted one', async () => {
    await env.route('ri6', '/ri6', { 'real-ip': { source: 'http_x_forwarded_for' }, ...showVars });
    expect((await seenBy('/ri6', { 'x-forwarded-for': '1.1.1.1, 10.0.0.5' })).seen[0]).toBe('10.0.0.5');
    expect((await seenBy('/ri6', { 'x-forwarded-for': '1.1.1.1' })).seen[0]).toBe('1.1.1.1');
    await env.route('ri7', '/ri7', {
      'real-ip': { source: 'http_x_forwarded_for', recursive: true, trusted_addresses: ['127.0.0.1', '10.0.0.0/8'] },
      ...showVars,
    });
    expect((await seenBy('/ri7', { 'x-forwarded-for': '1.1.1.1, 2.2.2.2, 10.0.0.5' })).seen[0]).toBe('2.2.2.2');
    // Every hop trusted: the leftmost address is the client.
    expect((await seenBy('/ri7', { 'x-forwarded-for': '10.0.0.1, 10.0.0.2' })).seen[0]).toBe('10.0.0.1');
    // Without recursive the same chain gives its last address.
    await env.route('ri8', '/ri8', { 'real-ip': { source: 'http_x_forwarded_for', trusted_addresses: ['127.0.0.1', '10.0.0.0/8'] }, ...showVars });
    expect((await seenBy('/ri8', { 'x-forwarded-for': '1.1.1.1, 2.2.2.2, 10.0.0.5' })).seen[0]).toBe('10.0.0.5');
  });

  it('refuses bad confs', async () => {
    await expectRouteConfsRefused(env, 'real-ip', [
      [{}, /source/],
      [{ source: '' }, /source/],
      [{ source: 'http_x_real_ip', trusted_addresses: ['10.0.0.0/33'] }, /invalid ip address: 10\.0\.0\.0\/33/],
      [{ source: 'http_x_real_ip', trusted_addresses: [] }, /trusted_addresses/],
      [{ source: 'http_x_real_ip', recursive: 'yes' }, /recursive/],
    ]);
  });
});
