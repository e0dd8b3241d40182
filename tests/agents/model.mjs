// A scripted looping model: an OpenAI-compatible chat-completions server that
// answers like llama-server does (SSE chunks, `delta.role` first, one tool call
// per delta, `delta: {}` + finish_reason last, the usage chunk when
// stream_options.include_usage), deciding each answer from the request the way
// a deterministic (temperature 0) local model that is stuck would: the same
// request always gets the same answer.
//
// usage: node model.mjs --log DIR [--listen PORT] [--port-file F]
//                       [--after-cut loop|healthy] [--delay-ms N]
//
// The task is chosen by a tag in the latest user instruction:
//   [lw:text-loop]  a short preamble, then one paragraph repeated until
//                   max_tokens (one chunk per token; finish "length" if nobody
//                   cuts it): the loop the repeat guard cuts.
//   [lw:think-loop] the same, in reasoning_content (no visible text at all).
//   [lw:call-loop]  the same read call 30 times in one answer (dedup cuts it).
//   [lw:fail-loop]  one read of a missing file per answer, the same call every
//                   turn whatever the tool says (failure / history check).
//   [lw:reread-loop] one read of an existing file (README.md) per answer, the
//                   same call every turn though the result never changes
//                   (cross_turn / the history check).
//   [lw:healthy]    a short plain answer, finish "stop".
// A later untagged user message that asks to continue or resume (Qwen Code's
// "Output token limit hit. Resume directly...") keeps the task of the last
// tagged one (--after-cut loop, the default: a stuck model stays stuck) or
// gets a healthy answer (--after-cut healthy); any other untagged user message
// after the task is a side job and gets a healthy answer. After a tool result,
// text-loop, think-loop and call-loop answer healthily (the call ran, the
// model moves on); fail-loop and reread-loop call again (up to 16 calls).
// Requests of a client's own side jobs (session titles, summaries,
// compaction: no tag, or no tools and a title/summary prompt) get a short
// healthy answer.
//
// Every request is saved as DIR/engine-NNN.json (the body byte for byte) and
// summarised as one line of DIR/engine.jsonl: the plan, max_tokens,
// include_usage, chunks written, whether the client hung up first. No
// dependencies beyond Node (>= 18).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
function opt(name, def) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
}
const logDir = opt('--log', null);
const afterCut = opt('--after-cut', 'loop');
const delayMs = Number(opt('--delay-ms', '2'));
const portFile = opt('--port-file', null);
if (!logDir || !['loop', 'healthy'].includes(afterCut)) {
  console.error('usage: node model.mjs --log DIR [--listen PORT] [--port-file F] [--after-cut loop|healthy] [--delay-ms N]');
  process.exit(2);
}
fs.mkdirSync(logDir, { recursive: true });

const PARAGRAPH = 'The build uses CMake and the sources live in src/. To build it, run cmake and then make; the tests run with ctest. ';
const THOUGHT = 'I should look at CMakeLists.txt first, then check how the tests are run, and then explain the steps. ';
const RESUME = /\b(resume|continue|keep going|go on|output token limit)\b/i;
const MISSING = '/nonexistent/loopwarden/missing-config.yaml';
const MAX_TEXT_CHUNKS = 3000; // a real model stops at max_tokens; so do we, within reason
const FAIL_GIVE_UP = 16;      // fail-loop gives up after this many calls in the history

let counter = 0;
const created = Math.floor(Date.now() / 1000);

function text(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content))
    return content.map((p) => (typeof p === 'string' ? p : p?.text ?? '')).join('');
  return '';
}

// The read-like tool of this client and arguments naming `file`: every
// required string property gets the path (opencode `filePath`, pi `path`,
// Qwen Code `absolute_path`, cn `filepath`…).
function readCall(tools, file) {
  const fns = (tools ?? []).map((t) => t.function ?? t).filter((f) => f?.name);
  const fn = fns.find((f) => /^read(_?file)?$/i.test(f.name)) ?? fns.find((f) => /read/i.test(f.name)) ?? fns[0];
  if (!fn) return null;
  const props = fn.parameters?.properties ?? {};
  const req = fn.parameters?.required ?? Object.keys(props).slice(0, 1);
  const a = {};
  for (const k of req) if (props[k]?.type === 'string' || !props[k]?.type) a[k] = file;
  if (!Object.keys(a).length) a[Object.keys(props)[0] ?? 'path'] = file;
  return { name: fn.name, arguments: JSON.stringify(a) };
}

