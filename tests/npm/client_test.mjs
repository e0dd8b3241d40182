// The official `openai` client through loopwarden: streaming and not, with
// tool calls, and a looping answer cut with finish_reason "length".
// usage: node client_test.mjs BASE_URL   (scenario chosen by the model name)
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.argv[2];
const client = new OpenAI({ baseURL, apiKey: 'sk-loopwarden-test', maxRetries: 0, timeout: 20000 });
const messages = [{ role: 'user', content: 'Find the TODOs.' }];
const tools = [{ type: 'function', function: { name: 'read_file', parameters: { type: 'object', properties: { path: { type: 'string' } } } } }];

async function streamed(model) {
  const stream = await client.chat.completions.create({ model, messages, tools, stream: true });
  let content = '', finish = null, last = null;
  const calls = [];
  for await (const chunk of stream) {
    last = chunk;
    const choice = chunk.choices?.[0];
    if (!choice) continue;
    if (choice.delta?.content) content += choice.delta.content;
    for (const tc of choice.delta?.tool_calls ?? []) {
      calls[tc.index] ??= { id: '', name: '', arguments: '' };
      if (tc.id) calls[tc.index].id = tc.id;
      if (tc.function?.name) calls[tc.index].name += tc.function.name;
      if (tc.function?.arguments) calls[tc.index].arguments += tc.function.arguments;
    }
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  return { content, finish, calls, last };
}

let passed = 0;
async function check(name, fn) {
  await fn();
  passed++;
  console.log(`ok - ${name}`);
}

await check('streaming answer with tool calls', async () => {
  const r = await streamed('px-healthy-tools');
  assert.equal(r.finish, 'tool_calls');
  assert.equal(r.content, 'Let me look at the files.');
  assert.equal(r.calls.length, 2);
  assert.equal(r.calls[0].id, 'call_0');
  assert.equal(r.calls[0].name, 'read_file');
  assert.deepEqual(JSON.parse(r.calls[0].arguments), { path: 'src/main.c', offset: 0 });
  assert.equal(r.calls[1].name, 'bash');
  assert.deepEqual(JSON.parse(r.calls[1].arguments), { command: 'ls -la src && grep -rn TODO src' });
});

await check('non-streaming answer with tool calls', async () => {
  const r = await client.chat.completions.create({ model: 'px-healthy-tools', messages, tools });
  const m = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(m.tool_calls.length, 2);
  assert.equal(m.tool_calls[0].function.name, 'read_file');
  assert.deepEqual(JSON.parse(m.tool_calls[1].function.arguments), { command: 'ls -la src && grep -rn TODO src' });
});

await check('streaming text with reasoning and usage', async () => {
  const stream = await client.chat.completions.create({ model: 'px-healthy-text', messages, stream: true, stream_options: { include_usage: true } });
  let content = '', usage = null, finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices?.[0];
    if (c?.delta?.content) content += c.delta.content;
    if (c?.finish_reason) finish = c.finish_reason;
  }
  assert.equal(finish, 'stop');
  assert.match(content, /^Here is the plan:/);
  assert.equal(usage.total_tokens, 71);
});

await check('a looping stream ends with finish_reason "length" and the loopwarden object', async () => {
  const r = await streamed('px-loop-words');
  assert.equal(r.finish, 'length');
  assert.ok(r.last.loopwarden, 'the final chunk names the guard');
  assert.equal(typeof r.last.loopwarden.guard, 'string');
  assert.ok(r.content.length < 400 * 4, 'the loop was cut early');
});

await check('a looping tool-call stream never delivers the looping call', async () => {
  const r = await streamed('px-loop-calls');
  assert.equal(r.finish, 'length');
  assert.ok(r.calls.length < 30);
  for (const c of r.calls) JSON.parse(c.arguments); // every delivered call is complete
});

await check('a non-streaming loop is truncated with finish_reason "length"', async () => {
  const r = await client.chat.completions.create({ model: 'px-loop-words', messages });
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.ok(r.choices[0].message.content.startsWith('I will now explain'));
});

await check('models are relayed', async () => {
  const list = await client.models.list();
  const ids = [];
  for await (const m of list) ids.push(m.id);
  assert.deepEqual(ids, ['scripted']);
});

await check('a request loopwarden refuses surfaces as an APIError (400)', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'x', messages: [] }),
    (e) => e.status === 400 && /messages/.test(e.message));
});

console.log(`${passed} passed`);
