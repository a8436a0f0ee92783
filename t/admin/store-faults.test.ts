/**
 * A store that cannot be reached gives 503 with the store's message, writes
 * nothing, and the Admin API keeps serving once the store is back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/core/store/memory.js';
import { StoreUnavailableError, type ConfigStore } from '../../src/core/store/types.js';
import { startAdmin, type AdminHarness } from './harness.js';

/** Delegates to a real store, failing every call while `down` is set. */
class FlakyStore extends MemoryStore {
  down = false;
  private guard(): void {
    if (this.down) throw new StoreUnavailableError('connection refused: store is down');
  }
  override async get(key: string): ReturnType<ConfigStore['get']> {
    this.guard();
    return super.get(key);
  }
  override async list(prefix: string): ReturnType<ConfigStore['list']> {
    this.guard();
    return super.list(prefix);
  }
  override async put(...args: Parameters<ConfigStore['put']>): ReturnType<ConfigStore['put']> {
    this.guard();
    return super.put(...args);
  }
  override async delete(...args: Parameters<ConfigStore['delete']>): ReturnType<ConfigStore['delete']> {
    this.guard();
    return super.delete(...args);
  }
}

const store = new FlakyStore();
let h: AdminHarness;
beforeAll(async () => {
  h = await startAdmin({ store });
});
afterAll(async () => {
  await h.close();
  await store.close();
});

describe('store faults', () => {
  it('maps StoreUnavailableError to 503 for reads and writes, then recovers', async () => {
    store.down = true;
    for (const [m, p, body] of [
      ['GET', '/apisix/admin/routes', undefined],
      ['GET', '/apisix/admin/routes/1', undefined],
      ['PUT', '/apisix/admin/upstreams/1', { nodes: { '127.0.0.1:1980': 1 } }],
      ['POST', '/apisix/admin/upstreams', { nodes: { '127.0.0.1:1980': 1 } }],
      ['PATCH', '/apisix/admin/upstreams/1', { desc: 'x' }],
      ['DELETE', '/apisix/admin/upstreams/1', undefined],
    ] as const) {
      const res = await h.req(m, p, { body });
      expect(res.status, `${m} ${p}`).toBe(503);
      expect(res.body).toEqual({ error_msg: 'connection refused: store is down' });
    }
    store.down = false;
    expect((await h.req('GET', '/apisix/admin/upstreams')).body).toEqual({ list: [], total: 0 });
    expect((await h.req('PUT', '/apisix/admin/upstreams/1', { body: { nodes: { '127.0.0.1:1980': 1 } } })).status).toBe(201);
  });
});