// What the model answers to <req>: { kind, why, ... }.
function plan(req) {
  const msgs = Array.isArray(req.messages) ? req.messages : [];
  const tools = Array.isArray(req.tools) && req.tools.length ? req.tools : null;
  const last = msgs[msgs.length - 1] ?? {};
  const system = msgs.filter((m) => m.role === 'system' || m.role === 'developer').map((m) => text(m.content)).join('\n');
  let tagAt = -1, task = null;
  for (let i = msgs.length - 1; i >= 0 && tagAt < 0; i--) {
    if (msgs[i].role !== 'user') continue;
    const m = /\[lw:([a-z-]+)\]/.exec(text(msgs[i].content));
    if (m) { tagAt = i; task = m[1]; }
  }
  const lastUserAt = msgs.findLastIndex((m) => m.role === 'user');
  const calls = msgs.slice(tagAt + 1).reduce((n, m) => n + (m.role === 'assistant' ? (m.tool_calls?.length ?? 0) : 0), 0);
  const sideJob = !task || (!tools && /title|summar|compact/i.test(system)) ||
    (lastUserAt !== tagAt && /summar|compact/i.test(text(last.content)));
  if (sideJob)
    return { kind: 'healthy', why: 'side job (no task tag, or a title/summary request)', content: 'Build and test notes' };
  // An untagged user turn after the task: a client's "continue" / "resume"
  // turn, or a side job quoting the conversation (Qwen Code's memory
  // extraction) which gets a healthy answer.
  const resumed = lastUserAt > tagAt;
  if (resumed && !RESUME.test(text(msgs[lastUserAt].content)))
    return { kind: 'healthy', why: 'untagged user turn that is not a resume (a side job)', content: 'Nothing to add.' };
  if (resumed && afterCut === 'healthy')
    return { kind: 'healthy', why: 'untagged user turn after the task (--after-cut healthy)', content: 'Done: the build uses CMake; run cmake, make, ctest.' };
  const afterTool = last.role === 'tool' || last.role === 'function';
  switch (task) {
    case 'text-loop':
      if (afterTool) return { kind: 'healthy', why: 'tool result', content: 'Done: the build uses CMake.' };
      return { kind: 'text-loop', why: resumed ? 'resume turn, still stuck' : 'task', preamble: 'Here is how the build works.\n\n', unit: PARAGRAPH };
    case 'think-loop':
      if (afterTool) return { kind: 'healthy', why: 'tool result', content: 'Done: the build uses CMake.' };
      return { kind: 'think-loop', why: resumed ? 'resume turn, still stuck' : 'task', preamble: 'The user wants the build steps. ', unit: THOUGHT };
    case 'call-loop':
      if (afterTool) return { kind: 'healthy', why: 'tool result', content: 'Done: I read README.md; it says to run cmake, make and ctest.' };
      return { kind: 'call-loop', why: 'task', content: 'Let me read the README.', call: readCall(tools, 'README.md'), times: 30 };
    case 'fail-loop':
      if (calls >= FAIL_GIVE_UP) return { kind: 'healthy', why: `gave up after ${calls} calls`, content: 'I could not read the configuration file.' };
      return { kind: 'fail-loop', why: afterTool ? 'tool failed, same call again' : 'task', content: 'I will read the configuration file.', call: readCall(tools, MISSING), times: 1 };
    case 'reread-loop':
      if (calls >= FAIL_GIVE_UP) return { kind: 'healthy', why: `gave up after ${calls} calls`, content: 'The README says to build with cmake.' };
      return { kind: 'reread-loop', why: afterTool ? 'same result, same call again' : 'task', content: 'Let me check the README.', call: readCall(tools, 'README.md'), times: 1 };
    default:
      return { kind: 'healthy', why: `task ${task}`, content: 'Hello! The build uses CMake: run cmake, make and ctest.' };
  }
}

// The answer as a list of chunk deltas, then the finish reason.
function deltas(p, maxTokens) {
  const out = [];
  let finish = 'stop';
  if (p.kind === 'text-loop' || p.kind === 'think-loop') {
    const key = p.kind === 'text-loop' ? 'content' : 'reasoning_content';
    out.push({ [key]: p.preamble });
    const words = p.unit.match(/\S+\s*/g);
    const n = Math.min(maxTokens, MAX_TEXT_CHUNKS);
    for (let i = 0; out.length < n; i++) out.push({ [key]: words[i % words.length] });
    finish = 'length';
  } else if (p.call !== undefined) {
    for (const w of p.content.match(/\S+\s*/g)) out.push({ content: w });
    if (!p.call) return { out, finish: 'stop' };
    for (let i = 0; i < p.times; i++) {
      out.push({ tool_calls: [{ index: i, id: `call_${counter}_${i}`, type: 'function', function: { name: p.call.name, arguments: '' } }] });
      const a = p.call.arguments;
      for (let j = 0; j < a.length; j += 12) out.push({ tool_calls: [{ index: i, function: { arguments: a.slice(j, j + 12) } }] });
    }
    finish = 'tool_calls';
  } else {
    for (const w of p.content.match(/\S+\s*/g)) out.push({ content: w });
  }
  return { out, finish };
}

