/**
 * The config store for a cluster of gateway nodes: etcd v3, laid out as APISIX
 * lays it (`<prefix>/routes/1`), so every node watching the prefix converges on
 * each change. Revisions are etcd's own. Writes are transactions that read the
 * item back in the same revision, so create/modify revisions need no extra trip.
 *
 * Bounded answers: every call gets what is left of the caller's deadline
 * (deadline.ts), at most `timeout`. A write whose answer does not come may
 * still be applied later (an etcd that was frozen reads the request when it
 * resumes), so each write carries a fence: its transaction also requires that
 * a key of its own, `<prefix>_fences/<uuid>`, does not exist. When the answer
 * does not come, the fence is written (with the item's current state read in
 * the same transaction): from then on the write can never apply, and the read
 * says whether it did before. So a failed write is either known applied (the
 * write succeeds), known not applied and never to be (StoreUnavailableError),
 * or, when the fence cannot be written in time either, unknown
 * (StoreOutcomeUnknownError, naming the key). Fences live an hour on a lease.
 */
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { Etcd3, type IKeyValue, type IOperation, type IOptions } from 'etcd3';
import { KEY_PREFIX } from '../model.js';
import {
  CompareFailedError,
  StoreOutcomeUnknownError,
  StoreUnavailableError,
  type ConfigStore,
  type DeleteOptions,
  type ListResult,
  type PutOptions,
  type StoreItem,
  type WatchEvent,
  type WatchListener,
  type Watcher,
} from './types.js';
import { storeDeadline } from './deadline.js';

/** Kept back from a write's deadline to fence it when it goes unanswered. */
const FENCE_SHARE = 0.3;
const FENCE_TTL_S = 3600;
/** The request never left: nothing can apply later. No connection; grpc-js's deadline passing before a connection was picked. */
const NOT_SENT = /No connection established|ECONNREFUSED|waiting for (name resolution|LB pick|connection)/;
/**
 * etcd3's default fault handling retries failed calls (writes included) and trips a circuit breaker per
 * host. A retried write hides whether the first attempt was sent, which the fence's answer depends on, and
 * the caller's deadline already bounds each call, so every call is tried once, as it comes.
 */
type FaultPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
const NO_EVENTS = () => ({ dispose: () => undefined });
const ONCE: FaultPolicy = {
  _altReturn: undefined as never,
  onSuccess: NO_EVENTS,
  onFailure: NO_EVENTS,
  execute: async (fn, signal = new AbortController().signal) => fn({ signal }),
};

/** Below this much time left a write is not sent: it could only go unanswered. */
const MIN_WRITE_MS = 50;

export interface EtcdStoreOptions {
  hosts: string[];
  /** etcd key prefix standing for `/apisix` (APISIX's `deployment.etcd.prefix`). */
  prefix: string;
  /** Seconds per request. */
  timeout: number;
}

export class EtcdStore implements ConfigStore {
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly timeoutMs: number;

