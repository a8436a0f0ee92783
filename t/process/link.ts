/**
 * Two ends of the IPC channel joined in memory, for the paths real processes
 * cannot be made to take on demand: a primary that stops answering while its
 * worker lives, answers that come late, a send that throws.
 */
import { Channel, type Envelope, type Peer } from '../../src/core/process/channel.js';

export interface LinkOptions {
  /** The primary receives nothing (a stuck or silent primary). */
  silent?: boolean;
  /** Each message takes this long to arrive. */
  delayMs?: number;
}

export interface Link {
  /** The worker's end, and the primary as its peer. */
  worker: Channel;
  primary: Peer;
  /** The primary's end, and the worker as its peer. */
  primarySide: Channel;
  workerPeer: Peer;
  /** Every message the worker sent. */
  sent: Envelope[];
}

export function link(opts: LinkOptions = {}): Link {
  const worker = new Channel();
  const primarySide = new Channel();
  const sent: Envelope[] = [];
  const deliver = (fn: () => void) => (opts.delayMs ? setTimeout(fn, opts.delayMs) : queueMicrotask(fn));
  const workerPeer: Peer = { name: 'worker 1', send: (msg) => deliver(() => worker.receive(msg, primary)) };
  const primary: Peer = {
    name: 'the primary process',
    send(msg) {
      sent.push(msg);
      if (!opts.silent) deliver(() => primarySide.receive(msg, workerPeer));
    },
  };
  worker.addPeer(primary);
  primarySide.addPeer(workerPeer);
  return { worker, primary, primarySide, workerPeer, sent };
}
