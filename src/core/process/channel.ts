/**
 * The one IPC channel between a node's primary and its data-plane workers.
 * Every user (the process protocol itself, each plugin's shared state) has
 * its own namespace and declares the types of what it sends once, in a
 * token both sides import: a `Topic` for one-way messages, a `Service` for a
 * request and its answer. Requests carry ids and are settled exactly once:
 * by the answer, by an error answer, by the answer time running out, by the
 * peer going away or by close(); an answer arriving after that is dropped.
 *
 * The same class serves both ends: a worker has one peer (the primary), the
 * primary one peer per worker (workers.ts attaches them). Messages of other
 * protocols on the same node:cluster channel are not ours and are ignored.
 */

/** One-way messages of one namespace, of type M. */
export interface Topic<M> {
  readonly ns: string;
  /** Carries M for the type checker only; never set. */
  readonly message?: M;
}

/** A request of type Req answered with Res, within `answerMs`. */
export interface Service<Req, Res> {
  readonly ns: string;
  readonly answerMs: number;
  /** Carry the types for the type checker only; never set. */
  readonly request?: Req;
  readonly answer?: Res;
}

export function topic<M>(ns: string): Topic<M> {
  return { ns };
}

export function service<Req, Res>(ns: string, answerMs: number): Service<Req, Res> {
  return { ns, answerMs };
}

/** What crosses the process boundary. `ipc` marks the message as this channel's. */
export type Envelope =
  | { readonly ipc: 'notice'; readonly ns: string; readonly body: unknown }
  | { readonly ipc: 'request'; readonly ns: string; readonly id: number; readonly body: unknown }
  | { readonly ipc: 'answer'; readonly ns: string; readonly id: number; readonly body: unknown }
  | { readonly ipc: 'error'; readonly ns: string; readonly id: number; readonly error: string };

/** The process at the other end of a link. */
export interface Peer {
  /** For messages: `the primary process`, `worker 3`. */
  readonly name: string;
  /** Throws (or emits an error on its transport) when the link is gone. */
  send(msg: Envelope): void;
}

/** Why a request failed without an answer: no answer in time, peer gone, channel closed, unknown namespace. */
export class ChannelError extends Error {
  constructor(
    message: string,
    /** The peer was gone before it could answer (exited, or was never there). */
    readonly peerGone = false,
  ) {
    super(message);
    this.name = 'ChannelError';
  }
}

interface Pending {
  readonly peer: Peer;
  readonly ns: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

type Handler = (body: unknown, from: Peer) => unknown;
type Listener = (body: unknown, from: Peer) => void;

function isEnvelope(msg: unknown): msg is Envelope {
  if (typeof msg !== 'object' || msg === null) return false;
  const m = msg as { ipc?: unknown; ns?: unknown };
  return typeof m.ns === 'string' && (m.ipc === 'notice' || m.ipc === 'request' || m.ipc === 'answer' || m.ipc === 'error');
}

export interface ChannelOptions {
  /** Told about a handler that threw or a notice nobody listens to (the gateway keeps serving). */
  onProblem?: (problem: string, err?: unknown) => void;
}

export class Channel {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<string, Handler>();
  private readonly listeners = new Map<string, Listener>();
  private readonly peerSet = new Set<Peer>();
  private closed = false;

  constructor(private readonly opts: ChannelOptions = {}) {}

  /** The peers attached now (on the primary: its live workers). */
  peers(): ReadonlySet<Peer> {
    return this.peerSet;
  }

  addPeer(peer: Peer): void {
    this.peerSet.add(peer);
  }

  /** The peer is gone: what it still owed fails with a `peerGone` ChannelError. */
  removePeer(peer: Peer): void {
    this.peerSet.delete(peer);
    for (const [id, p] of this.pending) {
      if (p.peer !== peer) continue;
      this.settle(id, p);
      p.reject(new ChannelError(`ipc ${p.ns}: ${peer.name} went away before answering`, true));
    }
  }

  /** Listens to a topic's messages; one listener per topic. Returns its removal. */
  on<M>(t: Topic<M>, listener: (msg: M, from: Peer) => void): () => void {
    return this.claim(this.listeners, t.ns, listener as Listener);
  }

  /** Answers a service's requests; one handler per service. Returns its removal. */
  serve<Req, Res>(s: Service<Req, Res>, handler: (req: Req, from: Peer) => Res | Promise<Res>): () => void {
    return this.claim(this.handlers, s.ns, handler as Handler);
  }

