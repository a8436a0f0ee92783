import { describe, expect, it } from 'vitest';
import type { Vars } from '../../src/core/plugin/ctx.js';
import { compileRouter, type MatchProbe, type RouterEntry } from '../../src/core/match/router.js';

const noVars: Vars = { get: () => undefined };

describe('10,000 routes', () => {
  // Four shapes, 2,500 each: exact, prefix, parameter, and host-bound.
  const entries: RouterEntry<string>[] = [];
  for (let i = 0; i < 2500; i++) {
    entries.push({ id: `e${i}`, route: { uri: `/svc${i}/items` }, data: `e${i}` });
    entries.push({ id: `p${i}`, route: { uri: `/svc${i}/*` }, data: `p${i}` });
    entries.push({ id: `u${i}`, route: { uri: `/users${i}/:id/profile` }, data: `u${i}` });
    entries.push({ id: `h${i}`, route: { uri: '/h/*', hosts: [`tenant${i}.example.com`] }, data: `h${i}` });
  }

  const t0 = process.hrtime.bigint();
  const router = compileRouter(entries);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  // Reported, not asserted: timing belongs to benchmarks.
  console.log(`compiled ${router.size} routes in ${ms.toFixed(1)} ms`);

  const probeMatch = (path: string, host = 'localhost') => {
    const probe: MatchProbe = { candidates: 0 };
    const m = router.match({ method: 'GET', host, remoteAddr: '127.0.0.1', vars: noVars, path }, probe);
    return { data: m?.data, candidates: probe.candidates, params: m?.params };
  };

  it('compiles every route', () => {
    expect(router.size).toBe(10000);
    expect(router.errors).toEqual([]);
  });

  it('matches each shape while examining one candidate', () => {
    expect(probeMatch('/svc1234/items')).toMatchObject({ data: 'e1234', candidates: 1 });
    expect(probeMatch('/svc2499/other')).toMatchObject({ data: 'p2499', candidates: 1 });
    expect(probeMatch('/users77/abc/profile')).toMatchObject({ data: 'u77', candidates: 1, params: { id: 'abc' } });
    expect(probeMatch('/h/x', 'tenant1999.example.com')).toMatchObject({ data: 'h1999', candidates: 1 });
  });

  it('misses examine a bounded number of candidates, not the table', () => {
    expect(probeMatch('/nothing/here').candidates).toBe(0);
    expect(probeMatch('/h/x', 'unknown.example.com')).toEqual({ data: undefined, candidates: 0, params: undefined });
    // A parameter route whose pattern fails is the only one looked at.
    expect(probeMatch('/users5/a/b/profile')).toMatchObject({ data: undefined, candidates: 1 });
  });

  it('stays bounded over many different requests', () => {
    let max = 0;
    for (let i = 0; i < 2500; i += 7) {
      for (const [path, host] of [
        [`/svc${i}/items`, 'x'],
        [`/svc${i}/zzz`, 'x'],
        [`/users${i}/q/profile`, 'x'],
        ['/h/q', `tenant${i}.example.com`],
      ] as const) {
        const r = probeMatch(path, host);
        expect(r.data).toBeDefined();
        max = Math.max(max, r.candidates);
      }
    }
    expect(max).toBe(1);
  });
});
