#!/usr/bin/env python3
"""Writes the proxy integration scenarios (tests/integration/data/*.json) in
the corpus format of tests/data/README.md. Run from this folder."""
import json

TOOLS = [
    {"type": "function", "function": {"name": "read_file", "description": "Read a file",
     "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "offset": {"type": "integer"}},
                    "required": ["path"]}}},
    {"type": "function", "function": {"name": "bash", "description": "Run a command",
     "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}},
]

def chunk(i, delta, finish=None, **extra):
    c = {"id": "chatcmpl-px%d" % i, "object": "chat.completion.chunk", "created": 1763900000,
         "model": "scripted", "system_fingerprint": "b6000-scripted",
         "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
    c.update(extra)
    return c

def request(text, stream=True, usage=False):
    r = {"model": "scripted", "stream": stream, "tools": TOOLS,
         "messages": [{"role": "system", "content": "You are a coding agent."},
                      {"role": "user", "content": text}]}
    if usage:
        r["stream_options"] = {"include_usage": True}
    return r

def write(name, desc, kind, expect, req, chunks):
    doc = {"name": name, "description": desc, "kind": kind, "expect": expect,
           "request": req, "chunks": chunks + ["[DONE]"]}
    with open("data/%s.json" % name, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")

def pieces(s, n):
    return [s[i:i + n] for i in range(0, len(s), n)]

# 1. healthy text with reasoning, timings and an include_usage chunk
ch = [chunk(1, {"role": "assistant", "content": None})]
for p in pieces("The user wants a summary. I will read the README first.", 7):
    ch.append(chunk(1, {"reasoning_content": p}))
for p in pieces("Here is the plan:\n1. Read the README.\n2. List the sources.\n3. Summarize \u00e9l\u00e8ves \u2713 and quotes \"like this\".\n", 5):
    ch.append(chunk(1, {"content": p}))
ch.append(chunk(1, {}, "stop", timings={"prompt_n": 40, "predicted_n": 31, "predicted_per_second": 81.5}))
u = chunk(1, {})
u["choices"] = []
u["usage"] = {"prompt_tokens": 40, "completion_tokens": 31, "total_tokens": 71}
ch.append(u)
write("px-healthy-text", "A plain answer with reasoning_content, llama.cpp timings and a usage chunk.",
      "healthy", {"trip": False}, request("Summarize the project.", usage=True), ch)

# 2. healthy tool calls, llama.cpp style: one call per delta, id/type on the first delta only
ch = [chunk(2, {"role": "assistant", "content": None})]
ch.append(chunk(2, {"content": "Let me look at the files."}))
for k, (name, args) in enumerate([("read_file", '{"path": "src/main.c", "offset": 0}'),
                                   ("bash", '{"command": "ls -la src && grep -rn TODO src"}')]):
    ch.append(chunk(2, {"tool_calls": [{"index": k, "id": "call_%d" % k, "type": "function",
                                        "function": {"name": name, "arguments": ""}}]}))
    for p in pieces(args, 4):
        ch.append(chunk(2, {"tool_calls": [{"index": k, "function": {"arguments": p}}]}))
ch.append(chunk(2, {}, "tool_calls"))
write("px-healthy-tools", "Two tool calls streamed llama.cpp-style, arguments in 4-byte fragments.",
      "healthy", {"trip": False}, request("Find the TODOs."), ch)

# 3. loop: a word flood in the content
ch = [chunk(3, {"role": "assistant", "content": None})]
ch.append(chunk(3, {"content": "I will now explain the the"}))
for _ in range(400):
    ch.append(chunk(3, {"content": " the"}))
ch.append(chunk(3, {}, "length"))
write("px-loop-words", "A word flood: ' the' repeated until max_tokens.", "loop",
      {"trip": True, "onset_chunk": 3, "by_chunk": 60}, request("Explain the code."), ch)

# 4. loop: the same tool called again and again (name run, identical calls)
ch = [chunk(4, {"role": "assistant", "content": None})]
for k in range(30):
    ch.append(chunk(4, {"tool_calls": [{"index": k, "id": "call_r%d" % k, "type": "function",
                                        "function": {"name": "read_file", "arguments": ""}}]}))
    for p in pieces('{"path": "src/missing.c"}', 6):
        ch.append(chunk(4, {"tool_calls": [{"index": k, "function": {"arguments": p}}]}))
ch.append(chunk(4, {}, "tool_calls"))
write("px-loop-calls", "The same read_file call 30 times in one answer.", "loop",
      {"trip": True, "onset_chunk": 7, "by_chunk": 40}, request("Read the missing file."), ch)

# 5. loop: a preamble, then one 115-byte paragraph again and again, 5 bytes a
# chunk (the text loop tests/agents' scripted model plays to real clients:
# issue 12 items 11-13 drive the history check with what the proxy delivers)
PARA = ("The build uses CMake and the sources live in src/. To build it, run cmake "
        "and then make; the tests run with ctest. ")
ch = [chunk(5, {"role": "assistant", "content": None})]
for p in pieces("Here is how the build works.\n\n" + PARA * 40, 5):
    ch.append(chunk(5, {"content": p}))
ch.append(chunk(5, {}, "length"))
u = chunk(5, {})
u["choices"] = []
u["usage"] = {"prompt_tokens": 812, "completion_tokens": 1200, "total_tokens": 2012}
ch.append(u)
write("px-loop-paragraph", "A preamble, then one 115-byte paragraph repeated until max_tokens, "
      "5 bytes a chunk.", "loop", {"trip": True, "onset_chunk": 30, "by_chunk": 80},
      request("Explain how to build this project.", usage=True), ch)
