// A recording relay between an agent client and loopwarden: every request is
// passed on unchanged and answered with loopwarden's bytes unchanged (streamed
// as they come), and both sides are saved, so we see exactly what the client
// sent (including requests loopwarden answers from the history without calling
// the engine, which --record does not save) and what it received.
//
// usage: node tap.mjs --to http://127.0.0.1:LW_PORT --log DIR [--listen PORT] [--port-file F]
//                     [--cut-finish stop] [--cut-usage]
//
// --cut-finish stop  emulates `proxy.cut_finish_reason: stop` until the proxy
//                    has it: in a streamed event that carries loopwarden's
//                    "loopwarden" object, finish_reason "length" becomes "stop".
// --cut-usage        when the request asked for stream_options.include_usage
//                    and a cut stream (one with the "loopwarden" object) ended
//                    without a usage chunk, insert one before [DONE]:
//                    {"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}.
// Both only touch what the client receives; the log keeps loopwarden's own
// bytes (.sse) and, when changed, what the client got (.client.sse).
//
// DIR/client-NNN.json      the request body byte for byte
// DIR/client-NNN.sse|.json the response body as the client received it
// DIR/client.jsonl         one line per request: method, path, status, stream,
//                          max_tokens, include_usage, messages, the finish
//                          reason(s) the client got, the loopwarden object,
//                          whether a usage chunk came, bytes.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 && i + 1 < args.length ? args[i + 1] : def; };
const to = new URL(opt('--to', ''));
const logDir = opt('--log', null);
const portFile = opt('--port-file', null);
const cutFinish = opt('--cut-finish', null);
const cutUsage = args.includes('--cut-usage');
if (!logDir || !to.port) {
  console.error('usage: node tap.mjs --to http://127.0.0.1:PORT --log DIR [--listen PORT] [--port-file F]');
  process.exit(2);
}
fs.mkdirSync(logDir, { recursive: true });
let counter = 0;

function summarise(reqBody, status, resBody, isSse) {
  const s = { finish: [], loopwarden: null, usage: null, content_chars: 0, tool_calls: 0, error: null };
  const take = (o) => {
    if (!o || typeof o !== 'object') return;
    if (o.error) s.error = o.error.message ?? String(o.error);
    if (o.loopwarden) s.loopwarden = o.loopwarden;
    if (o.usage) s.usage = o.usage;
    for (const c of o.choices ?? []) {
      if (c.finish_reason) s.finish.push(c.finish_reason);
      const d = c.delta ?? c.message ?? {};
      if (typeof d.content === 'string') s.content_chars += d.content.length;
      for (const tc of d.tool_calls ?? []) if (tc.id || !c.delta) s.tool_calls++;
    }
  };
  if (isSse) {
    for (const ev of resBody.split(/\r\n\r\n|\n\n|\r\r/)) {
      const data = ev.split(/\r\n|\n|\r/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (!data || data === '[DONE]') continue;
      try { take(JSON.parse(data)); } catch { s.error = `unparsable event: ${data.slice(0, 80)}`; }
    }
  } else {
    try { take(JSON.parse(resBody)); } catch { /* not JSON */ }
  }
  return s;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const n = ++counter;
    const stem = path.join(logDir, `client-${String(n).padStart(3, '0')}`);
    let parsed = null;
    if (body.length) {
      fs.writeFileSync(`${stem}.json`, body);
      try { parsed = JSON.parse(body.toString('utf8')); } catch { /* relayed as is */ }
    }
    const headers = { ...req.headers, host: to.host };
    const up = http.request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers }, (ur) => {
      const sse = /event-stream/.test(ur.headers['content-type'] ?? '');
      const rewrite = sse && (cutFinish || (cutUsage && parsed?.stream_options?.include_usage));
      res.writeHead(ur.statusCode, ur.headers);
      const got = [], sent = [];
      let pending = '', cut = false, usage = false;
      // Rewriting works on whole events: hold bytes until the blank line.
      const relay = (str) => {
        pending += str;
        let k;
        while ((k = pending.indexOf('\n\n')) >= 0) {
          let ev = pending.slice(0, k + 2);
          pending = pending.slice(k + 2);
          if (/"loopwarden"\s*:/.test(ev)) {
            cut = true;
            if (cutFinish) ev = ev.replace(/"finish_reason"\s*:\s*"length"/, `"finish_reason":"${cutFinish}"`);
          }
          if (/"usage"\s*:\s*\{/.test(ev)) usage = true;
          if (/^data: \[DONE\]/.test(ev) && cut && cutUsage && !usage && parsed?.stream_options?.include_usage) {
            const m = /"id"\s*:\s*("[^"]*")/.exec(sent.join(''));
            const u = { id: m ? JSON.parse(m[1]) : 'chatcmpl-tap', object: 'chat.completion.chunk', created: 0, model: parsed?.model ?? '', choices: [], usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 } };
            sent.push(`data: ${JSON.stringify(u)}\n\n`);
            res.write(sent[sent.length - 1]);
          }
          sent.push(ev);
          res.write(ev);
        }
      };
      ur.on('data', (c) => { got.push(c); if (rewrite) relay(c.toString('utf8')); else res.write(c); });
      ur.on('end', () => {
        if (rewrite && pending) { sent.push(pending); res.write(pending); }
        res.end();
        const text = Buffer.concat(got).toString('utf8');
        if (body.length) fs.writeFileSync(`${stem}.${sse ? 'sse' : 'out.json'}`, text);
        if (rewrite && sent.join('') !== text) fs.writeFileSync(`${stem}.client.sse`, sent.join(''));
        const line = {
          n, method: req.method, path: req.url, status: ur.statusCode,
          stream: parsed?.stream ?? null, model: parsed?.model ?? null,
          max_tokens: parsed?.max_tokens ?? null, max_completion_tokens: parsed?.max_completion_tokens ?? null,
          include_usage: parsed?.stream_options?.include_usage ?? null,
          messages: parsed?.messages?.length ?? null,
          roles: (parsed?.messages ?? []).map((m) => m.role?.[0] ?? '?').join(''),
          ...summarise(body, ur.statusCode, rewrite ? sent.join('') : text, sse), bytes: text.length,
        };
        fs.appendFileSync(path.join(logDir, 'client.jsonl'), JSON.stringify(line) + '\n');
      });
      ur.on('error', () => res.destroy());
    });
    up.on('error', (e) => {
      res.writeHead(502, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `tap: ${e.message}`, type: 'server_error', code: 502 } }));
    });
    res.on('close', () => { if (!res.writableFinished) up.destroy(); });
    up.end(body);
  });
});
server.listen(Number(opt('--listen', '0')), '127.0.0.1', () => {
  const port = server.address().port;
  if (portFile) fs.writeFileSync(portFile, `${port}\n`);
  console.log(`lw-tap: listening on 127.0.0.1:${port} -> ${to.href}`);
});
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => { server.close(); process.exit(0); });
