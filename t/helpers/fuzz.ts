/**
 * fast-check settings every fuzz property uses, so a run is reproducible:
 * a fixed seed by default (CI runs the same cases every time), overridden by
 * the environment for a longer hunt.
 *
 *   FUZZ_SEED=<integer> | random   the seed (default FUZZ_DEFAULT_SEED)
 *   FUZZ_PATH=<path>               replays one counterexample (with its FUZZ_SEED), as a failure prints it
 *   FUZZ_RUNS=<n>                  cases per property; lifts the time bound unless FUZZ_TIME_MS is set too
 *   FUZZ_TIME_MS=<ms>              time bound per property
 *
 * A failing property's message carries `seed` and `path` (fast-check prints
 * them when a seed is passed), and the settings in use are logged once.
 */
import fc from 'fast-check';

export const FUZZ_DEFAULT_SEED = 1717;

export interface FuzzSettings {
  seed: number;
  path: string | undefined;
  /** A run count given explicitly (FUZZ_RUNS), or undefined for each property's own default. */
  runs: number | undefined;
  /** undefined: no time bound (FUZZ_RUNS without FUZZ_TIME_MS). */
  timeMs: number | null | undefined;
}

function integer(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer (or FUZZ_SEED=random), got ${JSON.stringify(raw)}`);
  return n;
}

/** Reads the FUZZ_* variables; throws naming the variable when one is malformed. */
export function fuzzSettings(env: NodeJS.ProcessEnv = process.env): FuzzSettings {
  const rawSeed = env.FUZZ_SEED?.trim();
  const seed =
    rawSeed === undefined || rawSeed === ''
      ? FUZZ_DEFAULT_SEED
      : rawSeed === 'random'
        ? (Math.random() * 2 ** 31) | 0
        : integer('FUZZ_SEED', rawSeed);
  const runs = env.FUZZ_RUNS ? integer('FUZZ_RUNS', env.FUZZ_RUNS) : undefined;
  const timeMs = env.FUZZ_TIME_MS ? integer('FUZZ_TIME_MS', env.FUZZ_TIME_MS) : runs !== undefined ? null : undefined;
  return { seed, path: env.FUZZ_PATH || undefined, runs, timeMs };
}

/** The settings of this run (a random seed is drawn once). */
export const settings = fuzzSettings();
let told = false;

/**
 * fc.assert's parameters for one property: `numRuns` and the time bound are
 * the property's defaults unless FUZZ_RUNS / FUZZ_TIME_MS say otherwise.
 * A time bound cuts a run short but never changes which cases come first, so a
 * seed replays the same cases on a faster or slower machine.
 */
export function fuzzParameters<T>(defaults: { numRuns: number; timeMs: number }): fc.Parameters<T> {
  if (!told) {
    told = true;
    // On stderr so a long hunt shows its seed even if it is killed before failing.
    process.stderr.write(`fuzz: seed ${settings.seed}${settings.path ? ` path ${settings.path}` : ''}, runs ${settings.runs ?? 'default'} (FUZZ_SEED / FUZZ_RUNS to change)\n`);
  }
  const timeMs = settings.timeMs === undefined ? defaults.timeMs : settings.timeMs;
  return {
    seed: settings.seed,
    ...(settings.path ? { path: settings.path, endOnFailure: true } : {}),
    numRuns: settings.runs ?? defaults.numRuns,
    ...(timeMs !== null ? { interruptAfterTimeLimit: timeMs } : {}),
  };
}

/** A vitest timeout for a property that may run FUZZ_RUNS cases: generous when a hunt asks for more. */
export function fuzzTestTimeout(defaultMs: number): number {
  if (settings.timeMs === null) return Math.max(defaultMs, (settings.runs ?? 0) * 250);
  return settings.timeMs === undefined ? defaultMs : Math.max(defaultMs, settings.timeMs * 3);
}
