/**
 * `vars` with lua-resty-expr's `!` in every position (issue 17: a 5xx was once
 * seen on an Admin write of such a route and never reproduced). Each shape is
 * written through the Admin API and, when accepted, requested through the data
 * plane: every answer is 201 or a 400 naming the expression, never a 5xx, and
 * an accepted rule matches as lua-resty-expr (lib/resty/expr/v1.lua) evaluates
 * it. Where lua-resty-expr itself would raise a Lua error (an operator that is
 * not a string: `string.lower` on a table or boolean, which APISIX answers with
 * a 500), Portico answers 400 with the operator named.
 */
import { describe, expect, test } from 'vitest';
import { useGatewayWithEcho } from '../helpers/gateway.js';

interface Case {
  name: string;
  vars: unknown;
  /** The error after `failed to validate the 'vars' expression: `. */
  error?: string;
  /** Query strings that match / do not match. */
  match?: string[];
  miss?: string[];
}

/** ['!AND', ['!OR', ... leaf ...], leaf] nested `depth` levels, alternating. */
function deep(depth: number): unknown {
  let rule: unknown = ['arg_x', '!', '==', '1'];
  for (let i = 0; i < depth; i++) rule = [i % 2 ? '!AND' : '!OR', rule, ['arg_y', '!', '==', String(i)]];
  return [rule];
}

const cases: Case[] = [
  { name: 'negated leaf', vars: [['arg_x', '!', '==', '1']], match: ['?x=2', ''], miss: ['?x=1'] },
  { name: 'negated in with an empty list', vars: [['arg_x', '!', 'in', []]], match: ['?x=1', ''] },
  { name: 'negated == against a number (tonumber on the variable)', vars: [['arg_x', '!', '==', 1]], match: ['?x=a', '?x=2'], miss: ['?x=1', '?x=1.0'] },
  { name: 'negated > against a non-number (never true, so always matches)', vars: [['arg_x', '!', '>', 'abc']], match: ['?x=5'] },
  { name: 'negated has on a string variable', vars: [['arg_x', '!', 'has', 'a']], match: ['?x=a'] },
  { name: 'negated == null (no value)', vars: [['arg_x', '!', '==', null]], match: ['?x=1'], miss: [''] },
  { name: 'negated regex', vars: [['arg_x', '!', '~~', '^[0-9]+$']], match: ['?x=a'], miss: ['?x=12'] },
  { name: 'upper-case operator after !', vars: [['arg_x', '!', 'IN', ['1', '2']]], match: ['?x=3'], miss: ['?x=2'] },
  { name: '! as the value', vars: [['arg_x', '==', '!']], match: ['?x=!'], miss: ['?x=1'] },
  { name: '[var, "!"] is the == shorthand', vars: [['arg_x', '!']], match: ['?x=!'], miss: ['?x=1'] },
  { name: '!OR at the top', vars: ['!OR', ['arg_x', '==', '1'], ['arg_y', '==', '1']], match: ['?x=2&y=2'], miss: ['?x=1', '?y=1'] },
  { name: '!AND nested in a list', vars: [['!AND', ['arg_x', '!', '==', '1'], ['arg_y', '==', '1']]], match: ['?x=1&y=1', '?y=2'], miss: ['?x=2&y=1'] },
  { name: 'AND of !OR and a negated leaf', vars: ['AND', ['!OR', ['arg_x', '==', '1'], ['arg_x', '==', '2']], ['arg_y', '!', '==', '1']], match: ['?x=3'], miss: ['?x=3&y=1', '?x=1'] },
  { name: 'lower-case !or', vars: ['!or', ['arg_x', '==', '1'], ['arg_y', '==', '1']], match: [''], miss: ['?x=1'] },
  { name: '! and logic nested 40 levels', vars: deep(40), match: ['?x=1'] },
  { name: '! first in a leaf', vars: [['!', 'arg_x', '==', '1']], error: "bad 'not' expression" },
  { name: '! as a logic operator at the top', vars: ['!', ['arg_x', '==', '1'], ['arg_y', '==', '1']], error: 'rule should be wrapped inside brackets' },
  { name: '! as a logic operator nested', vars: [['!', ['arg_x', '==', '1'], ['arg_y', '==', '1']]], error: `invalid operator '["arg_x","==","1"]'` },
  { name: '! twice', vars: [['arg_x', '!', '!', '1']], error: "invalid operator '!'" },
  { name: '! in the operator place of a 3-element leaf', vars: [['arg_x', '!', '==']], error: "invalid operator '!'" },
  { name: 'negated unknown operator', vars: [['arg_x', '!', 'like', '1']], error: "invalid operator 'like'" },
  { name: 'negated leaf with a boolean operator', vars: [['arg_x', '!', true, '1']], error: "invalid operator 'true'" },
  { name: 'negated leaf with a null operator', vars: [['arg_x', '!', null, '1']], error: 'invalid expression' },
  { name: 'negated leaf with an object operator', vars: [['arg_x', '!', { op: '==' }, '1']], error: `invalid operator '{"op":"=="}'` },
  { name: 'negated leaf without a variable', vars: [[null, '!', '==', '1']], error: 'invalid expression' },
  { name: 'negated regex that does not compile', vars: [['arg_x', '!', '~~', '(']], error: "invalid regex '(': Invalid regular expression: /(/: Unterminated group" },
  { name: 'negated regex against a number', vars: [['arg_x', '!', '~*', 1]], error: "invalid regex '1'" },
  { name: 'negated ipmatch with an empty list', vars: [['remote_addr', '!', 'ipmatch', []]], error: 'invalid ip address' },
  { name: '!OR with one operand', vars: ['!OR', ['arg_x', '==', '1']], error: 'rule too short' },
  { name: '!AND of empty rules', vars: ['!AND', [], []], error: 'rule too short' },
  { name: 'an empty rule inside the list', vars: [[]], error: 'rule too short' },
  { name: 'a negated leaf that is not wrapped', vars: ['arg_x', '!', '==', '1'], error: 'rule should be wrapped inside brackets' },
  { name: 'a number where a rule goes', vars: ['!OR', 1, 2], error: 'invalid expression' },
];

