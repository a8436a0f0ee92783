/**
 * The data plane as a node:cluster of worker_processes workers (one when it is
 * 1, unless the caller serves in-process; see startDataPlane).
 *
 * How it works:
 * - The primary (the process that called startDataPlane) owns the config
 *   store: it lists /apisix/ once and watches it, keeping the raw objects
 *   (the same store mirror the snapshot keeps).
 * - Everything the primary and its workers say to each other goes over the
 *   one IPC channel (channel.ts): the process protocol (protocol.ts) and the
 *   plugins' shared state, each in its own namespace. Each worker is a peer
 *   of the gateway's channel from the moment it listens until it exits.
 * - Each worker is forked with the config and that listing (over IPC), builds
 *   its own compiled snapshot from it, and then applies every watch batch the
 *   primary forwards, so all workers converge on the same revision. Workers
 *   never touch the store (with the embedded store they could not: SQLite is
 *   opened by one process).
 * - Scheduling is SCHED_NONE: the primary creates the listening socket once
 *   and shares the handle; every worker accepts on it and the kernel spreads
 *   connections, with no hop through the primary. Port 0 resolves once, so
 *   all workers serve the same ephemeral port.
 * - A worker that dies is forked again with the current state. close() asks
 *   every worker to drain and exit, and kills the ones that do not.
 * - startWorkers resolves once every worker reported listening: its own
 *   listener accepts, with the config it was sent compiled.
 * - From .ts sources (vitest, tsx) workers run with `--import tsx`.
 */
import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../log/logger.js';
import type { DataPlane, DataPlaneOptions } from '../dataplane/types.js';
import { workerCount } from './worker-count.js';
import type { PorticoConfig } from '../config/types.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import { StoreMirror } from '../snapshot/mirror.js';
import { KEY_PREFIX } from '../model.js';
import type { Channel, Peer } from './channel.js';
import { ListenError } from './listen-error.js';
import { adoptPreforked, listenTo, setupWorkerCluster } from './prefork.js';
import { RELOAD_PLUGINS, TO_PRIMARY, TO_WORKER, type PrimaryMessage } from './protocol.js';
import { forgetWorkers, recordWorkers, retireOrphans } from './orphans.js';

const EXIT_GRACE_MS = 7_000;

/** One forked worker, as the primary tracks it. */
interface Forked {
  readonly worker: Worker;
  readonly peer: Peer;
  listening: boolean;
  /** Latest store revision it reported applying (it starts from the listing it was sent). */
  applied: number | undefined;
  /** Settles its fork() when it listens or fails. */
  started(err: Error | undefined, address?: AddressInfo): void;
}

