/**
 * Percent-encodes control characters (0x00-0x1f, 0x7f) and nothing else, as
 * APISIX's core.utils.escape_uri_control_chars: a variable's value (a decoded
 * `$uri` may hold CR/LF) written into a response header can then never split
 * the response or break Node's header check.
 */
const HAS_CONTROL = /[\x00-\x1f\x7f]/;
const CONTROLS = /[\x00-\x1f\x7f]/g;

export function escapeControlChars(s: string): string {
  return HAS_CONTROL.test(s) ? s.replace(CONTROLS, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')) : s;
}