  notify<M>(peer: Peer, t: Topic<M>, msg: M): void {
    peer.send({ ipc: 'notice', ns: t.ns, body: msg });
  }

  /**
   * Asks `peer` and resolves with its answer; rejects with a ChannelError
   * when it does not answer within the service's answer time, or with the
   * peer's error message, or at once with what a failing send threw.
   */
  request<Req, Res>(peer: Peer, s: Service<Req, Res>, req: Req): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      if (this.closed) return reject(new ChannelError(`ipc ${s.ns}: closed`));
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ChannelError(`ipc ${s.ns}: no answer from ${peer.name} in ${s.answerMs} ms`));
      }, s.answerMs);
      this.pending.set(id, { peer, ns: s.ns, resolve: resolve as (value: unknown) => void, reject, timer });
      try {
        peer.send({ ipc: 'request', ns: s.ns, id, body: req });
      } catch (err) {
        this.pending.delete(id);
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /**
   * Asks every attached peer; resolves with the answers of those that
   * answered, leaving out peers that went away meanwhile (what they held
   * went with them). Any other failure rejects the whole.
   */
  async requestAll<Req, Res>(s: Service<Req, Res>, req: Req): Promise<Res[]> {
    const answers = await Promise.all(
      [...this.peerSet].map((peer) =>
        this.request(peer, s, req).then(
          (res): { res: Res } | undefined => ({ res }),
          (err: unknown) => {
            if (err instanceof ChannelError && err.peerGone) return undefined;
            throw err;
          },
        ),
      ),
    );
    const out: Res[] = [];
    for (const a of answers) if (a !== undefined) out.push(a.res);
    return out;
  }

  /** Feeds one message from `from` into the channel; false when it is not this channel's. */
  receive(msg: unknown, from: Peer): boolean {
    if (!isEnvelope(msg)) return false;
    switch (msg.ipc) {
      case 'answer':
      case 'error': {
        const p = this.pending.get(msg.id);
        // Late (timed out, or settled by close/peer loss) or not for this peer: dropped.
        if (p === undefined || p.peer !== from || p.ns !== msg.ns) return true;
        this.settle(msg.id, p);
        if (msg.ipc === 'answer') p.resolve(msg.body);
        else p.reject(new Error(msg.error));
        return true;
      }
      case 'request':
        this.answer(msg.ns, msg.id, msg.body, from);
        return true;
      case 'notice': {
        const listener = this.listeners.get(msg.ns);
        if (listener === undefined) this.opts.onProblem?.(`ipc ${msg.ns}: a message nobody listens to, dropped`);
        else {
          try {
            listener(msg.body, from);
          } catch (err) {
            this.opts.onProblem?.(`ipc ${msg.ns}: listener failed`, err);
          }
        }
        return true;
      }
    }
  }

  /** Settles every request in flight with a `closed` error and refuses new ones. */
  close(): void {
    this.closed = true;
    for (const [id, p] of this.pending) {
      this.settle(id, p);
      p.reject(new ChannelError(`ipc ${p.ns}: closed`));
    }
  }

  private settle(id: number, p: Pending): void {
    this.pending.delete(id);
    clearTimeout(p.timer);
  }

  private claim<F>(map: Map<string, F>, ns: string, fn: F): () => void {
    if (map.has(ns)) throw new Error(`ipc ${ns}: already taken`);
    map.set(ns, fn);
    return () => {
      if (map.get(ns) === fn) map.delete(ns);
    };
  }

  private answer(ns: string, id: number, body: unknown, from: Peer): void {
    const handler = this.handlers.get(ns);
    if (handler === undefined) return this.reply(from, { ipc: 'error', ns, id, error: `ipc ${ns}: unknown namespace` });
    let res: unknown;
    try {
      res = handler(body, from);
    } catch (err) {
      return this.reply(from, { ipc: 'error', ns, id, error: errorText(err) });
    }
    // Synchronous handlers (shared counters) answer in the same tick, without a promise.
    if (res instanceof Promise) {
      res.then(
        (value: unknown) => this.reply(from, { ipc: 'answer', ns, id, body: value }),
        (err: unknown) => this.reply(from, { ipc: 'error', ns, id, error: errorText(err) }),
      );
    } else this.reply(from, { ipc: 'answer', ns, id, body: res });
  }

  private reply(to: Peer, msg: Envelope): void {
    try {
      to.send(msg);
    } catch (err) {
      // The asker is gone; its own side fails the request.
      this.opts.onProblem?.(`ipc ${msg.ns}: cannot answer ${to.name}`, err);
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
