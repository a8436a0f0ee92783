/**
 * request-validation as APISIX's t/plugin/request-validation.t: the conf's
 * schema (and the schemas inside it) checked by the Admin API, then through
 * real sockets headers and JSON / form bodies validated, rejected_code and
 * rejected_msg, the body size limit, and the duplicate-key refusal of
 * CVE-2022-25757 with the checked JSON being what the upstream receives.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectRouteConfsRefused, send, startEnv, type Env } from './helpers.js';

let env: Env;
const bodySchema = {
  type: 'object',
  required: ['required_payload'],
  properties: {
    required_payload: { type: 'string' },
    boolean_payload: { type: 'boolean' },
    number_payload: { type: 'number', minimum: 1, maximum: 10 },
  },
};

beforeAll(async () => {
  env = await startEnv();
  await env.route('body', '/body', { 'request-validation': { body_schema: bodySchema } });
  await env.route('hdr', '/hdr', {
    'request-validation': { header_schema: { type: 'object', required: ['X-Token'], properties: { 'x-token': { type: 'string', minLength: 3 } } } },
  });
  await env.route('custom', '/custom', { 'request-validation': { body_schema: bodySchema, rejected_code: 422, rejected_msg: 'customize reject message' } });
  await env.route('small', '/small', { 'request-validation': { body_schema: { type: 'object' }, max_req_body_size: 16 } });
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => {
  env.up.seen.length = 0;
});

const post = (path: string, body: string, type = 'application/json') =>
  send(`${env.gw.dataUrl}${path}`, { method: 'POST', headers: { 'content-type': type }, body });

describe('request-validation: Admin API', () => {
  it('is listed and refuses confs APISIX refuses', async () => {
    const list = await env.gw.admin('GET', '/apisix/admin/plugins/list');
    expect(list.body).toContain('request-validation');
    await expectRouteConfsRefused(env, 'request-validation', [
      [{}, /object matches none of the required: \["header_schema"\] or \["body_schema"\]/],
      [{ body_schema: 'x' }, /property "body_schema" validation failed: wrong type: expected object, got string/],
      [{ body_schema: {}, rejected_code: 600 }, /property "rejected_code" validation failed: expected 600 to be at most 599/],
      [{ body_schema: {}, rejected_msg: '' }, /property "rejected_msg" validation failed/],
      [{ body_schema: {}, max_req_body_size: 0 }, /property "max_req_body_size" validation failed/],
      [{ body_schema: { type: 'no-such-type' } }, /invalid body_schema/],
      [{ header_schema: { properties: 5 } }, /invalid header_schema/],
    ]);
  });
});

describe('request-validation: data plane', () => {
  it('passes a valid JSON body and answers 400 with the validator message for an invalid one', async () => {
    const ok = await post('/body', '{"required_payload":"a","number_payload":5}');
    expect(ok.status).toBe(200);
    expect(JSON.parse(env.up.seen[0]!.body)).toEqual({ required_payload: 'a', number_payload: 5 });
    const missing = await post('/body', '{"boolean_payload":true}');
    expect(missing.status).toBe(400);
    expect(missing.body).toBe('property "required_payload" is required');
    const range = await post('/body', '{"required_payload":"a","number_payload":50}');
    expect(range.status).toBe(400);
    expect(range.body).toMatch(/property "number_payload" validation failed: expected 50 to be at most 10/);
    const notJson = await post('/body', '{bad json');
    expect(notJson.status).toBe(400);
    expect(env.up.seen).toHaveLength(1);
  });

  it('refuses a JSON body with a repeated key, however the key is spelled (CVE-2022-25757)', async () => {
    for (const body of [
      '{"required_payload":"a","required_payload":5}',
      '{"required_payload":"a","required_\\u0070ayload":5}',
      '{"required_payload":"a","nested":{"x":1,"y":{"z":[{"k":1,"k":2}]}}}',
    ]) {
      const res = await post('/body', body);
      expect(res.status, body).toBe(400);
      expect(res.body).toMatch(/duplicate key "(required_payload|k)"/);
    }
    // The same names in different objects, or as values, are no repeat.
    const fine = await post('/body', '{"required_payload":"required_payload","a":{"required_payload":1},"b":[{"a":1},{"a":2}],"s":"{\\"x\\":1,\\"x\\":2}"}');
    expect(fine.status).toBe(200);
    expect(env.up.seen).toHaveLength(1);
  });

  it('sends the upstream the JSON it checked, re-encoded with a true Content-Length, even from a chunked request', async () => {
    const body = '{ "required_payload" : "a" ,\n "boolean_payload": true }';
    const res = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${env.gw.dataUrl}/body`, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, agent: false }, (r) => {
        r.resume();
        r.on('end', () => resolve(r.statusCode ?? 0));
      });
      req.on('error', reject);
      req.write(body.slice(0, 10));
      setTimeout(() => req.end(body.slice(10)), 50);
    });
    expect(res).toBe(200);
    const seen = env.up.seen[0]!;
    expect(seen.body).toBe('{"required_payload":"a","boolean_payload":true}');
    expect(seen.headers['content-length']).toBe(String(seen.body.length));
    expect(seen.headers['transfer-encoding']).toBeUndefined();
  });

  it('validates a form body as ngx.decode_args reads it, and forwards it as sent', async () => {
    const ok = await post('/body', 'required_payload=a%20b&x', 'application/x-www-form-urlencoded');
    expect(ok.status).toBe(200);
    expect(env.up.seen[0]!.body).toBe('required_payload=a%20b&x');
    const bad = await post('/body', 'required_payload=a&required_payload=b', 'application/x-www-form-urlencoded');
    expect(bad.status).toBe(400);
    expect(bad.body).toMatch(/property "required_payload" validation failed: wrong type: expected string, got table/);
  });

  it('checks headers whatever their case in the schema', async () => {
    const ok = await send(`${env.gw.dataUrl}/hdr`, { headers: { 'X-Token': 'abcd' } });
    expect(ok.status).toBe(200);
    const missing = await send(`${env.gw.dataUrl}/hdr`);
    expect(missing.status).toBe(400);
    expect(missing.body).toBe('property "X-Token" is required');
    const short = await send(`${env.gw.dataUrl}/hdr`, { headers: { 'x-token': 'ab' } });
    expect(short.status).toBe(400);
    expect(short.body).toMatch(/property "x-token" validation failed/);
  });

  it('answers rejected_code with rejected_msg, and refuses bodies over max_req_body_size or missing', async () => {
    const custom = await post('/custom', '{}');
    expect(custom.status).toBe(422);
    expect(custom.body).toBe('customize reject message');
    const dup = await post('/custom', '{"a":1,"a":1}');
    expect(dup.status).toBe(422);
    const big = await post('/small', JSON.stringify({ padding: 'x'.repeat(64) }));
    expect(big.status).toBe(400);
    const fits = await post('/small', '{"a":1}');
    expect(fits.status).toBe(200);
    const none = await send(`${env.gw.dataUrl}/body`, { method: 'POST' });
    expect(none.status).toBe(400);
    // The gateway still serves after all of that.
    expect((await post('/body', '{"required_payload":"z"}')).status).toBe(200);
  });
});
