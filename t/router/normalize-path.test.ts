import { describe, expect, it } from 'vitest';
import { encodePath, normalizePath, plainPathEnd } from '../../src/core/http/normalize-path.js';

const path = (raw: string) => {
  const r = normalizePath(raw);
  if ('error' in r) throw new Error(`unexpected error for ${raw}: ${r.error}`);
  return r.path;
};
const isError = (raw: string) => 'error' in normalizePath(raw);

describe('normalizePath', () => {
  it('splits the query off raw', () => {
    expect(normalizePath('/a/b?x=1&y=%20')).toEqual({ path: '/a/b', query: 'x=1&y=%20' });
    expect(normalizePath('/a?')).toEqual({ path: '/a', query: '' });
    expect(normalizePath('/')).toEqual({ path: '/', query: '' });
    // A `?` inside the query, or `..` there, is the query's business, not the path's.
    expect(normalizePath('/a?b=../c?d')).toEqual({ path: '/a', query: 'b=../c?d' });
  });

  it('returns the clean input slice itself on the fast path', () => {
    const raw = '/api/v1/users/42';
    const r = normalizePath(raw);
    expect('path' in r && r.path).toBe(raw);
  });

  it('decodes percent-escapes exactly once', () => {
    expect(path('/%70ub/x')).toBe('/pub/x');
    expect(path('/%50ub/x')).toBe('/Pub/x');
    expect(path('/a%20b')).toBe('/a b');
    expect(path('/a%252e%252e/x')).toBe('/a%2e%2e/x');
    expect(path('/caf%C3%A9')).toBe('/café');
    expect(path('/caf%c3%a9')).toBe('/café');
  });

  it('collapses repeated slashes', () => {
    expect(path('//internal')).toBe('/internal');
    expect(path('/a///b//')).toBe('/a/b/');
    expect(path('/%2F%2Finternal')).toBe('/internal');
  });

  it('resolves dot segments, encoded or not, in either case', () => {
    expect(path('/a/./b')).toBe('/a/b');
    expect(path('/a/b/../c')).toBe('/a/c');
    expect(path('/public/..%2fadmin')).toBe('/admin');
    expect(path('/public/..%2Fadmin')).toBe('/admin');
    expect(path('/pub/%2e%2e/priv')).toBe('/priv');
    expect(path('/pub/%2E%2e/priv')).toBe('/priv');
    expect(path('/pub/.%2E/priv')).toBe('/priv');
    expect(path('/a/b/..')).toBe('/a/');
    expect(path('/a/.')).toBe('/a/');
    expect(path('/a/..')).toBe('/');
    expect(path('/..a/b')).toBe('/..a/b');
    expect(path('/.well-known/x')).toBe('/.well-known/x');
  });

  it('keeps ; params, backslashes and trailing dots literal (as nginx does)', () => {
    expect(path('/admin;x=1')).toBe('/admin;x=1');
    expect(path('/public/..;/admin')).toBe('/public/..;/admin');
    expect(path('/admin.')).toBe('/admin.');
    expect(path('/public/..\\admin')).toBe('/public/..\\admin');
  });

  it('refuses paths that climb above the root', () => {
    expect(isError('/..')).toBe(true);
    expect(isError('/%2e%2e/admin')).toBe(true);
    expect(isError('/a/../../b')).toBe(true);
    expect(isError('/%2e%2e%2fadmin')).toBe(true);
  });

  it('refuses invalid escapes, NUL and escapes that are not UTF-8', () => {
    expect(isError('/a%zz')).toBe(true);
    expect(isError('/a%4')).toBe(true);
    expect(isError('/a%')).toBe(true);
    expect(isError('/a%00b')).toBe(true);
    expect(isError('/a%ff')).toBe(true);
    expect(isError('/a%C3')).toBe(true);
  });

  it('drops a fragment', () => {
    expect(normalizePath('/a#frag')).toEqual({ path: '/a', query: '' });
    expect(normalizePath('/a?q=1#frag')).toEqual({ path: '/a', query: 'q=1' });
  });

  it('reduces absolute-form targets to their path and refuses other forms', () => {
    expect(normalizePath('http://example.com/a/../b?x')).toEqual({ path: '/b', query: 'x' });
    expect(normalizePath('http://example.com')).toEqual({ path: '/', query: '' });
    expect(isError('*')).toBe(true);
    expect(isError('admin')).toBe(true);
    expect(isError('')).toBe(true);
  });
});

