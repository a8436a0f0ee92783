/**
 * APISIX `vars` expressions (lua-resty-expr v1), compiled once into a closure.
 *
 * Grammar, as lua-resty-expr has it:
 *   rule     := [] | [expr, expr, ...] | [LOGIC, rule, rule, ...]
 *   expr     := [var, op, value] | [var, "!", op, value] | [var, value] (means ==)
 *               | [LOGIC, rule, ...] (nested)
 *   LOGIC    := "AND" | "OR" | "!AND" | "!OR" (case-insensitive); needs ≥ 2 operands
 *   op       := == ~= > < >= <= ~~ ~* in has ipmatch (case-insensitive)
 * An empty rule always matches. Compile errors carry lua-resty-expr's messages
 * (the Admin API prefixes them with `failed to validate the 'vars' expression: `).
 *
 * Comparison follows Lua: `==`/`~=` against a number convert the variable with
 * tonumber(); ordering operators convert both sides and are false when either
 * is not a number; `in` is an exact element test; `has` looks for the value in a
 * list-valued variable; JSON `null` as the value stands for "no value".
 *
 * Two deliberate differences: lua-resty-expr accepts a bad regex and the rule
 * then never matches; here the regex is compiled up front so the mistake is
 * reported when the route is written. And an expression holds at most
 * MAX_EXPR_RULES rules and logical groups, at any depth (see below).
 */
import { compileIpMatcher } from './ip-match.js';

/**
 * What an expression reads. `Vars` from ctx.ts satisfies it; a source may also
 * hand back lists (e.g. parsed body fields), which is what `has` looks into.
 */
export interface ExprVars {
  get(name: string): unknown;
}

export type CompiledExpr = (vars: ExprVars) => boolean;

type Cmp = (l: unknown) => boolean;

const LOGIC_OPS = new Set(['AND', 'OR', '!AND', '!OR']);
const OPS = new Set(['==', '~=', '>', '<', '>=', '<=', '~~', '~*', 'in', 'has', 'ipmatch']);

const LUA_NUMBER = /^\s*[-+]?(?:0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$/;

/** Lua's tonumber() on a string or number; undefined when Lua would give nil. */
export function luaToNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string' || !LUA_NUMBER.test(v)) return undefined;
  const t = v.trim();
  const neg = t.startsWith('-');
  const body = t.replace(/^[-+]/, '');
  const n = /^0[xX]/.test(body) ? parseHexFloat(body.slice(2)) : Number(body);
  return neg ? -n : n;
}

function parseHexFloat(h: string): number {
  const dot = h.indexOf('.');
  if (dot === -1) return parseInt(h, 16);
  const int = h.slice(0, dot);
  const frac = h.slice(dot + 1);
  return (int ? parseInt(int, 16) : 0) + (frac ? parseInt(frac, 16) / 16 ** frac.length : 0);
}

function isLogic(first: unknown): boolean {
  return typeof first === 'string' && LOGIC_OPS.has(first.toUpperCase());
}

/** Lua `tostring` for messages; JSON shapes are what users wrote. */
function show(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
}

/**
 * Portico's bound on one expression: rules and logical groups ("AND", ...)
 * counted at every depth. Each compiled rule costs a data-plane worker about 0.8 KB
 * (docs/reliability.md, "What a stored object costs"); real `vars` hold a
 * handful. A bound on the top-level array alone would let one group hold the rest.
 */
export const MAX_EXPR_RULES = 1024;

/**
 * Compiles a lua-resty-expr rule list. Throws with lua-resty-expr's message on
 * invalid input. The returned function never throws.
 */
export function compileExpr(expr: unknown): CompiledExpr {
  if (expr === undefined || expr === null) throw new Error('missing argument rule');
  if (!Array.isArray(expr)) throw new Error('rule should be wrapped inside brackets');
  if (expr.length === 0) return () => true;
  if (!Array.isArray(expr[0]) && !isLogic(expr[0])) throw new Error('rule should be wrapped inside brackets');
  return compileRule(expr, { rules: 0 });
}

function compileRule(rules: unknown, count: { rules: number }): CompiledExpr {
  if (!Array.isArray(rules)) throw new Error('invalid expression');
  if (rules.length === 0) throw new Error('rule too short');

  // A plain list of rules is not counted: `vars` of MAX_EXPR_RULES leaves is within the bound.
  if (Array.isArray(rules[0])) {
    return combine('AND', rules.map((r) => compileRule(r, count)));
  }
  if (++count.rules > MAX_EXPR_RULES) throw new Error(`expression has more than ${MAX_EXPR_RULES} rules and logical groups (Portico's bound)`);
  if (isLogic(rules[0])) {
    if (rules.length <= 2) throw new Error('rule too short');
    return combine((rules[0] as string).toUpperCase(), rules.slice(1).map((r) => compileRule(r, count)));
  }
  return compileLeaf(rules);
}

