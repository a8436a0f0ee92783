/** The product version, read once from package.json: the Server header, the Admin API, metrics. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PorticoConfig } from './types.js';
import { PROJECT_ROOT } from './project-root.js';

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export const PORTICO_VERSION = readVersion();

/** `Server:` as APISIX sends it: the version only with `apisix.enable_server_tokens` (default on). */
export function serverHeader(config: PorticoConfig): string {
  return config.apisix.enable_server_tokens === false ? 'Portico' : `Portico/${PORTICO_VERSION}`;
}
