/**
 * `log_format` (apisix/utils/log-util.lua's gen_log_format and
 * build_log_entry): a JSON object whose string values starting with `$` name
 * a variable, nested objects up to five levels deep; anything else is taken
 * literally. Compiled once per conf (or per plugin_metadata object).
 */
import type { Vars } from '../../core/plugin/index.js';

const MAX_DEPTH = 5;

type Field =
  | { readonly key: string; readonly kind: 'var'; readonly name: string }
  | { readonly key: string; readonly kind: 'nested'; readonly format: CompiledFormat }
  | { readonly key: string; readonly kind: 'literal'; readonly value: unknown };

export interface CompiledFormat {
  readonly fields: readonly Field[];
}

export function compileLogFormat(format: Readonly<Record<string, unknown>>, depth = 1): CompiledFormat {
  const fields: Field[] = [];
  for (const [key, value] of Object.entries(format)) {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      // Deeper nesting is cut to an empty object, as APISIX does.
      fields.push({ key, kind: 'nested', format: depth >= MAX_DEPTH ? { fields: [] } : compileLogFormat(value as Record<string, unknown>, depth + 1) });
    } else if (typeof value === 'string' && value.startsWith('$')) {
      fields.push({ key, kind: 'var', name: value.slice(1) });
    } else {
      fields.push({ key, kind: 'literal', value });
    }
  }
  return { fields };
}

/** `request_body` reads the kept request body; every other name is a variable (unknown ones leave the key out). */
export function renderLogFormat(format: CompiledFormat, vars: Vars, requestBody: () => string | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of format.fields) {
    if (f.kind === 'var') {
      const v = f.name === 'request_body' ? requestBody() : vars.get(f.name);
      if (v !== undefined) out[f.key] = v;
    } else if (f.kind === 'nested') {
      out[f.key] = renderLogFormat(f.format, vars, requestBody);
    } else {
      out[f.key] = f.value;
    }
  }
  return out;
}