export async function startWorkers(opts: DataPlaneOptions, channel: Channel): Promise<DataPlane> {
  const n = workerCount(opts.config);
  const logger = opts.logger ?? createLogger('info');
  // Workers a dead predecessor left serving hold the port: they drain and go first (orphans.ts).
  const dataDir = opts.config.deployment.embedded.data_dir;
  await retireOrphans(dataDir, logger);
  const record = (): void => recordWorkers(dataDir, [...workers.values()].flatMap((w) => (w.worker.process.pid === undefined ? [] : [w.worker.process.pid])));
  setupWorkerCluster(opts.config);

  // The primary's raw view, so a respawned worker starts from the present.
  const mirror = new StoreMirror();
  const listing = await opts.store.list(KEY_PREFIX + '/');
  mirror.reset(listing.items, listing.revision);
  const workers = new Map<Peer, Forked>();
  let closing = false;
  let firstAddress: AddressInfo | undefined;
  let listedAt = mirror.revision;
  let tlsAddresses: AddressInfo[] = [];

  // node:cluster shares one listening socket per (address, port asked for) among the workers and closes it with
  // the last of them. A replacement asking for port 0 while another worker lives joins that socket; asking for
  // the resolved port instead would bind a second socket to it and fail (EADDRINUSE). Only when no worker is
  // left (the socket gone) does it ask for the resolved ports, so it serves where clients were told.
  const workerConfig = (): PorticoConfig => {
    const { node_listen, ssl } = opts.config.apisix;
    const othersListen = [...workers.values()].some((w) => w.listening && !w.worker.isDead());
    if (firstAddress === undefined || othersListen) return opts.config;
    const resolved = (port: number, at: AddressInfo | undefined) => (port === 0 && at !== undefined ? at.port : port);
    return {
      ...opts.config,
      apisix: {
        ...opts.config.apisix,
        node_listen: { ...node_listen, port: resolved(node_listen.port, firstAddress) },
        ssl: { ...ssl, listen: ssl.listen.map((l, i) => ({ ...l, port: resolved(l.port, tlsAddresses[i]) })) },
      },
    };
  };
  const initMessage = (): PrimaryMessage => ({
    type: 'init',
    config: workerConfig(),
    items: mirror.items(),
    revision: (listedAt = mirror.revision),
    logLevel: logger.level,
  });

  const stopListening = channel.on(TO_PRIMARY, (msg, peer) => {
    const w = workers.get(peer);
    if (w === undefined) return;
    if (msg.type === 'ready') channel.notify(peer, TO_WORKER, initMessage());
    else if (msg.type === 'listening') {
      w.listening = true;
      w.applied ??= listedAt;
      record();
      // A replacement that found no worker left binds afresh; should the resolved port be gone, say where it went.
      if (firstAddress !== undefined && msg.address.port !== firstAddress.port) {
        logger.error({ port: msg.address.port, expected: firstAddress.port }, 'a restarted data-plane worker listens on another port');
      }
      tlsAddresses = msg.tlsAddresses;
      // From now on it answers plugins' requests (a worker still starting has no handlers yet).
      channel.addPeer(peer);
      w.started(undefined, msg.address);
    } else if (msg.type === 'applied') w.applied = msg.revision;
    // A bind failure reads as the primary's own would: the key and the address, not a worker's story.
    else if (msg.type === 'failed') w.started(msg.listen ? new ListenError(msg.listen) : new Error(`data-plane worker failed to start: ${msg.error}`));
  });

  const fork = (): Promise<AddressInfo> =>
    new Promise((resolve, reject) => {
      // A worker main.ts forked early has loaded meanwhile (prefork.ts); its 'ready' may already be waiting.
      const adopted = adoptPreforked();
      const worker = adopted?.worker ?? cluster.fork();
      const peer: Peer = { name: `worker ${worker.id}`, send: (msg) => void worker.send(msg) };
      const w: Forked = { worker, peer, listening: false, applied: undefined, started: (err, address) => (err ? reject(err) : resolve(address!)) };
      workers.set(peer, w);
      // A send to a worker that just died (its channel not yet seen closed) fails with EPIPE, emitted here;
      // unheard, it would take the primary down with it. The 'exit' below replaces the worker.
      worker.on('error', (err: Error) => logger.warn({ err }, 'data-plane worker channel error'));
      const onMessage = (msg: unknown): void => void channel.receive(msg, peer);
      if (adopted === undefined) worker.on('message', onMessage);
      else listenTo(adopted, onMessage);
      worker.once('exit', (code, signal) => {
        workers.delete(peer);
        channel.removePeer(peer);
        if (!w.listening) reject(new Error(`data-plane worker exited before listening (code ${code}, signal ${signal})`));
        else if (!closing) {
          logger.error({ code, signal }, 'data-plane worker died; starting a new one');
          fork().catch((err: unknown) => logger.error({ err }, 'could not restart a data-plane worker'));
        }
      });
    });

  const watcher = opts.store.watch(KEY_PREFIX + '/', listing.revision + 1, (events, rev) => {
    mirror.apply(events, rev);
    const msg: PrimaryMessage = { type: 'events', events, revision: rev };
    for (const w of workers.values()) if (w.worker.isConnected()) channel.notify(w.peer, TO_WORKER, msg);
  });

  const close = async (): Promise<void> => {
    closing = true;
    watcher.close();
    await Promise.all(
      [...workers.values()].map(
        ({ worker, peer }) =>
          new Promise<void>((resolve) => {
            if (worker.isDead()) return resolve();
            const timer = setTimeout(() => worker.process.kill('SIGKILL'), EXIT_GRACE_MS);
            worker.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            if (worker.isConnected()) channel.notify(peer, TO_WORKER, { type: 'close' });
            else worker.process.kill('SIGTERM');
          }),
      ),
    );
    stopListening();
    forgetWorkers(dataDir);
  };

  try {
    const addresses = await Promise.all(Array.from({ length: n }, () => fork()));
    firstAddress = addresses[0];
  } catch (err) {
    await close();
    throw err;
  }

  return {
    address: firstAddress!,
    tlsAddresses,
    close,
    snapshot(): Snapshot {
      throw new Error('the snapshot lives in the worker processes');
    },
    async pluginsChanged(set) {
      // Respawned workers start from the config they are sent: the new set.
      opts.config.plugins = set.plugins;
      opts.config.plugin_dirs = set.plugin_dirs;
      const answers = await channel.requestAll(RELOAD_PLUGINS, set);
      const failed = answers.find((a) => a.error !== undefined);
      if (failed !== undefined) throw new Error(failed.error);
    },
    appliedRevision() {
      let min = Infinity;
      for (const w of workers.values()) {
        if (w.applied === undefined) return 0;
        min = Math.min(min, w.applied);
      }
      return min;
    },
    // A worker counts once it listens, which it does after compiling the config it was forked with.
    notReady: () => {
      const reported = [...workers.values()].filter((w) => w.applied !== undefined).length;
      return reported === n ? undefined : `worker count: ${n} but status report count: ${reported}`;
    },
  };
}