describe('encodePath', () => {
  it('leaves clean paths alone and escapes what would change the parse', () => {
    expect(encodePath('/a/b-c_d.e~f;g=h')).toBe('/a/b-c_d.e~f;g=h');
    expect(encodePath('/a b')).toBe('/a%20b');
    expect(encodePath('/a%2e')).toBe('/a%252e');
    expect(encodePath('/a?b#c')).toBe('/a%3Fb%23c');
    expect(encodePath('/café')).toBe('/caf%C3%A9');
  });

  it('round-trips through normalizePath', () => {
    for (const p of ['/a b/c', '/x%y', '/q?x', '/é/ü', '/a;b']) {
      expect(path(encodePath(p))).toBe(p);
    }
  });
});

describe('normalizePath options', () => {
  const servlet = { likeServlet: true };
  it('likeServlet strips ;params and refuses what Tomcat would read as traversal', () => {
    expect(normalizePath('/admin;jsessionid=1/x?q', servlet)).toEqual({ path: '/admin/x', query: 'q' });
    expect(normalizePath('/a/b;x', servlet)).toEqual({ path: '/a/b', query: '' });
    expect('error' in normalizePath('/public/..;/admin', servlet)).toBe(true);
    expect('error' in normalizePath('/public/.;x/admin', servlet)).toBe(true);
    expect('error' in normalizePath('/public/;x/admin', servlet)).toBe(true);
    expect('error' in normalizePath('/public/%252e%252e;/admin', servlet)).toBe(true);
    // Without a `;`, nothing changes.
    expect(normalizePath('/public/%252e/x', servlet)).toEqual({ path: '/public/%2e/x', query: '' });
  });

  it('deleteUriTailSlash strips one trailing slash but keeps the root', () => {
    const o = { deleteUriTailSlash: true };
    expect(normalizePath('/a/b/', o)).toEqual({ path: '/a/b', query: '' });
    expect(normalizePath('/a/b//', o)).toEqual({ path: '/a/b', query: '' });
    expect(normalizePath('/', o)).toEqual({ path: '/', query: '' });
    expect(normalizePath('/a', o)).toEqual({ path: '/a', query: '' });
  });
});

describe('plainPathEnd (the data plane fast path)', () => {
  // Wherever it accepts a target, its slices must equal what normalizePath returns.
  const targets = [
    '/', '/a', '/a/b', '/a/b/', '/a?x=1', '/a?', '/a?b=../c?d', '/a?x#frag', '/a#frag', '/a/./b', '/a/../b', '//a', '/a//b',
    '/a/.', '/a/..', '/.hidden', '/a/.b', '/%41', '/a b', '/é', '', 'a', 'http://h/p', '/a?x=%zz', '/a;x', '/a\\b', '/a/?x', '/a/.?x',
  ];
  it.each(targets)('%j', (raw) => {
    const end = plainPathEnd(raw);
    if (end < 0) return;
    const expected = normalizePath(raw);
    expect(expected).toEqual({ path: raw.slice(0, end), query: end === raw.length ? '' : raw.slice(end + 1) });
  });

  it('takes the common request targets and leaves the rest to normalizePath', () => {
    expect(plainPathEnd('/plain')).toBe(6);
    expect(plainPathEnd('/a/b?x=1')).toBe(4);
    for (const raw of ['/a#f', '/a?x#f', '/a/../b', '//a', '/%41', '/a b', 'http://h/p', '']) expect(plainPathEnd(raw)).toBe(-1);
  });
});
