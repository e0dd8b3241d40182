// What one client did in one scenario, from the tap's and the model's logs.
//
// usage: node summarize.mjs DIR CLIENT SCENARIO   writes DIR/summary.json, prints a table
//        node summarize.mjs --check EXPECT OUT    compares OUT/*/*/summary.json with EXPECT
//
// Per turn: the client's exit status, the requests it sent to loopwarden, how
// many reached the engine (a request reached it when the model got the same
// bytes: loopwarden forwards bodies unchanged), how many answers were cut by a
// guard (finish "length" or "stop" with the "loopwarden" object, engine
// called), how many loopwarden answered from the history (the "loopwarden"
// object, engine not called), and per request max_tokens, include_usage,
// whether a usage chunk came back, and the last user message.
//
// EXPECT lines: `CLIENT SCENARIO TURN FIELD OP VALUE` ('#' starts a comment),
// OP one of = <= >=; FIELD one of the per-turn numbers: ended (1 when the
// client did not time out), rc, client_requests, engine_requests, cuts,
// history_answers, guard_answers (cuts + history answers: what loopwarden
// ended itself), usage_missing_on_cut, tool_calls_before_cut. A client or
// scenario that was not run (not installed, not asked for) is not checked.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';

const readLines = (f) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);
const sha = (f) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const pad = (n) => String(n).padStart(3, '0');

function textOf(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => p?.text ?? '').join(' ');
  return '';
}

function summarise(dir, client, scenario) {
  const turns = fs.readFileSync(path.join(dir, 'turns.txt'), 'utf8').trim().split('\n').map((l) => l.split(' ').map(Number));
  const tap = readLines(path.join(dir, 'client', 'client.jsonl'));
  const engine = readLines(path.join(dir, 'engine', 'engine.jsonl'));
  const engineByHash = new Map();
  for (const e of engine) {
    const f = path.join(dir, 'engine', `engine-${pad(e.n)}.json`);
    if (fs.existsSync(f)) engineByHash.set(sha(f), e);
  }
  const requests = tap.filter((t) => t.method === 'POST').map((t) => {
    const f = path.join(dir, 'client', `client-${pad(t.n)}.json`);
    const body = fs.existsSync(f) ? JSON.parse(fs.readFileSync(f, 'utf8')) : {};
    const e = fs.existsSync(f) ? engineByHash.get(sha(f)) : undefined;
    const lastUser = textOf((body.messages ?? []).findLast((m) => m.role === 'user')?.content).replace(/\s+/g, ' ').trim();
    return {
      n: t.n, reached_engine: !!e, model_plan: e?.kind ?? null, engine_chunks_written: e?.chunks_written ?? null,
      engine_hung_up: e?.hung_up ?? null, max_tokens: t.max_tokens ?? t.max_completion_tokens,
      include_usage: t.include_usage, messages: t.messages, roles: t.roles, finish: t.finish,
      guard: t.loopwarden?.guard ?? null, detail: t.loopwarden?.detail ?? null, usage: t.usage,
      content_chars: t.content_chars, tool_calls: t.tool_calls, error: t.error,
      last_user: lastUser.slice(-120),
    };
  });
  const out = { client, scenario, turns: [] };
  let prevC = 0, prevE = 0;
  for (const [turn, rc, nc, ne] of turns) {
    const reqs = requests.filter((r) => r.n > prevC && r.n <= nc);
    const cut = reqs.filter((r) => r.guard && r.reached_engine);
    out.turns.push({
      turn, rc, ended: rc !== 124 && rc !== 137 ? 1 : 0,
      client_requests: reqs.length, engine_requests: ne - prevE,
      cuts: cut.length, history_answers: reqs.filter((r) => r.guard && !r.reached_engine).length,
      guard_answers: reqs.filter((r) => r.guard).length,
      usage_missing_on_cut: reqs.filter((r) => r.guard && r.include_usage && !r.usage).length,
      tool_calls_before_cut: cut.reduce((n, r) => n + r.tool_calls, 0),
      requests: reqs,
    });
    prevC = nc;
    prevE = ne;
  }
  fs.writeFileSync(path.join(dir, 'summary.json'), JSON.stringify(out, null, 1) + '\n');
  const lines = [`== ${client} / ${scenario}`];
  for (const t of out.turns) {
    lines.push(`turn ${t.turn}: rc ${t.rc}${t.ended ? '' : ' (timed out)'}, ${t.client_requests} client requests, ${t.engine_requests} reached the engine, ${t.cuts} cut, ${t.history_answers} answered from the history`);
    for (const r of t.requests)
      lines.push(`  #${r.n} ${r.reached_engine ? 'engine' : 'proxy '} max_tokens=${r.max_tokens ?? '-'} msgs=${r.messages} ${r.roles.padEnd(12)} finish=${r.finish.join(',') || '-'}${r.guard ? ` guard=${r.guard}` : ''} usage=${r.usage ? 'yes' : r.include_usage ? 'MISSING' : 'not asked'} calls=${r.tool_calls} plan=${r.model_plan ?? '-'} | ${r.last_user.slice(-60)}`);
  }
  return lines.join('\n');
}

function check(expectFile, outDir) {
  const sums = new Map();
  for (const c of fs.readdirSync(outDir)) {
    const cd = path.join(outDir, c);
    if (!fs.statSync(cd).isDirectory()) continue;
    for (const s of fs.readdirSync(cd)) {
      const f = path.join(cd, s, 'summary.json');
      if (fs.existsSync(f)) sums.set(`${c} ${s}`, JSON.parse(fs.readFileSync(f, 'utf8')));
    }
  }
  let bad = 0, checked = 0;
  for (const raw of fs.readFileSync(expectFile, 'utf8').split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const [client, scenario, turn, field, op, value, extra] = line.split(/\s+/);
    if (!value || extra !== undefined || !['=', '<=', '>='].includes(op)) {
      console.log(`${expectFile}: bad line: ${raw}`);
      bad++;
      continue;
    }
    const s = sums.get(`${client} ${scenario}`);
    if (!s) continue; // client skipped or scenario not run
    const t = s.turns.find((x) => String(x.turn) === turn);
    const got = t ? t[field] : undefined;
    const want = Number(value);
    const ok = typeof got === 'number' && (op === '=' ? got === want : op === '<=' ? got <= want : got >= want);
    checked++;
    if (!ok) {
      bad++;
      console.log(`FAIL ${client} ${scenario} turn ${turn}: ${field} is ${got}, expected ${op} ${value}`);
    }
  }
  console.log(`${checked} expectations checked, ${bad} failed`);
  if (checked === 0) { console.log('nothing was checked'); return 1; }
  return bad ? 1 : 0;
}

const a = process.argv.slice(2);
if (a[0] === '--check') process.exit(check(a[1], a[2]));
console.log(summarise(a[0], a[1], a[2]));
