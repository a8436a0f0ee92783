/**
 * The table that drives the generic resource handler: one row per Admin API
 * resource with APISIX's kind (used in messages), how its key is formed, the
 * methods it allows (APISIX's admin-api.md), what may reference it (refused DELETE), and the
 * fields its list may be filtered on.
 */
import type { ResourceName } from '../core/model.js';

export type AdminMethod = 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

/** `id`: the object's id; `username`: consumers; `plugin_name`: plugin_metadata. */
export type KeyField = 'id' | 'username' | 'plugin_name';

/** Another resource whose objects point at this one through `field`. */
export interface ReferenceRule {
  from: ResourceName;
  /** The kind named in the refusal, e.g. `route` in `route [1] is still using it now`. */
  label: string;
  field: 'upstream_id' | 'service_id' | 'plugin_config_id' | 'group_id';
}

export interface ResourceDef {
  name: ResourceName;
  kind: string;
  keyField: KeyField;
  methods: ReadonlySet<AdminMethod>;
  /** Prefix of the DELETE refusal: `can not delete this <deleteNoun>, ...`. */
  deleteNoun?: string;
  referencedBy: readonly ReferenceRule[];
  /** traffic-split's weighted_upstreams[].upstream_id in these resources' plugins also hold a reference. */
  pluginReferencesFrom?: ReadonlyArray<{ from: ResourceName; label: string }>;
  /** Fields honoured by `?filter=` (APISIX list_filter_fields). */
  listFilterFields: readonly string[];
  /** Removed from every read (ssls' private keys). */
  hiddenOnRead: readonly string[];
  /** Whether the stored value carries plugin confs (encrypted fields live there). */
  hasPlugins: boolean;
}

const ALL: readonly AdminMethod[] = ['GET', 'PUT', 'POST', 'PATCH', 'DELETE'];
const NO_POST: readonly AdminMethod[] = ['GET', 'PUT', 'PATCH', 'DELETE'];
const NO_POST_PATCH: readonly AdminMethod[] = ['GET', 'PUT', 'DELETE'];
const NO_PATCH: readonly AdminMethod[] = ['GET', 'PUT', 'POST', 'DELETE'];

function def(row: Omit<ResourceDef, 'methods' | 'referencedBy' | 'listFilterFields' | 'hiddenOnRead'> & {
  methods: readonly AdminMethod[];
  referencedBy?: readonly ReferenceRule[];
  listFilterFields?: readonly string[];
  hiddenOnRead?: readonly string[];
}): ResourceDef {
  return {
    ...row,
    methods: new Set(row.methods),
    referencedBy: row.referencedBy ?? [],
    listFilterFields: row.listFilterFields ?? [],
    hiddenOnRead: row.hiddenOnRead ?? [],
  };
}

export const RESOURCE_DEFS: ReadonlyMap<string, ResourceDef> = new Map(
  [
    def({ name: 'routes', kind: 'route', keyField: 'id', methods: ALL, hasPlugins: true, listFilterFields: ['service_id', 'upstream_id'] }),
    def({
      name: 'services',
      kind: 'service',
      keyField: 'id',
      methods: ALL,
      hasPlugins: true,
      deleteNoun: 'service directly',
      referencedBy: [{ from: 'routes', label: 'route', field: 'service_id' }],
    }),
    def({
      name: 'upstreams',
      kind: 'upstream',
      keyField: 'id',
      methods: ALL,
      hasPlugins: false,
      deleteNoun: 'upstream',
      referencedBy: [
        { from: 'routes', label: 'route', field: 'upstream_id' },
        { from: 'services', label: 'service', field: 'upstream_id' },
      ],
      pluginReferencesFrom: [
        { from: 'routes', label: 'route' },
        { from: 'services', label: 'service' },
        { from: 'plugin_configs', label: 'plugin_config' },
        { from: 'consumers', label: 'consumer' },
        { from: 'consumer_groups', label: 'consumer_group' },
        { from: 'global_rules', label: 'global_rules' },
      ],
    }),
    def({ name: 'consumers', kind: 'consumer', keyField: 'username', methods: NO_POST_PATCH, hasPlugins: true }),
    def({ name: 'global_rules', kind: 'global rule', keyField: 'id', methods: NO_POST, hasPlugins: true }),
    def({
      name: 'plugin_configs',
      kind: 'plugin config',
      keyField: 'id',
      methods: NO_POST,
      hasPlugins: true,
      deleteNoun: 'plugin config',
      referencedBy: [{ from: 'routes', label: 'route', field: 'plugin_config_id' }],
    }),
    def({
      name: 'consumer_groups',
      kind: 'consumer group',
      keyField: 'id',
      methods: NO_POST,
      hasPlugins: true,
      deleteNoun: 'consumer group',
      referencedBy: [{ from: 'consumers', label: 'consumer', field: 'group_id' }],
    }),
    def({ name: 'plugin_metadata', kind: 'plugin_metadata', keyField: 'plugin_name', methods: NO_POST_PATCH, hasPlugins: false }),
    def({ name: 'ssls', kind: 'ssl', keyField: 'id', methods: ALL, hasPlugins: false, hiddenOnRead: ['key', 'keys'] }),
    // Stored for grpc-transcode, which Portico does not have yet: no route can reference one, so no delete check.
    def({ name: 'protos', kind: 'proto', keyField: 'id', methods: NO_PATCH, hasPlugins: false }),
  ].map((d) => [d.name, d]),
);
