/**
 * The data plane as a node:cluster of worker_processes workers (one when it is
 * 1, unless the caller serves in-process; see startDataPlane).
 *
 * How it works:
 * - The primary (the process that called startDataPlane) owns the config
 *   store: it lists /apisix/ once and watches it, keeping the raw objects.
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
 * - From .ts sources (vitest, tsx) workers run with `--import tsx`.
 */
import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import type { DataPlane, DataPlaneOptions } from '../dataplane/types.js';
import { workerCount } from './worker-count.js';
import type { PorticoConfig } from '../config/types.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { StoreItem, WatchEvent } from '../store/types.js';
import { KEY_PREFIX } from '../model.js';

export type PrimaryMessage =
  | { type: 'init'; config: PorticoConfig; items: StoreItem[]; revision: number; logLevel: string }
  | { type: 'events'; events: WatchEvent[]; revision: number }
  | { type: 'close' };

export type WorkerMessage =
  /** The worker's message listener is attached (cluster's 'online' comes before its modules loaded). */
  | { type: 'ready' }
  | { type: 'listening'; address: AddressInfo; tlsAddresses: AddressInfo[] }
  | { type: 'applied'; revision: number; version: number }
  | { type: 'failed'; error: string };

const EXIT_GRACE_MS = 7_000;

export async function startWorkers(opts: DataPlaneOptions): Promise<DataPlane> {
  const n = workerCount(opts.config);
  const logger = opts.logger ?? pino({ level: 'info' });
  const isTs = import.meta.url.endsWith('.ts');
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({
    exec: fileURLToPath(new URL(`../../worker.${isTs ? 'ts' : 'js'}`, import.meta.url)),
    execArgv: isTs ? ['--import', 'tsx'] : [],
    serialization: 'advanced',
  });

  // The primary's raw view, so a respawned worker starts from the present.
  const items = new Map<string, StoreItem>();
  const listing = await opts.store.list(KEY_PREFIX + '/');
  for (const item of listing.items) items.set(item.key, item);
  let revision = listing.revision;
  const workers = new Set<Worker>();
  let closing = false;
  let firstAddress: AddressInfo | undefined;
  let tlsAddresses: AddressInfo[] = [];
  // Workers start from the listing: that revision counts as applied.
  /** Latest revision each worker reported applying (tests and readiness). */
  const applied = new Map<Worker, number>();

  let listedAt = revision;
  // node:cluster closes a shared listening handle with its last worker, so a worker forked after the only
  // one died would bind port 0 afresh and serve on a port nobody was told: later workers get the resolved one.
  const workerConfig = (): PorticoConfig =>
    firstAddress === undefined || opts.config.apisix.node_listen.port !== 0
      ? opts.config
      : { ...opts.config, apisix: { ...opts.config.apisix, node_listen: { ...opts.config.apisix.node_listen, port: firstAddress.port } } };
  const initMessage = (): PrimaryMessage => ({
    type: 'init',
    config: workerConfig(),
    items: [...items.values()],
    revision: (listedAt = revision),
    logLevel: logger.level,
  });

  const fork = (): Promise<AddressInfo> =>
    new Promise((resolve, reject) => {
      const worker = cluster.fork();
      workers.add(worker);
      let listening = false;
      // A send to a worker that just died (its channel not yet seen closed) fails with EPIPE, emitted here;
      // unheard, it would take the primary down with it. The 'exit' below replaces the worker.
      worker.on('error', (err: Error) => logger.warn({ err }, 'data-plane worker channel error'));
      worker.on('message', (msg: WorkerMessage) => {
        if (msg.type === 'ready') worker.send(initMessage());
        else if (msg.type === 'listening') {
          listening = true;
          if (!applied.has(worker)) applied.set(worker, listedAt);
          tlsAddresses = msg.tlsAddresses;
          resolve(msg.address);
        } else if (msg.type === 'applied') applied.set(worker, msg.revision);
        else if (msg.type === 'failed') reject(new Error(`data-plane worker failed to start: ${msg.error}`));
      });
      worker.once('exit', (code, signal) => {
        workers.delete(worker);
        applied.delete(worker);
        if (!listening) reject(new Error(`data-plane worker exited before listening (code ${code}, signal ${signal})`));
        else if (!closing) {
          logger.error({ code, signal }, 'data-plane worker died; starting a new one');
          fork().catch((err: unknown) => logger.error({ err }, 'could not restart a data-plane worker'));
        }
      });
    });

  const watcher = opts.store.watch(KEY_PREFIX + '/', listing.revision + 1, (events, rev) => {
    for (const ev of events) {
      if (ev.type === 'put') items.set(ev.key, { key: ev.key, value: ev.value, createRevision: ev.createRevision, modRevision: ev.modRevision });
      else if (ev.type === 'delete') items.delete(ev.key);
      else {
        items.clear();
        for (const item of ev.items) items.set(item.key, item);
      }
    }
    if (rev > revision) revision = rev;
    const msg: PrimaryMessage = { type: 'events', events, revision: rev };
    for (const w of workers) if (w.isConnected()) w.send(msg);
  });

  const close = async (): Promise<void> => {
    closing = true;
    watcher.close();
    await Promise.all(
      [...workers].map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.isDead()) return resolve();
            const timer = setTimeout(() => w.process.kill('SIGKILL'), EXIT_GRACE_MS);
            w.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            if (w.isConnected()) w.send({ type: 'close' } satisfies PrimaryMessage);
            else w.process.kill('SIGTERM');
          }),
      ),
    );
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
    appliedRevision: () => (applied.size < workers.size ? 0 : Math.min(...applied.values())),
    // A worker counts once it listens, which it does after compiling the config it was forked with.
    notReady: () => (applied.size === n ? undefined : `worker count: ${n} but status report count: ${applied.size}`),
  };
}
