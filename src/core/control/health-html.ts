/**
 * The control API's health page for browsers (`Accept: text/html`), the
 * table apisix/control/v1.lua renders: one row per node, unhealthy rows red.
 */
import type { CheckerReport } from '../upstream/index.js';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escape(text: string | number): string {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

export function renderHealthHtml(reports: readonly CheckerReport[]): string {
  const rows: string[] = [];
  let i = 0;
  for (const r of reports) {
    for (const n of r.nodes) {
      i += 1;
      const ok = n.status === 'healthy' || n.status === 'mostly_healthy';
      const cells = [i, r.name, r.type, `${n.ip}:${n.port}`, n.status, n.counter.success, n.counter.tcp_failure, n.counter.http_failure, n.counter.timeout_failure];
      rows.push(`  <tr${ok ? '' : ' bgcolor="#FF0000"'}>${cells.map((c) => `<td>${escape(c)}</td>`).join('')}</tr>`);
    }
  }
  return `<html xmlns="http://www.w3.org/1999/xhtml">
<head>
  <title>Portico upstream check status</title>
</head>
<body>
<h1>Portico upstream check status</h1>
<table style="background-color:white" cellspacing="0" cellpadding="3" border="1">
  <tr bgcolor="#C0C0C0"><th>Index</th><th>Upstream</th><th>Check type</th><th>Host</th><th>Status</th><th>Success counts</th><th>TCP Failures</th><th>HTTP Failures</th><th>TIMEOUT Failures</th></tr>
${rows.join('\n')}
</table>
</body>
</html>
`;
}
