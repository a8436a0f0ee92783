/* global protobuf, Long */
// Browser version of examples/kafka-tail.ts: list the start offset, then
// follow one partition with fetches. Offsets stay exact 64-bit integers
// because long.js is loaded before protobufjs.
'use strict';

(function () {
  const form = document.getElementById('form');
  const statusEl = document.getElementById('status');
  const rows = document.getElementById('messages');
  const text = new TextDecoder();
  let protoTypes;
  let current;

  function status(msg, isError) {
    statusEl.textContent = msg;
    statusEl.className = isError ? 'error' : '';
  }

  async function loadProto() {
    if (protoTypes) return protoTypes;
    protobuf.util.Long = Long;
    protobuf.configure();
    const root = new protobuf.Root();
    // keepCase: the field names stay as in the .proto (cmd_kafka_fetch, not cmdKafkaFetch)
    await root.load('pubsub.proto', { keepCase: true });
    protoTypes = { Req: root.lookupType('PubSubReq'), Resp: root.lookupType('PubSubResp') };
    return protoTypes;
  }

  function connect(url, types) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      const pending = new Map();
      let seq = 0;
      ws.onmessage = (ev) => {
        const resp = types.Resp.decode(new Uint8Array(ev.data));
        const key = Long.fromValue(resp.sequence).toString();
        const done = pending.get(key);
        if (done) {
          pending.delete(key);
          done(resp);
        }
      };
      ws.onopen = () =>
        resolve({
          ws,
          request(command, body) {
            seq += 1;
            const msg = { sequence: seq };
            msg[command] = body;
            ws.send(types.Req.encode(types.Req.fromObject(msg)).finish());
            return new Promise((res, rej) => {
              pending.set(String(seq), res);
              ws.addEventListener('close', () => rej(new Error('connection closed')), { once: true });
            });
          },
        });
      ws.onerror = () => reject(new Error('cannot connect to ' + url));
    });
  }

  function checked(resp) {
    if (resp.error_resp) throw new Error(resp.error_resp.message);
    return resp;
  }

  // protobufjs reports an absent bytes field as an empty plain array, not a Uint8Array.
  function str(bytes) {
    return bytes && bytes.length ? text.decode(new Uint8Array(bytes)) : '';
  }

  function addRow(m) {
    const tr = document.createElement('tr');
    for (const cell of [Long.fromValue(m.offset).toString(), str(m.key), str(m.value)]) {
      const td = document.createElement('td');
      td.textContent = cell;
      tr.appendChild(td);
    }
    rows.appendChild(tr);
  }

  async function tail(opts) {
    const types = await loadProto();
    const conn = await connect(opts.ws, types);
    current = conn;
    const partition = Number(opts.partition || 0);
    let offset;
    if (opts.from === 'earliest' || opts.from === 'latest') {
      const r = checked(await conn.request('cmd_kafka_list_offset', { topic: opts.topic, partition, timestamp: opts.from === 'earliest' ? -2 : -1 }));
      offset = Long.fromValue(r.kafka_list_offset_resp.offset);
    } else if (/^\d+$/.test(opts.from)) {
      offset = Long.fromString(opts.from);
    } else {
      throw new Error('from must be earliest, latest or an offset');
    }
    status('following ' + opts.topic + '/' + partition + ' from offset ' + offset.toString());
    while (current === conn) {
      const r = checked(await conn.request('cmd_kafka_fetch', { topic: opts.topic, partition, offset }));
      let got = 0;
      for (const m of r.kafka_fetch_resp.messages) {
        const o = Long.fromValue(m.offset);
        // A fetch may start at the beginning of a batch, before the offset asked for.
        if (o.lessThan(offset)) continue;
        addRow(m);
        offset = o.add(1);
        got++;
      }
      if (got === 0) await new Promise((res) => setTimeout(res, Number(opts.interval || 500)));
    }
  }

  function run(opts) {
    if (current) current.ws.close();
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
})();
