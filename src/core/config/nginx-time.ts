/** nginx's time values as APISIX's config.yaml writes them ("60s", "500ms", "2m"); a bare number is seconds. */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds for an nginx time the config schema already accepted (`^[0-9]+(ms|s|m|h)?$` or an integer). */
export function nginxTimeMs(value: string | number): number {
  if (typeof value === 'number') return value * 1000;
  const m = /^([0-9]+)(ms|s|m|h)?$/.exec(value);
  if (m === null) throw new Error(`not an nginx time: ${value}`);
  return Number(m[1]) * UNIT_MS[m[2] ?? 's']!;
}