describe("vars with '!' through the Admin API and the data plane", () => {
  const env = useGatewayWithEcho();

  test.each(cases.map((c, i) => [c.name, c, i] as const))('%s', async (_name, c, i) => {
    const uri = `/neg/${i}`;
    const res = await env.gw.admin('PUT', `/apisix/admin/routes/neg${i}`, { uri, vars: c.vars, upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${env.up.port}`]: 1 } } });
    if (c.error !== undefined) {
      expect(res.status, res.text).toBe(400);
      expect(res.body.error_msg).toBe(`failed to validate the 'vars' expression: ${c.error}`);
      expect((await env.gw.admin('GET', `/apisix/admin/routes/neg${i}`)).status).toBe(404);
      return;
    }
    expect(res.status, res.text).toBe(201);
    for (const q of c.match ?? []) expect((await fetch(`${env.gw.dataUrl}${uri}${q}`)).status, `${uri}${q}`).toBe(200);
    for (const q of c.miss ?? []) expect((await fetch(`${env.gw.dataUrl}${uri}${q}`)).status, `${uri}${q}`).toBe(404);
  });
});

describe('variables named after Object.prototype members', () => {
  const env = useGatewayWithEcho();

  // A route's path parameters are a plain object: once matched, `uri_param_toString` read its prototype's function,
  // so a plugin's rule on it (here fault-injection's: abort when it has a value) held on every request.
  test.each(['toString', 'constructor', '__proto__', 'hasOwnProperty'])('uri_param_%s is no value unless the path has it', async (name) => {
    const id = name.replace(/_/g, '');
    const res = await env.gw.admin('PUT', `/apisix/admin/routes/proto-${id}`, {
      uri: `/proto/${id}/:id`,
      plugins: { 'fault-injection': { abort: { http_status: 403, vars: [[[`uri_param_${name}`, '!', '==', null]]] } } },
      upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${env.up.port}`]: 1 } },
    });
    expect(res.status, res.text).toBe(201);
    expect((await fetch(`${env.gw.dataUrl}/proto/${id}/7`)).status).toBe(200);
  });
  test('uri_param_id is the path parameter', async () => {
    const res = await env.gw.admin('PUT', '/apisix/admin/routes/proto-id', {
      uri: '/proto-id/:id',
      plugins: { 'fault-injection': { abort: { http_status: 403, vars: [[['uri_param_id', '==', '7']]] } } },
      upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${env.up.port}`]: 1 } },
    });
    expect(res.status, res.text).toBe(201);
    expect((await fetch(`${env.gw.dataUrl}/proto-id/7`)).status).toBe(403);
    expect((await fetch(`${env.gw.dataUrl}/proto-id/8`)).status).toBe(200);
  });
});