function usageOf(req, n) {
  const prompt = Math.ceil(JSON.stringify(req.messages ?? []).length / 4);
  return { prompt_tokens: prompt, completion_tokens: n, total_tokens: prompt + n };
}

function logLine(o) {
  fs.appendFileSync(path.join(logDir, 'engine.jsonl'), JSON.stringify(o) + '\n');
}

function chat(req, body, res, n) {
  const p = plan(req);
  const maxTokens = req.max_tokens ?? req.max_completion_tokens ?? 4096;
  const { out, finish } = deltas(p, maxTokens);
  const id = `chatcmpl-lw${n}`;
  const model = req.model ?? 'scripted';
  const entry = {
    n, kind: p.kind, why: p.why, stream: !!req.stream, model,
    max_tokens: req.max_tokens ?? null, max_completion_tokens: req.max_completion_tokens ?? null,
    include_usage: !!req.stream_options?.include_usage, messages: req.messages?.length ?? 0,
    roles: (req.messages ?? []).map((m) => m.role[0]).join(''),
    tools: (req.tools ?? []).map((t) => (t.function ?? t).name),
    last_user: text((req.messages ?? []).findLast((m) => m.role === 'user')?.content).slice(0, 160),
    chunks_total: out.length + 1, chunks_written: 0, hung_up: false, finish,
  };
  if (!req.stream) {
    const msg = { role: 'assistant', content: out.map((d) => d.content ?? '').join('') || null };
    const calls = [];
    for (const d of out) for (const tc of d.tool_calls ?? []) {
      calls[tc.index] ??= { id: tc.id, type: 'function', function: { name: tc.function.name, arguments: '' } };
      calls[tc.index].function.arguments += tc.function.arguments ?? '';
    }
    if (calls.length) msg.tool_calls = calls;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ id, object: 'chat.completion', created, model, choices: [{ index: 0, message: msg, finish_reason: finish }], usage: usageOf(req, out.length) }));
    entry.chunks_written = entry.chunks_total;
    logLine(entry);
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  const chunk = (delta, fr) => ({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: 'b6000-lw-model', choices: [{ index: 0, delta, finish_reason: fr, logprobs: null }] });
  const events = [chunk({ role: 'assistant', content: null }, null), ...out.map((d) => chunk(d, null)), chunk({}, finish)];
  if (req.stream_options?.include_usage)
    events.push({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: 'b6000-lw-model', choices: [], usage: usageOf(req, out.length) });
  let i = 0, done = false;
  res.on('close', () => {
    if (!done) { entry.hung_up = true; entry.chunks_written = i; logLine(entry); done = true; }
  });
  const step = () => {
    if (done) return;
    if (i < events.length) {
      res.write(`data: ${JSON.stringify(events[i++])}\n\n`);
      if (delayMs > 0) setTimeout(step, delayMs); else setImmediate(step);
      return;
    }
    res.end('data: [DONE]\n\n');
    done = true;
    entry.chunks_written = i;
    logLine(entry);
  };
  step();
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const url = req.url.replace(/\?.*$/, '');
    if (req.method === 'GET' && /\/models$/.test(url)) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'scripted', object: 'model', created, owned_by: 'loopwarden-tests' }] }));
      return;
    }
    if (req.method === 'GET' && url === '/health') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"status":"ok"}');
      return;
    }
    if (req.method !== 'POST' || !/\/chat\/completions$/.test(url)) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `no route ${req.method} ${url}`, type: 'not_found_error', code: 404 } }));
      return;
    }
    const body = Buffer.concat(chunks);
    const n = ++counter;
    fs.writeFileSync(path.join(logDir, `engine-${String(n).padStart(3, '0')}.json`), body);
    let parsed;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch (e) {
      res.writeHead(400, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `body is not JSON: ${e.message}`, type: 'invalid_request_error', code: 400 } }));
      return;
    }
    chat(parsed, body, res, n);
  });
});
server.listen(Number(opt('--listen', '0')), '127.0.0.1', () => {
  const port = server.address().port;
  if (portFile) fs.writeFileSync(portFile, `${port}\n`);
  console.log(`lw-model: listening on 127.0.0.1:${port} (after-cut ${afterCut})`);
});
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => { server.close(); process.exit(0); });
