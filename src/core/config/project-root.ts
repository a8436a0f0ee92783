/**
 * Where Portico is installed, and the error a bad config raises: the data plane
 * needs both but not the config-file loader (ajv, the YAML parser), so they live
 * apart from it and a data-plane worker does not load the loader.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The package root (holds package.json), from src/core or dist/src/core. */
export const PROJECT_ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));

function findRoot(dir: string): string {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, 'conf'))) return d;
    if (dirname(d) === d) return process.cwd();
  }
}
