/**
 * JSON written straight into a growing byte buffer as UTF-8: the bytes of
 * Buffer.from(JSON.stringify(value)), without the string in between.
 *
 * Why: a log entry is a few hundred bytes of short strings, and on the
 * request's core JSON.stringify then the UTF-8 copy into the batch cost about
 * twice what writing the bytes here does (V8's stringify pays a per-call and
 * per-key toll that dominates at this size). Short strings are copied a
 * character at a time; long ones go to Buffer#write, after JSON.stringify
 * when they need escapes. t/plugins/loggers/json-bytes.test.ts holds the
 * output against JSON.stringify's on awkward values (escapes, lone
 * surrogates, astral characters, integer-like keys, toJSON, undefined).
 */

/** Strings at least this long are written natively (Buffer#write) rather than a character at a time. */
const NATIVE_FROM = 48;
/** Code units that JSON.stringify escapes: control characters, `"`, `\`, and surrogates (escaped when lone). */
const NEEDS_CARE = /[\u0000-\u001f"\\\ud800-\udfff]/;
const HEX = [48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 97, 98, 99, 100, 101, 102];
/** JSON.stringify's two-character escapes, by code unit; 0 where it writes \u00XX. */
const SHORT_ESCAPE = new Uint8Array(32);
SHORT_ESCAPE[8] = 98; // \b
SHORT_ESCAPE[9] = 116; // \t
SHORT_ESCAPE[10] = 110; // \n
SHORT_ESCAPE[12] = 102; // \f
SHORT_ESCAPE[13] = 114; // \r
const MAX_DEPTH = 64;
/** Buffer#write ends in utf8Write; calling it directly skips the encoding and argument dispatch. */
type Utf8 = Buffer & { utf8Write(s: string, offset: number): number };

/** An object JSON.stringify writes member by member: made by `{}` or with no prototype, and no toJSON. */
function isPlain(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return (proto === Object.prototype || proto === null) && typeof (v as { toJSON?: unknown }).toJSON !== 'function';
}

export class JsonBuffer {
  bytes: Buffer;
  /** Bytes written so far. */
  at = 0;

  constructor(capacity = 64 * 1024) {
    // Off the pool: a batch's buffer outlives the request and may be large.
    this.bytes = Buffer.allocUnsafeSlow(capacity);
  }

  /** Room for `n` more bytes. */
  reserve(n: number): void {
    if (this.at + n <= this.bytes.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(this.bytes.length * 2, this.at + n));
    this.bytes.copy(grown, 0, 0, this.at);
    this.bytes = grown;
  }

  /** Takes the bytes written (a view) and starts over in a fresh buffer of `capacity`. */
  detach(capacity: number): Buffer {
    const out = this.bytes.subarray(0, this.at);
    this.bytes = Buffer.allocUnsafeSlow(capacity);
    this.at = 0;
    return out;
  }

  /** Text that is already JSON (or any UTF-8 text), as is. */
  text(s: string): void {
    this.reserve(s.length * 3);
    this.at += (this.bytes as Utf8).utf8Write(s, this.at);
  }

  /** Bytes that are already JSON (UTF-8), copied here: a short run by hand, which beats a native call. */
  raw(src: Uint8Array): void {
    const n = src.length;
    this.reserve(n);
    if (n > 64) {
      this.bytes.set(src, this.at);
    } else {
      const b = this.bytes;
      const at = this.at;
      for (let i = 0; i < n; i++) b[at + i] = src[i]!;
    }
    this.at += n;
  }

  /** A number as JSON.stringify writes it; counts and statuses (safe non-negative integers) without a string. */
  number(n: number): void {
    if (n >= 0 && Number.isSafeInteger(n)) this.uint(n);
    else this.ascii(Number.isFinite(n) ? String(n) : 'null');
  }

  /** One ASCII byte. */
  byte(b: number): void {
    this.reserve(1);
    this.bytes[this.at++] = b;
  }

  /** JSON.stringify(v) for a value that is not undefined, a function or a symbol. */
  value(v: unknown, depth = 0): void {
    switch (typeof v) {
      case 'string':
        this.string(v);
        return;
      case 'number':
        this.number(v);
        return;
      case 'boolean':
        this.ascii(v ? 'true' : 'false');
        return;
      case 'object':
        if (v === null) this.ascii('null');
        else if (Array.isArray(v)) this.array(v, depth + 1);
        else if (isPlain(v)) this.object(v as Record<string, unknown>, depth + 1);
        else this.text(JSON.stringify(v) ?? 'null');
        return;
      default:
        // bigint throws as JSON.stringify does; undefined, functions and symbols are 'null' in an array.
        this.ascii(JSON.stringify(v) ?? 'null');
    }
  }

  /** An object's members and braces. */
  object(o: Record<string, unknown>, depth = 1): void {
    this.byte(0x7b);
    this.members(o, false, depth);
    this.byte(0x7d);
  }

  /**
   * The members of a plain object `o`, without braces, each after a comma if
   * `comma` (the object so far has members). Returns whether anything was
   * written or `comma` was already true.
   */
  members(o: Record<string, unknown>, comma: boolean, depth = 1): boolean {
    if (depth > MAX_DEPTH) throw new RangeError('log entry nested too deeply for JSON');
    // Own enumerable keys in JSON.stringify's order (Object.keys: integer-like keys first).
    const keys = Object.keys(o);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const v = o[k];
      if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
      // Not plain (a Date, a Buffer, a toJSON of its own): JSON.stringify's own answer, skipped if it has none.
      let special: string | undefined;
      if (typeof v === 'object' && v !== null && !Array.isArray(v) && !isPlain(v)) {
        special = JSON.stringify(v) as string | undefined;
        if (special === undefined) continue;
      }
      if (comma) this.byte(0x2c);
      comma = true;
      this.string(k);
      this.byte(0x3a);
      if (special !== undefined) this.text(special);
      else this.value(v, depth);
    }
    return comma;
  }

  private array(a: readonly unknown[], depth: number): void {
    if (depth > MAX_DEPTH) throw new RangeError('log entry nested too deeply for JSON');
    this.byte(0x5b);
    for (let i = 0; i < a.length; i++) {
      if (i > 0) this.byte(0x2c);
      const v = a[i];
      if (v === undefined || typeof v === 'function' || typeof v === 'symbol') this.ascii('null');
      else this.value(v, depth);
    }
    this.byte(0x5d);
  }

  /** A JSON string: quotes, JSON.stringify's escapes, UTF-8. */
  string(s: string): void {
    this.byte(0x22);
    this.chars(s);
    this.byte(0x22);
  }

  /**
   * A JSON string's contents without its quotes: JSON.stringify's escapes,
   * UTF-8. Pieces of one string may follow one another where no piece ends
   * inside a surrogate pair (it would be written as two lone halves).
   */
  chars(s: string): void {
    const n = s.length;
    if (n >= NATIVE_FROM) {
      if (NEEDS_CARE.test(s)) {
        const quoted = JSON.stringify(s);
        this.text(quoted.slice(1, -1));
      } else {
        this.text(s);
      }
      return;
    }
    // Six bytes a code unit at most (\u00XX).
    this.reserve(n * 6);
    const b = this.bytes;
    let at = this.at;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x20 && c < 0x80) {
        if (c === 0x22 || c === 0x5c) b[at++] = 0x5c;
        b[at++] = c;
      } else if (c < 0x20) {
        b[at++] = 0x5c;
        const short = SHORT_ESCAPE[c]!;
        if (short !== 0) {
          b[at++] = short;
        } else {
          b[at++] = 0x75; // u00XX
          b[at++] = 0x30;
          b[at++] = 0x30;
          b[at++] = HEX[c >> 4]!;
          b[at++] = HEX[c & 15]!;
        }
      } else if (c < 0x800) {
        b[at++] = 0xc0 | (c >> 6);
        b[at++] = 0x80 | (c & 63);
      } else if (c < 0xd800 || c > 0xdfff) {
        b[at++] = 0xe0 | (c >> 12);
        b[at++] = 0x80 | ((c >> 6) & 63);
        b[at++] = 0x80 | (c & 63);
      } else {
        const next = i + 1 < n ? s.charCodeAt(i + 1) : 0;
        if (c < 0xdc00 && next >= 0xdc00 && next <= 0xdfff) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
          b[at++] = 0xf0 | (cp >> 18);
          b[at++] = 0x80 | ((cp >> 12) & 63);
          b[at++] = 0x80 | ((cp >> 6) & 63);
          b[at++] = 0x80 | (cp & 63);
          i++;
        } else {
          // A lone surrogate: JSON.stringify writes it as an escape (well-formed JSON.stringify).
          b[at++] = 0x5c;
          b[at++] = 0x75;
          b[at++] = HEX[c >> 12]!;
          b[at++] = HEX[(c >> 8) & 15]!;
          b[at++] = HEX[(c >> 4) & 15]!;
          b[at++] = HEX[c & 15]!;
        }
      }
    }
    this.at = at;
  }

  /** A non-negative safe integer's decimal digits (what String(n) gives for it), without making the string. */
  uint(n: number): void {
    if (!(n >= 0 && Number.isSafeInteger(n))) throw new RangeError(`JsonBuffer.uint: ${n}`);
    let digits = 1;
    for (let p = 10; p <= n && digits < 16; p *= 10) digits++;
    this.reserve(digits);
    const b = this.bytes;
    let at = this.at + digits;
    this.at = at;
    do {
      const q = Math.floor(n / 10);
      b[--at] = 0x30 + (n - q * 10);
      n = q;
    } while (n > 0);
  }

  /**
   * A header name (an HTTP token) lower-cased, as a JSON string, without
   * making the lower-case string. Anything outside a token's characters goes
   * through toLowerCase() and string().
   */
  lowerToken(s: string): void {
    const n = s.length;
    this.reserve(n + 2);
    const b = this.bytes;
    let at = this.at;
    b[at++] = 0x22;
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      if (c <= 0x20 || c >= 0x7f || c === 0x22 || c === 0x5c) {
        this.string(s.toLowerCase());
        return;
      }
      if (c >= 0x41 && c <= 0x5a) c += 0x20;
      b[at++] = c;
    }
    b[at++] = 0x22;
    this.at = at;
  }

  /** ASCII text (numbers, literals, keys known to be plain). */
  ascii(s: string): void {
    const n = s.length;
    this.reserve(n);
    const b = this.bytes;
    let at = this.at;
    for (let i = 0; i < n; i++) b[at++] = s.charCodeAt(i);
    this.at = at;
  }
}