  constructor(opts: EtcdStoreOptions) {
    const timeoutMs = (this.timeoutMs = opts.timeout * 1000);
    this.prefix = opts.prefix.replace(/\/$/, '');
    this.client = new Etcd3({
      hosts: opts.hosts,
      dialTimeout: timeoutMs,
      faultHandling: { global: ONCE, host: () => ONCE },
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: this.deadline() }),
    });
  }

  /** Now + timeout, or the caller's deadline when that comes first. */
  private deadline(): number {
    const own = Date.now() + this.timeoutMs;
    const callers = storeDeadline();
    return callers === undefined ? own : Math.min(own, callers);
  }

  private toEtcd(key: string): string {
    return key.startsWith(KEY_PREFIX) ? this.prefix + key.slice(KEY_PREFIX.length) : this.prefix + key;
  }

  private fromEtcd(key: string): string {
    return KEY_PREFIX + key.slice(this.prefix.length);
  }

  private item(kv: IKeyValue): StoreItem {
    return {
      key: this.fromEtcd(kv.key.toString()),
      value: JSON.parse(kv.value.toString()) as unknown,
      createRevision: Number(kv.create_revision),
      modRevision: Number(kv.mod_revision),
    };
  }

  async get(key: string): Promise<StoreItem | undefined> {
    const res = await this.call(() => this.client.get(this.toEtcd(key)).exec());
    const kv = res.kvs[0];
    return kv ? this.item(kv) : undefined;
  }

  async list(prefix: string): Promise<ListResult> {
    const res = await this.call(() => this.client.getAll().prefix(this.toEtcd(prefix)).sort('Key', 'Ascend').exec());
    return { items: res.kvs.map((kv) => this.item(kv)), revision: Number(res.header.revision) };
  }

  async put(key: string, value: unknown, opts: PutOptions = {}): Promise<StoreItem> {
    const k = this.toEtcd(key);
    const json = JSON.stringify(value);
    const res = await this.txn(key, opts.expectModRevision, (kv) => kv !== undefined && isDeepStrictEqual(JSON.parse(kv.value.toString()), JSON.parse(json)), this.client.put(k).value(json), this.client.get(k));
    const kv = 'current' in res ? res.current : res.responses[1]?.response_range?.kvs?.[0];
    if (!kv) throw new StoreUnavailableError(`etcd did not return ${key} after writing it`);
    return this.item(kv);
  }

  async delete(key: string, opts: DeleteOptions = {}): Promise<boolean> {
    const k = this.toEtcd(key);
    const res = await this.txn(key, opts.expectModRevision, (kv) => kv === undefined, this.client.delete().key(k));
    // Learned through the fence: it was deleted by this write (an absent key is not answered 404 then).
    if ('current' in res) return true;
    return Number(res.responses[0]?.response_delete_range?.deleted ?? 0) > 0;
  }

  watch(prefix: string, fromRevision: number, listener: WatchListener): Watcher {
    let closed = false;
    let cancel: () => void = () => undefined;
    const etcdPrefix = this.toEtcd(prefix);

    const follow = (from: number): void => {
      this.client
        .watch()
        .prefix(etcdPrefix)
        .startRevision(String(from))
        .create()
        .then((w) => {
          if (closed) return void w.cancel();
          cancel = () => void w.cancel();
          w.on('data', (res) => {
            const events: WatchEvent[] = res.events.map((e) =>
              e.type === 'Put'
                ? { type: 'put', ...this.item(e.kv) }
                : { type: 'delete', key: this.fromEtcd(e.kv.key.toString()), modRevision: Number(e.kv.mod_revision) },
            );
            if (events.length > 0) listener(events, Number(res.header.revision));
          });
          // etcd3 reconnects after a dropped stream and resumes from the last
          // revision by itself; an 'error' means the watch is gone for good
          // (e.g. the revisions it needed were compacted): resynchronise.
          w.on('error', () => {
            if (closed) return;
            cancel = () => undefined;
            resync();
          });
        })
        .catch(() => resync());
    };

    // List everything and hand it over as one reset, then follow from there
    // (APISIX's full reload after "compacted"). Retries while etcd is down.
    const resync = (): void => {
      if (closed) return;
      this.list(prefix).then(
        (listing) => {
          if (closed) return;
          listener([{ type: 'reset', items: listing.items }], listing.revision);
          follow(listing.revision + 1);
        },
        () => setTimeout(resync, 1000).unref(),
      );
    };

    follow(fromRevision);
    return {
      close() {
        closed = true;
        cancel();
      },
    };
  }

  async nextId(): Promise<string> {
    // As APISIX: the id is the revision of a write to /gen_id, so ids only grow.
    const res = await this.call(() => this.client.put(`${this.prefix}/gen_id`).value('1').exec());
    return String(res.header.revision).padStart(20, '0');
  }

  async close(): Promise<void> {
    this.client.close();
  }

  /**
   * A fenced write (see the header). `applied` tells from the item's state read with the fence whether the
   * write took effect; the answer is then `{ current }` instead of the write's own response.
   */
  private async txn(key: string, expected: number | undefined, applied: (kv: IKeyValue | undefined) => boolean, ...ops: IOperation[]) {
    const k = this.toEtcd(key);
    const fence = `${this.prefix}_fences/${randomUUID()}`;
    let builder = this.client.if(fence, 'Version', '==', 0);
    if (expected !== undefined) builder = expected === 0 ? builder.and(k, 'Create', '==', 0) : builder.and(k, 'Mod', '==', expected);
    const end = this.deadline();
    if (end - Date.now() < MIN_WRITE_MS) throw new StoreUnavailableError(`etcd: no time left for the write to ${key} (deployment.etcd.timeout)`);
    const writeDeadline = end - Math.floor((end - Date.now()) * FENCE_SHARE);
    let res;
    try {
      res = await builder.then(...ops).options({ deadline: writeDeadline }).commit();
    } catch (err) {
      const why = (err as Error).message;
      if (NOT_SENT.test(why)) throw new StoreUnavailableError(`etcd: ${why}`, { cause: err });
      const current = await this.fence(fence, k, end).catch((fenceErr: unknown) => {
        throw new StoreOutcomeUnknownError(
          key,
          `the write to ${key} may or may not have been applied: etcd did not answer (${why}), nor to the check that followed ` +
            `(${(fenceErr as Error).message}); read the key to learn its state`,
          { cause: err },
        );
      });
      if (applied(current)) return { current };
      throw new StoreUnavailableError(`etcd: the write to ${key} was not applied and never will be (${why})`, { cause: err });
    }
    if (!res.succeeded) throw new CompareFailedError(key);
    return res;
  }

  /** Makes the write fenced by `fence` impossible from now on; answers the item's state at that moment. */
  private async fence(fence: string, k: string, deadline: number): Promise<IKeyValue | undefined> {
    const grant = await this.client.leaseClient.leaseGrant({ TTL: FENCE_TTL_S }, { deadline });
    const res = await this.client
      .if(fence, 'Version', '==', 0)
      .then(this.client.put(fence).value('').lease(grant.ID), this.client.get(k))
      .else(this.client.get(k))
      .options({ deadline })
      .commit();
    const range = res.responses[res.succeeded ? 1 : 0]?.response_range;
    return range?.kvs?.[0];
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new StoreUnavailableError(`etcd: ${(err as Error).message}`, { cause: err });
    }
  }
}
