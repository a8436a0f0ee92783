/**
 * key-auth (APISIX priority 2500, type auth): identifies the consumer by an
 * API key read from a header, else from the query string
 * (apisix/plugins/key-auth.lua). The key → consumer table is built in
 * `consumers()` whenever consumers change, so a request costs one Map lookup.
 */
import { definePlugin, queryArg, withoutArg, type ConsumerConf, type PluginExit, type RequestContext } from '../core/plugin/index.js';
import {
  anonymousConsumerSchema,
  attachAnonymous,
  attachConsumer,
  exit401 as authExit401,
  indexConsumers,
  realmSchema,
  type ConsumerIndex,
} from './lib/auth-common.js';

export const schema = {
  type: 'object',
  properties: {
    header: { type: 'string', default: 'apikey' },
    query: { type: 'string', default: 'apikey' },
    realm: realmSchema('key'),
    hide_credentials: { type: 'boolean', default: false },
    anonymous_consumer: anonymousConsumerSchema,
  },
};

export const consumer_schema = {
  type: 'object',
  properties: { key: { type: 'string' } },
  required: ['key'],
};

export interface KeyAuthConf {
  header?: string;
  query?: string;
  realm?: string;
  hide_credentials?: boolean;
  anonymous_consumer?: string;
}

interface KeyAuthCompiled extends KeyAuthConf {
  readonly rt: { header: string; missing: PluginExit; invalid: PluginExit; anonymousFailed: PluginExit };
}

// Replaced wholesale on each consumer change; requests in flight keep the tables they read.
let index: ConsumerIndex = { byKey: new Map(), byName: new Map() };

function consumers(list: readonly ConsumerConf[]): void {
  index = indexConsumers(list, 'key-auth', 'key');
}

const exit401 = (realm: string, message: string): PluginExit => authExit401('apikey', realm, message);

function compile(conf: KeyAuthConf): KeyAuthCompiled {
  const realm = conf.realm ?? 'key';
  return {
    ...conf,
    rt: {
      header: (conf.header ?? 'apikey').toLowerCase(),
      missing: exit401(realm, 'Missing API key in request'),
      invalid: exit401(realm, 'Invalid API key in request'),
      anonymousFailed: exit401(realm, 'Invalid user authorization'),
    },
  };
}

function rewrite(conf: KeyAuthCompiled, ctx: RequestContext): PluginExit | void {
  const rt = conf.rt;
  const up = ctx.upstreamRequest;
  const queryName = conf.query ?? 'apikey';
  let fromHeader = true;
  let key = up.headers.get(rt.header);
  if (key === undefined) {
    key = queryArg(up.query, queryName);
    fromHeader = false;
  }

  const consumer = key === undefined ? undefined : index.byKey.get(key);
  if (consumer !== undefined) {
    if (conf.hide_credentials) {
      if (fromHeader) up.headers.remove(rt.header);
      else up.query = withoutArg(up.query, queryName);
    }
    attachConsumer(ctx, consumer);
    return;
  }

  if (conf.anonymous_consumer === undefined) return key === undefined ? rt.missing : rt.invalid;

  // Falling back to the anonymous consumer must not forward a wrong credential upstream.
  if (conf.hide_credentials) {
    up.headers.remove(rt.header);
    if (queryArg(up.query, queryName) !== undefined) up.query = withoutArg(up.query, queryName);
  }
  return attachAnonymous(ctx, index, conf.anonymous_consumer, rt.anonymousFailed);
}

export default definePlugin({
  name: 'key-auth',
  priority: 2500,
  version: '0.1',
  type: 'auth',
  schema,
  consumer_schema,
  encrypt_fields: ['key'],
  compile,
  consumers,
  rewrite,
});
