/**
 * Plugins from outside the source tree (config.yaml's `plugin_dirs`): every
 * `.ts`, `.mts`, `.js` or `.mjs` file at the top of each directory
 * default-exports a plugin definition, the contract the built-ins follow.
 *
 * TypeScript loads without a build step through tsx's namespaced loader
 * (`tsx/esm/api`'s register): Node 20 cannot strip types itself, and tsx
 * (esbuild underneath) also follows the plugin's own relative imports and
 * packages the way Node would. Each load uses a fresh namespace, so a reload
 * imports the edited file and everything it imports anew, while requests in
 * flight keep the module instances they started with.
 *
 * `portico/plugin` is answered by this process's own plugin entry (index.ts)
 * through a resolve hook, whatever the plugin's directory has installed: an
 * external plugin shares the core's helpers (data keys, measures) with the
 * built-ins instead of getting a second copy of them.
 */
import { readdir, readFile } from 'node:fs/promises';
import { register as registerHooks } from 'node:module';
import { dirname, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../config/project-root.js';
import * as sdk from './index.js';

/** Why an external plugin file cannot be used: start-up stops with it, a reload answers 400 with it. */
export class PluginLoadError extends ConfigError {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`plugin_dirs: ${file}: ${reason}`);
  }
}

export interface ExternalPlugin {
  readonly file: string;
  readonly def: unknown;
}

const EXTENSIONS: ReadonlySet<string> = new Set(['.ts', '.mts', '.js', '.mjs']);
const SDK_GLOBAL = 'portico.plugin-sdk';
const SDK_SPECIFIER = 'portico/plugin';

let hookRegistered = false;
let generation = 0;

/** Maps `portico/plugin` to a module re-exporting this process's SDK object (once per process). */
function registerSdkHook(): void {
  if (hookRegistered) return;
  hookRegistered = true;
  (globalThis as Record<symbol, unknown>)[Symbol.for(SDK_GLOBAL)] = sdk;
  const names = Object.keys(sdk).filter((n) => n !== 'default');
  const bridge =
    `const s = globalThis[Symbol.for(${JSON.stringify(SDK_GLOBAL)})];\n` + names.map((n) => `export const ${n} = s.${n};`).join('\n');
  const url = 'data:text/javascript,' + encodeURIComponent(bridge);
  const hook = `export async function resolve(specifier, context, next) {
  if (specifier === ${JSON.stringify(SDK_SPECIFIER)}) return { url: ${JSON.stringify(url)}, shortCircuit: true };
  return next(specifier, context);
}`;
  registerHooks('data:text/javascript,' + encodeURIComponent(hook));
}

/** Node decides a `.ts`/`.js` file's module kind by the nearest package.json; the loader needs ES modules. */
async function isEsm(file: string): Promise<boolean> {
  const ext = extname(file);
  if (ext === '.mts' || ext === '.mjs') return true;
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { type?: unknown };
      return pkg.type === 'module';
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return false;
    }
    if (dirname(dir) === dir) return false;
  }
}

async function listFiles(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw new PluginLoadError(dir, `cannot read the plugin directory: ${(err as Error).message}`);
  }
  return entries
    .filter((e) => e.isFile() && EXTENSIONS.has(extname(e.name)) && !e.name.endsWith('.d.ts') && !/\.test\.[mc]?[jt]s$/.test(e.name))
    .map((e) => join(dir, e.name))
    .sort();
}

/**
 * Imports every plugin file in `dirs` (relative ones against the working
 * directory), each time as new code. Throws PluginLoadError naming the first
 * file that does not load or default-export an object.
 */
export async function loadExternalPlugins(dirs: readonly string[]): Promise<ExternalPlugin[]> {
  if (dirs.length === 0) return [];
  registerSdkHook();
  const { register } = await import('tsx/esm/api');
  const scope = register({ namespace: `portico-plugins-${process.pid}-${++generation}` });
  const out: ExternalPlugin[] = [];
  for (const dir of dirs) {
    for (const file of await listFiles(resolve(dir))) {
      if (!(await isEsm(file))) {
        throw new PluginLoadError(file, 'not an ES module: name it .mts/.mjs, or set "type": "module" in the nearest package.json');
      }
      let mod: { default?: unknown };
      try {
        mod = (await scope.import(pathToFileURL(file).href, import.meta.url)) as { default?: unknown };
      } catch (err) {
        throw new PluginLoadError(file, `failed to load: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (typeof mod.default !== 'object' || mod.default === null) throw new PluginLoadError(file, 'does not default-export a plugin definition');
      out.push({ file, def: mod.default });
    }
  }
  return out;
}
