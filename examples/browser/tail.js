// Browser version of `npm run pubsub -- tail --follow`: subscribe to one
// partition and show each message the gateway pushes. Offsets are exact
// 64-bit integers (bigint); the client grants credit as rows are added, so a
// busy partition never floods the page.
import { connectPubSub, text } from './portico/client/pubsub/browser.js';

const form = document.getElementById('form');
const statusEl = document.getElementById('status');
const rows = document.getElementById('messages');
let current;

function status(msg, isError) {
  statusEl.textContent = msg;
  statusEl.className = isError ? 'error' : '';
}

function addRow(m) {
  const tr = document.createElement('tr');
  for (const cell of [m.offset.toString(), text(m.key), text(m.value)]) {
    const td = document.createElement('td');
    td.textContent = cell;
    tr.appendChild(td);
  }
  rows.appendChild(tr);
}

async function tail(opts) {
  const client = await connectPubSub(opts.ws);
  current = client;
  const partition = Number(opts.partition || 0);
  let from;
  if (opts.from === 'earliest' || opts.from === 'latest') from = opts.from;
  else if (/^\d+$/.test(opts.from)) from = BigInt(opts.from);
  else throw new Error('from must be earliest, latest or an offset');
  const sub = await client.subscribe(opts.topic, partition, { from, credit: 100 });
  status('following ' + opts.topic + '/' + partition + ' from offset ' + sub.next.toString());
  for await (const m of sub) {
    if (current !== client) break;
    addRow(m);
  }
}

function run(opts) {
  if (current) current.close();
  current = undefined;
  rows.textContent = '';
  status('connecting to ' + opts.ws);
  tail(opts).catch((err) => status('error: ' + err.message, true));
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  run(Object.fromEntries(new FormData(form)));
});

const q = new URLSearchParams(location.search);
for (const [k, v] of q) if (form.elements[k]) form.elements[k].value = v;
if (q.get('ws') && q.get('topic')) run(Object.assign(Object.fromEntries(new FormData(form)), Object.fromEntries(q)));
