/**
 * Balancer lookup by upstream `type`. APISIX accepts any string there and
 * loads `apisix.balancer.<type>`; here unknown types (e.g. `none`, used on
 * Kafka routes) fall back to roundrobin so an HTTP route still gets served.
 */
import type { UpstreamConf } from '../../model.js';
import type { BalancerFactory } from '../types.js';
import { createChash } from './chash.js';
import { createEwma } from './ewma.js';
import { createLeastConn } from './least-conn.js';
import { createRoundRobin } from './roundrobin.js';

const FACTORIES: Readonly<Record<string, BalancerFactory>> = {
  roundrobin: (nodes) => createRoundRobin(nodes),
  chash: (nodes, conf) => createChash(nodes, conf),
  ewma: (nodes) => createEwma(nodes),
  least_conn: (nodes) => createLeastConn(nodes),
};

export function balancerFactory(conf: UpstreamConf): BalancerFactory {
  return FACTORIES[conf.type ?? 'roundrobin'] ?? FACTORIES.roundrobin!;
}

export { createChash, createEwma, createLeastConn, createRoundRobin };
