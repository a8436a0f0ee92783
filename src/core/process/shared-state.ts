/**
 * Per-node state for plugins, over the IPC channel (channel.ts). APISIX gives
 * its plugins lua_shared_dict zones that every nginx worker of a node sees;
 * Node processes share no memory, so a plugin says where its state lives:
 *
 * - `owned`: one copy for the node (limit-count's counters). With several
 *   workers the primary holds it and a worker's call() is one round trip;
 *   with one serving process the state stays in it and call() is a plain
 *   synchronous call, with no IPC.
 * - `gathered`: one copy per serving process (prometheus's metrics), which
 *   the primary collects from every worker on demand.
 *
 * Each plugin gets its own namespace (`plugin:<name>:<state>`), so plugins
 * cannot answer or read each other's messages.
 */
import { type Channel, type Peer, service } from './channel.js';

type MaybePromise<T> = T | Promise<T>;

/** State one process keeps for the whole node. */
export interface OwnedState<Req, Res> {
  /**
   * Runs the handler where the state lives: here (synchronously) or in the
   * primary. A primary that does not answer within the answer time, or a
   * lost channel, rejects.
   */
  call(req: Req): MaybePromise<Res>;
  /** Stops answering (in the owner); calls in flight are settled when the channel closes. */
  close(): void;
}

/** State every serving process keeps, collected by the primary. */
export interface GatheredState<Res> {
  /**
   * In the primary: every worker's answer (none when requests are served in
   * this process). A worker that exits meanwhile is left out; one that does
   * not answer within the answer time, or answers with an error, rejects.
   */
  collect(): Promise<Res[]>;
  /** Stops answering (in a worker). */
  close(): void;
}

/** Per-node shared state, as a plugin's init() receives it. */
export interface NodeShared {
  /** `name` is unique within the plugin; `handler` must be synchronous and is the same code in every process. */
  owned<Req, Res>(name: string, handler: (req: Req) => Res, answerMs: number): OwnedState<Req, Res>;
  gathered<Res>(name: string, produce: () => MaybePromise<Res>, answerMs: number): GatheredState<Res>;
}

export interface SharedStateOptions {
  channel: Channel;
  /** `main`: the primary (or the only process, served in-process); `worker`: a data-plane worker. */
  role: 'main' | 'worker';
  /** How many processes serve this node's requests. */
  workers: number;
  /** In a worker: the primary, its channel's peer. */
  primary?: Peer;
}

/** What a composition root hands initPlugins: one NodeShared per plugin, in the plugin's namespace. */
export interface SharedStateHub {
  forPlugin(plugin: string): NodeShared;
}

export function sharedStateHub(opts: SharedStateOptions): SharedStateHub {
  const { channel, role, workers, primary } = opts;
  return {
    forPlugin(plugin: string): NodeShared {
      const ns = (name: string): string => `plugin:${plugin}:${name}`;
      return {
        owned<Req, Res>(name: string, handler: (req: Req) => Res, answerMs: number): OwnedState<Req, Res> {
          const svc = service<Req, Res>(ns(name), answerMs);
          if (role === 'worker' && workers > 1) {
            if (primary === undefined) throw new Error(`${svc.ns}: a worker needs its primary`);
            return { call: (req) => channel.request(primary, svc, req), close: () => undefined };
          }
          const stop = role === 'main' && workers > 1 ? channel.serve(svc, handler) : () => undefined;
          return { call: handler, close: stop };
        },
        gathered<Res>(name: string, produce: () => MaybePromise<Res>, answerMs: number): GatheredState<Res> {
          const svc = service<null, Res>(ns(name), answerMs);
          if (role === 'worker') return { collect: async () => [await produce()], close: channel.serve(svc, produce) };
          return { collect: () => channel.requestAll(svc, null), close: () => undefined };
        },
      };
    },
  };
}
