/**
 * pubsub-acl (Portico; APISIX has no such plugin): what the pub/sub clients of
 * a `scheme: kafka` or `scheme: redis` route may do. `permission` grants read
 * (list offset, fetch, subscribe), write (produce) or both; `topics` is an
 * allow-list of topic patterns (`*` matches any run of characters);
 * `topic_param` takes the topic from a path parameter (`/kafka/:topic`),
 * checked against the allow-list before the WebSocket is accepted. The
 * pub/sub session enforces the rest per command, before it reaches the broker.
 * Without this plugin a pub/sub route may read any topic and write none.
 */
import { definePlugin, PUBSUB_ACCESS, type PluginExit, type PubSubAccess, type RequestContext } from '../core/plugin/index.js';

export const schema = {
  type: 'object',
  properties: {
    permission: { type: 'string', enum: ['read', 'write', 'read_write'], default: 'read' },
    topics: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 256 }, minItems: 1, uniqueItems: true },
    topic_param: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
  },
  additionalProperties: false,
};

export interface PubSubAclConf {
  permission?: 'read' | 'write' | 'read_write';
  topics?: string[];
  topic_param?: string;
}

interface PubSubAclCompiled extends PubSubAclConf {
  readonly rt: PubSubAccess;
}

/** `orders.*` → /^orders\..*$/: only `*` is special. */
export function topicPattern(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

function compile(conf: PubSubAclConf): PubSubAclCompiled {
  const permission = conf.permission ?? 'read';
  const patterns = conf.topics?.map(topicPattern);
  const allows = patterns ? (topic: string): boolean => patterns.some((re) => re.test(topic)) : (): boolean => true;
  return { ...conf, rt: Object.freeze({ read: permission !== 'write', write: permission !== 'read', allows }) };
}

function refuse(message: string): PluginExit {
  return { status: 403, body: { error_msg: message } };
}

function access(conf: PubSubAclCompiled, ctx: RequestContext): PluginExit | void {
  const rt = conf.rt;
  const param = conf.topic_param;
  if (param === undefined) {
    ctx.setData(PUBSUB_ACCESS, rt);
    return;
  }
  const topic = ctx.var.get(`uri_param_${param}`);
  if (topic === undefined || topic === '') return refuse(`permission denied: the route's path has no parameter "${param}" to take the topic from`);
  if (!rt.allows(topic)) return refuse(`permission denied: topic "${topic}" is not in this route's allow-list`);
  ctx.setData(PUBSUB_ACCESS, { read: rt.read, write: rt.write, allows: rt.allows, topic });
}

export default definePlugin({
  name: 'pubsub-acl',
  priority: 507,
  version: '0.1',
  schema,
  compile,
  access,
});
