/**
 * The house rules for src/, checked on every run: no import circle (type-only
 * imports included), the core never imports the Admin API, the plugins or the
 * messaging backends, src/schema/ imports nothing outside itself, plugins
 * reach the core only through src/core/plugin/index.ts and each other only
 * through src/plugins/lib/, and src/core/ keeps at most
 * a dozen loose files (the rest live in subsystem folders).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

// Static imports and re-exports (`import type` too) and dynamic import('...') with a literal specifier.
const IMPORT_RE = /(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

/** src-relative path -> src-relative paths it imports. */
export function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const deps = new Set<string>();
    for (const m of readFileSync(file, 'utf8').matchAll(IMPORT_RE)) {
      const spec = m[1] ?? m[2]!;
      if (!spec.startsWith('.')) continue;
      deps.add(relative(SRC, resolve(dirname(file), spec.replace(/\.js$/, '.ts'))));
    }
    graph.set(relative(SRC, file), [...deps]);
  }
  return graph;
}

/** Strongly connected components with more than one file (or a file importing itself). */
function circles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const stack: string[] = [];
  const onStack = new Set<string>();
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(c.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return found;
}

function arrows(graph: Map<string, string[]>, bad: (from: string, to: string) => boolean): string[] {
  const out: string[] = [];
  for (const [from, deps] of graph) for (const to of deps) if (bad(from, to)) out.push(`${from} -> ${to}`);
  return out.sort();
}

const pluginOf = (p: string): string => p.split('/')[1]!.replace(/\.ts$/, '');

describe('src/ import rules', () => {
  const graph = importGraph();

  test('the graph was read (sanity: the rules below are not vacuous)', () => {
    expect(graph.size).toBeGreaterThan(100);
    expect(graph.get('gateway.ts')).toContain('admin/server.ts');
  });

  test('every relative import names a file that exists', () => {
    expect(arrows(graph, (_from, to) => !graph.has(to))).toEqual([]);
  });

  test('no import circle', () => {
    expect(circles(graph)).toEqual([]);
  });

  test('the core never imports the Admin API, the plugins or the messaging backends', () => {
    expect(arrows(graph, (from, to) => from.startsWith('core/') && /^(admin|plugins|pubsub)\//.test(to))).toEqual([]);
  });

  test('src/schema/ is a leaf', () => {
    expect(arrows(graph, (from, to) => from.startsWith('schema/') && !to.startsWith('schema/'))).toEqual([]);
  });

  test('plugins reach each other only through src/plugins/lib/', () => {
    const bad = (from: string, to: string): boolean =>
      from.startsWith('plugins/') && to.startsWith('plugins/') && !to.startsWith('plugins/lib/') && !from.startsWith('plugins/lib/') && pluginOf(from) !== pluginOf(to);
    expect(arrows(graph, bad)).toEqual([]);
  });

  test('plugins reach the core only through its one entry, src/core/plugin/index.ts', () => {
    const bad = (from: string, to: string): boolean => from.startsWith('plugins/') && to.startsWith('core/') && to !== 'core/plugin/index.ts';
    expect(arrows(graph, bad)).toEqual([]);
  });

  test('src/core/ keeps at most 12 loose files', () => {
    const loose = readdirSync(join(SRC, 'core')).filter((n) => statSync(join(SRC, 'core', n)).isFile());
    expect(loose.length).toBeLessThanOrEqual(12);
  });
});
