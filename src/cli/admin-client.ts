/**
 * The few Admin API calls `npm run config` makes, with the key in X-API-KEY.
 * A gateway in API-driven standalone mode answers /configs; any other serves
 * the resources one by one, so both are read (and written) here.
 */
import { RESOURCES, resourceKey } from '../core/model.js';
import { documentFromItems, documentItems, type StandaloneDoc } from '../core/store/standalone-doc.js';

export interface AdminTarget {
  url: string;
  key: string;
}

export interface AdminAnswer {
  status: number;
  body: unknown;
  text: string;
}

export async function call(target: AdminTarget, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<AdminAnswer> {
  let res: Response;
  try {
    res = await fetch(target.url.replace(/\/$/, '') + path, {
      method,
      headers: { 'X-API-KEY': target.key, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw new Error(`cannot reach the Admin API at ${target.url}: ${(err as Error).message}`);
  }
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = text;
  }
  if (res.status === 401 || res.status === 403) throw new Error(`the Admin API refused the key (${res.status}): ${text.trim()}`);
  return { status: res.status, body: parsed, text };
}

/** Is this gateway in API-driven standalone mode (GET /configs answers)? Then its document, else undefined. */
export async function standaloneDocument(target: AdminTarget): Promise<StandaloneDoc | undefined> {
  const res = await call(target, 'GET', '/apisix/admin/configs');
  if (res.status !== 200 || typeof res.body !== 'object' || res.body === null) return undefined;
  // The lists as stored, in the order and form every dump has (conf versions and metadata are the gateway's).
  return documentFromItems(documentItems(res.body as StandaloneDoc));
}

interface ListBody {
  list?: Array<{ key: string; value: unknown }>;
}

/** Every stored object (credentials included) as {key, value}, read resource by resource. */
export async function storeItems(target: AdminTarget): Promise<Array<{ key: string; value: unknown }>> {
  const items: Array<{ key: string; value: unknown }> = [];
  for (const resource of RESOURCES) {
    const res = await call(target, 'GET', `/apisix/admin/${resource}`);
    if (res.status !== 200) throw new Error(`GET /apisix/admin/${resource} answered ${res.status}: ${res.text.trim()}`);
    for (const entry of (res.body as ListBody).list ?? []) {
      items.push({ key: entry.key, value: entry.value });
      if (resource !== 'consumers') continue;
      const username = (entry.value as { username?: string }).username ?? entry.key.slice(resourceKey('consumers', '').length);
      const creds = await call(target, 'GET', `/apisix/admin/consumers/${encodeURIComponent(username)}/credentials`);
      // 404: a consumer without credentials (etcd has no directory for it).
      if (creds.status === 200) for (const c of (creds.body as ListBody).list ?? []) items.push({ key: c.key, value: c.value });
    }
  }
  return items;
}
