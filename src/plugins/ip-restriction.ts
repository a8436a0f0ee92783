/**
 * ip-restriction (APISIX priority 3000): allows or denies clients by socket
 * address in the access phase (apisix/plugins/ip-restriction/init.lua).
 * Only the client address is used (the socket's peer, unless the operator
 * put real-ip in front), never X-Forwarded-For / X-Real-IP directly, so a
 * client cannot talk its way past the list.
 */
import { compileIpMatcher, definePlugin, isValidIpOrCidr, type IpMatcher, type PluginExit, type RequestContext } from '../core/plugin/index.js';
import { MAX_IP_LIST_ENTRIES } from '../schema/limits.js';

export const schema = {
  type: 'object',
  properties: {
    message: { type: 'string', minLength: 1, maxLength: 1024, default: 'Your IP address is not allowed' },
    response_code: { type: 'integer', minimum: 403, maximum: 404, default: 403 },
    // Entries are checked one by one in check(), which names the bad address. maxItems: Portico's bound.
    whitelist: { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: MAX_IP_LIST_ENTRIES },
    blacklist: { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: MAX_IP_LIST_ENTRIES },
  },
  oneOf: [{ required: ['whitelist'] }, { required: ['blacklist'] }],
};

export interface IpRestrictionConf {
  message?: string;
  response_code?: number;
  whitelist?: string[];
  blacklist?: string[];
}

interface IpRestrictionCompiled extends IpRestrictionConf {
  readonly rt: { allow?: IpMatcher; deny?: IpMatcher; exit: PluginExit };
}

function check(conf: IpRestrictionConf): string | undefined {
  for (const cidr of [...(conf.whitelist ?? []), ...(conf.blacklist ?? [])]) {
    if (!isValidIpOrCidr(cidr)) return `invalid ip address: ${cidr}`;
  }
  return undefined;
}

function compile(conf: IpRestrictionConf): IpRestrictionCompiled {
  return {
    ...conf,
    rt: {
      allow: conf.whitelist ? compileIpMatcher(conf.whitelist) : undefined,
      deny: conf.blacklist ? compileIpMatcher(conf.blacklist) : undefined,
      // One frozen exit per conf: rejecting a flood allocates nothing.
      exit: Object.freeze({
        status: conf.response_code ?? 403,
        body: Object.freeze({ message: conf.message ?? 'Your IP address is not allowed' }),
      }),
    },
  };
}

function access(conf: IpRestrictionCompiled, ctx: RequestContext): PluginExit | void {
  const rt = conf.rt;
  const ip = ctx.remoteAddr;
  // As APISIX: the whitelist decides when both are present (schema forbids that anyway).
  let block = rt.deny ? rt.deny(ip) : false;
  if (rt.allow) block = !rt.allow(ip);
  if (block) return rt.exit;
}

export default definePlugin({
  name: 'ip-restriction',
  priority: 3000,
  version: '0.1',
  schema,
  check,
  compile,
  access,
});
