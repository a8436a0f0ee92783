/**
 * proxy-cache's zones: `apisix.proxy_cache.zones` from config.yaml, each a
 * bounded LRU (lru-cache) in this process. `memory_size` bounds the bytes of
 * the entries (body, headers and key), and the entry count is bounded too, so
 * a flood of tiny responses cannot grow the bookkeeping without limit.
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { ProxyCacheConf, ProxyCacheZone } from '../../core/plugin/index.js';

export interface CacheEntry {
  readonly status: number;
  /** The response's headers as sent at store time, minus the ones a hit sets itself. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  /** Seconds the entry is fresh for, from `storedAt`. */
  readonly ttl: number;
  /** Seconds since the epoch. */
  readonly storedAt: number;
  readonly size: number;
}

export interface Zone {
  readonly name: string;
  readonly entries: LRUCache<string, CacheEntry>;
  /** A response above this many bytes is passed through, never held. */
  readonly maxEntrySize: number;
}

/** APISIX's conf/config-default.yaml zones; used when config.yaml gives none (and by a process that never ran init). */
export const DEFAULT_ZONES: readonly ProxyCacheZone[] = [
  { name: 'disk_cache_one', memory_size: '50m', disk_size: '1G', disk_path: '/tmp/disk_cache_one', cache_levels: '1:2' },
  { name: 'memory_cache', memory_size: '50m' },
];

const DEFAULT_MAX_ENTRY = 1024 * 1024;
/** Each entry is counted as at least this many bytes toward the entry-count bound (key, headers, bookkeeping). */
const MIN_ENTRY_COST = 512;

/** An nginx size: bytes, or a number with k, m or g (the config schema checked the shape). */
export function parseSize(v: number | string): number {
  if (typeof v === 'number') return v;
  const m = /^([0-9]+)([kKmMgG]?)$/.exec(v);
  if (m === null) throw new Error(`invalid size "${v}"`);
  const unit = (m[2] ?? '').toLowerCase();
  return Number(m[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1);
}

let declared: readonly ProxyCacheZone[] = DEFAULT_ZONES;
const zones = new Map<string, Zone>();

/** The zones config.yaml declares (init); the caches themselves are made on first use. */
export function declareZones(conf: Readonly<ProxyCacheConf> | undefined, logger: Logger | undefined, mainProcess: boolean): void {
  declared = conf?.zones ?? DEFAULT_ZONES;
  zones.clear();
  if (!mainProcess || logger === undefined) return;
  const disk = declared.filter((z) => z.disk_size !== undefined || z.disk_path !== undefined || z.cache_levels !== undefined).map((z) => z.name);
  const defaults = JSON.stringify(declared) === JSON.stringify(DEFAULT_ZONES) && conf?.cache_ttl === undefined;
  if (disk.length > 0 || conf?.cache_ttl !== undefined) {
    // APISIX's own defaults declare disk_cache_one; only a file that asks for more is worth a warning.
    const log = defaults ? logger.info.bind(logger) : logger.warn.bind(logger);
    log(
      { zones: disk, cache_ttl: conf?.cache_ttl },
      'proxy-cache: Portico has no disk strategy; disk_size, disk_path, cache_levels and cache_ttl are not used, and a route asking for cache_strategy disk is refused',
    );
  }
}

export function zoneDeclared(name: string): boolean {
  return declared.some((z) => z.name === name);
}

export function zone(name: string): Zone {
  let z = zones.get(name);
  if (z !== undefined) return z;
  const conf = declared.find((d) => d.name === name);
  if (conf === undefined) throw new Error(`cache_zone ${name} not found`);
  const maxSize = parseSize(conf.memory_size);
  const maxEntrySize = Math.min(maxSize, conf.max_entry_size === undefined ? DEFAULT_MAX_ENTRY : parseSize(conf.max_entry_size));
  z = {
    name,
    maxEntrySize,
    entries: new LRUCache<string, CacheEntry>({
      maxSize,
      maxEntrySize,
      max: Math.max(16, Math.floor(maxSize / MIN_ENTRY_COST)),
      sizeCalculation: (e, key) => Math.max(1, e.size + key.length),
    }),
  };
  zones.set(name, z);
  return z;
}
