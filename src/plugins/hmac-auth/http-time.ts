/**
 * ngx.parse_http_time: the three date forms HTTP allows (RFC 9110 section
 * 5.6.7), in GMT, to whole seconds since the epoch; undefined for anything
 * else. Stricter than Date.parse, which reads many forms a signer never meant.
 */
const MONTHS: Readonly<Record<string, number>> = { Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11 };

// Sun, 06 Nov 1994 08:49:37 GMT
const IMF = /^[A-Z][a-z]{2}, (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
// Sunday, 06-Nov-94 08:49:37 GMT
const RFC850 = /^[A-Z][a-z]+, (\d{2})-([A-Z][a-z]{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
// Sun Nov  6 08:49:37 1994
const ASCTIME = /^[A-Z][a-z]{2} ([A-Z][a-z]{2}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

function seconds(year: number, month: string, day: number, h: number, m: number, s: number): number | undefined {
  const mon = MONTHS[month];
  if (mon === undefined || day < 1 || day > 31 || h > 23 || m > 59 || s > 59) return undefined;
  return Date.UTC(year, mon, day, h, m, s) / 1000;
}

export function parseHttpTime(value: string): number | undefined {
  let m = IMF.exec(value);
  if (m !== null) return seconds(Number(m[3]), m[2]!, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  m = RFC850.exec(value);
  if (m !== null) {
    const yy = Number(m[3]);
    return seconds(yy < 70 ? 2000 + yy : 1900 + yy, m[2]!, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  }
  m = ASCTIME.exec(value);
  if (m !== null) return seconds(Number(m[6]), m[1]!, Number(m[2]!.trim()), Number(m[3]), Number(m[4]), Number(m[5]));
  return undefined;
}
