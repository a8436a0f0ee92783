/**
 * Upstreams compiled into runtimes (balancer, pools, health checks), and the
 * retirement of runtimes a new snapshot no longer uses: closed after a grace
 * period, so a request that matched just before the swap can still use them.
 */
import type { Logger } from 'pino';
import type { UpstreamConf } from '../model.js';
import { getSchemeHandler, prepareSchemeHandler } from '../pubsub/scheme-handler.js';
import { createUpstreamRuntime } from '../upstream/index.js';
import type { UpstreamRuntime } from '../upstream/types.js';
import { decryptPrivateKey, mapUpstreamClientKey } from '../secrets/encryption.js';
import type { ChainEntry } from '../plugin/pipeline.js';
import type { CompiledUpstream, Snapshot } from './types.js';

/** Long enough for a request that matched just before a swap to pick its node. */
const RETIRE_GRACE_MS = 10_000;

export function compileUpstream(stored: UpstreamConf & { id?: string }, key: string, revKey: string, keyring: readonly string[]): CompiledUpstream {
  // The Admin API stores tls.client_key encrypted with the keyring (as APISIX); the pool needs it in PEM.
  const conf = keyring.length > 0 ? mapUpstreamClientKey(stored, (v) => decryptPrivateKey(v, keyring)) : stored;
  const takenOver = getSchemeHandler(conf.scheme) !== undefined;
  if (takenOver) prepareSchemeHandler(conf.scheme);
  return { revKey, conf, runtime: takenOver ? undefined : createUpstreamRuntime(conf, key) };
}

/** Every runtime a snapshot holds: named upstreams, routes' inline ones and those plugin confs built. */
export function runtimesOf(snapshot: Snapshot): Set<UpstreamRuntime> {
  const live = new Set<UpstreamRuntime>();
  for (const u of snapshot.upstreams.values()) if (u.runtime) live.add(u.runtime);
  for (const r of snapshot.routes.values()) {
    if (r.upstream?.runtime) live.add(r.upstream.runtime);
    addPluginRuntimes(live, r.chain.entries);
  }
  addPluginRuntimes(live, snapshot.globalChain.entries);
  for (const c of snapshot.consumers.values()) addPluginRuntimes(live, c.entries);
  for (const g of snapshot.consumerGroups.values()) addPluginRuntimes(live, g.entries);
  return live;
}

function addPluginRuntimes(live: Set<UpstreamRuntime>, entries: readonly ChainEntry[]): void {
  for (const e of entries) {
    if (e.upstreams === undefined) continue;
    // Only PluginConfCompiler builds a PluginUpstream, and it builds a CompiledUpstream.
    for (const u of e.upstreams) {
      const runtime = (u as CompiledUpstream).runtime;
      if (runtime !== undefined) live.add(runtime);
    }
  }
}

/** Runtimes retired by a swap, closed once in-flight requests had time to finish with them. */
export class RetiringUpstreams {
  private readonly retiring = new Set<UpstreamRuntime>();

  constructor(private readonly logger: Logger) {}

  /** Schedules the close of every runtime `prev` held that `next` does not. */
  retire(prev: Snapshot, next: Snapshot): void {
    const live = runtimesOf(next);
    const dead = [...runtimesOf(prev)].filter((r) => !live.has(r));
    if (dead.length === 0) return;
    for (const r of dead) this.retiring.add(r);
    const timer = setTimeout(() => {
      for (const r of dead) {
        this.retiring.delete(r);
        r.close().catch((err: unknown) => this.logger.warn({ err }, 'config: closing a retired upstream failed'));
      }
    }, RETIRE_GRACE_MS);
    timer.unref();
  }

  /** The runtimes still waiting out their grace period (closed at once on shutdown). */
  drain(): UpstreamRuntime[] {
    const all = [...this.retiring];
    this.retiring.clear();
    return all;
  }
}