function combine(op: string, parts: CompiledExpr[]): CompiledExpr {
  const n = parts.length;
  if (op === 'AND' || op === '!AND') {
    const neg = op === '!AND';
    if (n === 1) {
      const p = parts[0]!;
      return neg ? (v) => !p(v) : p;
    }
    return (v) => {
      for (let i = 0; i < n; i++) if (!parts[i]!(v)) return neg;
      return !neg;
    };
  }
  const neg = op === '!OR';
  return (v) => {
    for (let i = 0; i < n; i++) if (parts[i]!(v)) return !neg;
    return neg;
  };
}

function compileLeaf(e: unknown[]): CompiledExpr {
  let name: unknown;
  let op: unknown;
  let value: unknown;
  let reverse = false;

  if (e.length === 4) {
    if (e[1] !== '!') throw new Error("bad 'not' expression");
    reverse = true;
    [name, , op, value] = e;
  } else {
    [name, op, value] = e;
  }

  if (typeof op === 'string') op = op.toLowerCase();

  // `[var, value]` is shorthand for `[var, "==", value]` (lua-resty-expr keeps it for compatibility).
  if (value === undefined && !(typeof op === 'string' && OPS.has(op))) {
    if (op === undefined || op === null) throw new Error('invalid expression');
    value = op;
    op = '==';
  }

  if (name === undefined || name === null || op === undefined || op === null) throw new Error('invalid expression');
  if (typeof op !== 'string' || !OPS.has(op)) throw new Error(`invalid operator '${show(op)}'`);

  // JSON null arrives where Lua would see ngx.null, which compare_val turns into nil.
  if (value === null) value = undefined;

  const cmp = compileCompare(op, value);
  const varName = typeof name === 'string' ? name : show(name);
  return reverse ? (v) => !cmp(v.get(varName)) : (v) => cmp(v.get(varName));
}

function compileCompare(op: string, r: unknown): Cmp {
  switch (op) {
    case '==': {
      if (typeof r === 'number') {
        return (l) => luaToNumber(l) === r;
      }
      return (l) => l === r;
    }
    case '~=': {
      if (typeof r === 'number') {
        return (l) => {
          const n = luaToNumber(l);
          return n === undefined || n !== r;
        };
      }
      return (l) => l !== r;
    }
    case '>':
    case '<':
    case '>=':
    case '<=': {
      const rn = luaToNumber(r);
      if (rn === undefined) return () => false;
      const test =
        op === '>'
          ? (a: number) => a > rn
          : op === '<'
            ? (a: number) => a < rn
            : op === '>='
              ? (a: number) => a >= rn
              : (a: number) => a <= rn;
      return (l) => {
        const ln = luaToNumber(l);
        return ln !== undefined && test(ln);
      };
    }
    case '~~':
    case '~*': {
      if (typeof r !== 'string') throw new Error(`invalid regex '${show(r)}'`);
      let re: RegExp;
      try {
        // PCRE (what ngx.re uses) and JS agree on everyday syntax. No `u` flag:
        // it would refuse PCRE-valid escapes such as `\-` outside a class.
        re = new RegExp(r, op === '~*' ? 'i' : '');
      } catch (err) {
        throw new Error(`invalid regex '${r}': ${(err as Error).message}`);
      }
      return (l) => {
        if (l === undefined || l === null || l === false) return false;
        return re.test(typeof l === 'string' ? l : String(l));
      };
    }
    case 'in': {
      if (!Array.isArray(r)) return () => false;
      const items = r.slice();
      return (l) => {
        for (let i = 0; i < items.length; i++) if (items[i] === l) return true;
        return false;
      };
    }
    case 'has':
      return (l) => Array.isArray(l) && l.some((x) => x === r);
    case 'ipmatch': {
      if (r === undefined || r === '') throw new Error('invalid ip address');
      const list = Array.isArray(r) ? r : [r];
      if (list.length === 0) throw new Error('invalid ip address');
      const m = compileIpMatcher(list as string[]);
      return (l) => typeof l === 'string' && m(l);
    }
  }
  throw new Error(`invalid operator '${op}'`);
}
