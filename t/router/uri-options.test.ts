/**
 * normalizeForRouting: the path the router sees under APISIX's URI options,
 * and the path the upstream receives (the one from before the options).
 */
import { describe, expect, it } from 'vitest';
import { normalizeForRouting, normalizePath } from '../../src/core/http/normalize-path.js';

const both = { deleteUriTailSlash: true, likeServlet: true };

describe('normalizeForRouting', () => {
  it('without options it is normalizePath, with the same path for the upstream', () => {
    for (const raw of ['/a/b/', '/a;x/b', '/public/..%2fadmin?q=1', '/%61']) {
      const n = normalizePath(raw);
      expect(normalizeForRouting(raw, undefined)).toEqual('error' in n ? n : { ...n, upstreamPath: n.path });
    }
    expect(normalizeForRouting('/../x', undefined)).toHaveProperty('error');
  });

  it('the router sees the rewritten path, the upstream the normalised one from before', () => {
    expect(normalizeForRouting('/a//b/?q', { deleteUriTailSlash: true })).toEqual({ path: '/a/b', query: 'q', upstreamPath: '/a/b/' });
    expect(normalizeForRouting('/a;jsessionid=1/b', { likeServlet: true })).toEqual({ path: '/a/b', query: '', upstreamPath: '/a;jsessionid=1/b' });
    expect(normalizeForRouting('/a%3Bx/b', { likeServlet: true })).toEqual({ path: '/a/b', query: '', upstreamPath: '/a;x/b' });
  });

  it('both options compose: the servlet rule first, then one trailing slash', () => {
    expect(normalizeForRouting('/foo/;x', both)).toEqual({ path: '/foo', query: '', upstreamPath: '/foo/;x' });
    expect(normalizeForRouting('/foo;x/', both)).toEqual({ path: '/foo', query: '', upstreamPath: '/foo;x/' });
    expect(normalizeForRouting('/foo/', both)).toEqual({ path: '/foo', query: '', upstreamPath: '/foo/' });
    expect(normalizeForRouting('/;x', both)).toEqual({ path: '/', query: '', upstreamPath: '/;x' });
  });

  it('servlet refusals are errors, whatever the tail-slash option', () => {
    for (const raw of ['/p/..;/a', '/p/.;/a', '/p/;x/a', '/p/%252e;/a', '/p/%252E%252e;x/a', '/p/..%3b/a']) {
      expect(normalizeForRouting(raw, both), raw).toHaveProperty('error');
    }
    // Only a dot segment *with* parameters is refused; a literal `...` or a trailing `;x` is fine.
    expect(normalizeForRouting('/p/...;x/a', both)).toMatchObject({ path: '/p/.../a' });
    expect(normalizeForRouting('/p/a/;x', both)).toMatchObject({ path: '/p/a' });
  });
});
