/**
 * The config store for a cluster of gateway nodes: etcd v3, laid out as APISIX
 * lays it (`<prefix>/routes/1`), so every node watching the prefix converges on
 * each change. Revisions are etcd's own. Writes are transactions that read the
 * item back in the same revision, so create/modify revisions need no extra trip.
 */
import { Etcd3, type IKeyValue, type IOperation } from 'etcd3';
import { KEY_PREFIX } from '../model.js';
import {
  CompareFailedError,
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

  constructor(opts: EtcdStoreOptions) {
    const timeoutMs = opts.timeout * 1000;
    this.prefix = opts.prefix.replace(/\/$/, '');
    this.client = new Etcd3({
      hosts: opts.hosts,
      dialTimeout: timeoutMs,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    });
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
    const res = await this.txn(k, opts.expectModRevision, this.client.put(k).value(JSON.stringify(value)), this.client.get(k));
    const kv = res.responses[1]?.response_range?.kvs?.[0];
    if (!kv) throw new StoreUnavailableError(`etcd did not return ${key} after writing it`);
    return this.item(kv);
  }

  async delete(key: string, opts: DeleteOptions = {}): Promise<boolean> {
    const k = this.toEtcd(key);
    const res = await this.txn(k, opts.expectModRevision, this.client.delete().key(k));
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

  private async txn(key: string, expected: number | undefined, ...ops: IOperation[]) {
    let builder = this.client.if(key, 'Mod', '>', -1); // always true: a plain write in the same txn shape
    if (expected !== undefined) {
      builder = expected === 0 ? this.client.if(key, 'Create', '==', 0) : this.client.if(key, 'Mod', '==', expected);
    }
    const res = await this.call(() => builder.then(...ops).commit());
    if (!res.succeeded) throw new CompareFailedError(key);
    return res;
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new StoreUnavailableError(`etcd: ${(err as Error).message}`, { cause: err });
    }
  }
}
