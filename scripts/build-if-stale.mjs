#!/usr/bin/env node
/**
 * Runs before `npm start` (and the other npm scripts that run compiled code):
 * compiles with tsc only when a source is newer than the last build, so a
 * second start does not pay tsc's 10-20 s. Plain JavaScript because it runs
 * before anything is compiled.
 *
 * "Newer" is judged by modification times: every file and folder under the
 * folders tsconfig.json compiles (a folder's time moves when a file in it is
 * added, removed or renamed), and tsconfig.json itself, against the stamp this
 * script writes after a build that succeeded.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// `t/` is here because bench/ imports test helpers (the Kafka mock), which tsc then compiles too.
const SOURCE_DIRS = ['src', 'bench', 'examples', 't'];
const SOURCE_FILES = ['tsconfig.json'];
const STAMP = join(root, 'dist', '.build-stamp');

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

function newestUnder(dir) {
  let newest = mtime(dir);
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return newest;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    const t = e.isDirectory() ? newestUnder(p) : e.name.endsWith('.ts') ? mtime(p) : -1;
    if (t > newest) newest = t;
  }
  return newest;
}

const built = mtime(STAMP);
let newest = -1;
for (const d of SOURCE_DIRS) newest = Math.max(newest, newestUnder(join(root, d)));
for (const f of SOURCE_FILES) newest = Math.max(newest, mtime(join(root, f)));

if (built >= 0 && newest <= built) process.exit(0);

process.stderr.write(built < 0 ? 'portico: compiling (first start, about 20-40 s)\n' : 'portico: sources changed, compiling\n');
const started = Date.now();
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
// --incremental keeps tsc's own record in dist/, so a rebuild after a small edit rechecks little.
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json'), '--incremental'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  process.stderr.write(`portico: tsc failed (exit ${r.status ?? r.signal}); not starting\n`);
  process.exit(r.status ?? 1);
}
mkdirSync(dirname(STAMP), { recursive: true });
writeFileSync(STAMP, `built ${new Date().toISOString()} in ${Date.now() - started} ms\n`);
process.stderr.write(`portico: compiled in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
