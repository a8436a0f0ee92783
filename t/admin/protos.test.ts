/**
 * Protos (/apisix/admin/protos): stored for grpc-transcode as APISIX stores
 * them, through a real gateway. `content` is checked as APISIX's
 * compile_proto does: .proto text, else a base64 FileDescriptorSet.
 */
import { describe, expect, it } from 'vitest';
import { useGatewayWithEcho } from '../helpers/gateway.js';

const PROTO = `syntax = "proto3";
package helloworld;
service Greeter { rpc SayHello (HelloRequest) returns (HelloReply) {} }
message HelloRequest { string name = 1; }
message HelloReply { string message = 1; }`;

/** `message A { int32 x = 1; }` in package p, as protoc --descriptor_set_out writes it, base64. */
const DESCRIPTOR_SET = 'CigKB3AucHJvdG8SAXAiEgoBQRINCgF4GAEgASgFQgIQAGIGcHJvdG8z';

describe('protos', () => {
  const env = useGatewayWithEcho();

  it('CRUD with APISIX rules: PUT, POST, GET, list, DELETE; no PATCH', async () => {
    const put = await env.gw.admin('PUT', '/apisix/admin/protos/1', { content: PROTO, desc: 'greeter' });
    expect(put.status).toBe(201);
    expect(put.body.key).toBe('/apisix/protos/1');
    expect(put.body.value).toMatchObject({ id: '1', content: PROTO, desc: 'greeter' });
    expect(typeof put.body.value.create_time).toBe('number');

    const post = await env.gw.admin('POST', '/apisix/admin/protos', { content: DESCRIPTOR_SET });
    expect(post.status).toBe(201);
    const postedKey = post.body.key as string;
    expect(postedKey.startsWith('/apisix/protos/')).toBe(true);

    expect((await env.gw.admin('GET', '/apisix/admin/protos/1')).body.value.content).toBe(PROTO);
    const list = await env.gw.admin('GET', '/apisix/admin/protos');
    expect(list.body.total).toBe(2);

    const patch = await env.gw.admin('PATCH', '/apisix/admin/protos/1', { desc: 'x' });
    expect(patch.status).toBe(405);
    expect(patch.body).toEqual({ error_msg: 'not supported `PATCH` method for proto' });

    expect((await env.gw.admin('DELETE', '/apisix/admin/protos/1')).status).toBe(200);
    expect((await env.gw.admin('DELETE', `/apisix/admin${postedKey.slice('/apisix'.length)}`)).status).toBe(200);
    expect((await env.gw.admin('GET', '/apisix/admin/protos')).body.total).toBe(0);
  });

  it('refuses bad content with the reason, and stores nothing', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{}, /^invalid configuration: property "content" is required$/],
      [{ content: '' }, /^invalid configuration: property "content" validation failed: string too short/],
      [{ content: PROTO, extra: 1 }, /^invalid configuration: additional properties forbidden, found extra$/],
      [{ content: 'syntax = "proto3"; message A { int32 x = 1 }' }, /^invalid content: illegal token '}'/],
      // Valid base64, but not a descriptor set.
      [{ content: 'aGVsbG8gd29ybGQ=' }, /^invalid content: not a \.proto definition .* nor a FileDescriptorSet/],
    ];
    for (const [body, message] of cases) {
      const res = await env.gw.admin('PUT', '/apisix/admin/protos/bad', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error_msg).toMatch(message);
    }
    expect((await env.gw.admin('GET', '/apisix/admin/protos/bad')).status).toBe(404);
  });

  it('a stored proto leaves the data plane serving', async () => {
    await env.gw.admin('PUT', '/apisix/admin/protos/live', { content: PROTO });
    await env.gw.admin('PUT', '/apisix/admin/routes/p', { uri: '/p', upstream: { nodes: { [`127.0.0.1:${env.up.port}`]: 1 } } });
    const deadline = Date.now() + 5000;
    let status = 0;
    while (Date.now() < deadline && status !== 200) {
      status = (await fetch(`http://127.0.0.1:${env.gw.dataPort}/p`)).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe(200);
  });
});
