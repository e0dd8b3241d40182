#!/usr/bin/env python3
"""Generates the scenario corpus in tests/data/ (see tests/data/README.md).

Each scenario models a real agent session (opencode / aider / Cline-style tools)
streamed by one of three upstream styles: llama.cpp (role chunk first, one
call per delta, id/type only on a call's first delta, arguments in small
fragments, `timings` on the last chunk), vLLM (`logprobs: null`, usage null on
every chunk and a `choices: []` usage chunk) and Ollama (index 0 reused for
every call of a batch, a whole call in one delta, `reasoning`).

Run from anywhere: python3 tests/data/gen/gen_corpus.py
The output is deterministic (fixed seeds); commit the JSON it writes.
"""
import base64
import json
import os
import random
import re

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.dirname(HERE)
MAX_FILE = 200 * 1024

TOOLS = {
    "read_file": ("Read a file from the workspace", {"path": "string", "offset": "integer", "limit": "integer"}),
    "write_file": ("Create or overwrite a file", {"path": "string", "content": "string"}),
    "edit": ("Replace old_string with new_string in a file", {"path": "string", "old_string": "string", "new_string": "string"}),
    "bash": ("Run a shell command in the workspace", {"command": "string", "timeout": "integer"}),
    "grep": ("Search file contents with a regular expression", {"pattern": "string", "path": "string"}),
    "list_dir": ("List a directory", {"path": "string"}),
    "web_fetch": ("Fetch a URL and return it as markdown", {"url": "string"}),
    "glob": ("Find files by glob pattern", {"pattern": "string"}),
    "computer": ("Use a mouse and keyboard to interact with the screen, and take screenshots",
                 {"action": "string", "text": "string", "coordinate": "array"}),
    # opencode's own tools (filePath / oldString / newString)
    "read": ("Reads a file from the local filesystem", {"filePath": "string", "offset": "number", "limit": "number"}),
    "write": ("Writes a file to the local filesystem", {"filePath": "string", "content": "string"}),
    "edit@oc": ("Performs exact string replacements in files", {"filePath": "string", "oldString": "string", "newString": "string"}),
    "todowrite": ("Create and manage a structured task list", {"todos": "array"}),
    "list": ("Lists files and directories in a given path", {"path": "string"}),
    "http_request": ("Send an HTTP request", {"method": "string", "url": "string", "headers": "object", "attempt": "integer"}),
    "check_deploy": ("Status of a deployment", {"deployment": "string", "attempt": "integer"}),
    "list_issues": ("List issues of the repository", {"state": "string", "page": "integer"}),
}

SYSTEM = ("You are a coding agent working in the user's repository. Use the tools to read, "
          "search, edit and run code. Make minimal, correct changes and explain what you did.")


def tool_defs(names):
    out = []
    for n in names:
        desc, params = TOOLS[n]
        n = n.split("@")[0]
        out.append({"type": "function", "function": {
            "name": n, "description": desc,
            "parameters": {"type": "object",
                           "properties": {k: {"type": v} for k, v in params.items()},
                           "required": [list(params)[0]]}}})
    return out


def args_json(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


TOKEN_RE = re.compile(r"\s*[A-Za-z_]+|\s*[0-9]{1,3}|\s*[^\sA-Za-z_0-9]|\s+")


def tokens(text):
    """Splits text roughly the way a BPE tokenizer would emit it."""
    out = TOKEN_RE.findall(text)
    assert "".join(out) == text
    return out


class Stream:
    """Builds one streamed answer in a given upstream style."""

    def __init__(self, style, rng, model=None, usage=False):
        self.style = style
        self.rng = rng
        self.chunks = []
        self.usage = usage
        self.created = 1732000000 + rng.randrange(100000)
        self.id = "chatcmpl-" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(24))
        self.model = model or {"llama": "qwen2.5-coder-14b-instruct-q4_k_m.gguf",
                               "vllm": "Qwen/Qwen2.5-Coder-32B-Instruct",
                               "ollama": "qwen3:14b"}[style]
        self.n_calls = 0
        self.completion_tokens = 0
        if style == "llama":
            self._chunk({"role": "assistant", "content": None})
        elif style == "vllm":
            self._chunk({"role": "assistant", "content": ""})

    def _chunk(self, delta, finish=None, extra=None):
        if self.style == "llama":
            c = {"choices": [{"finish_reason": finish, "index": 0, "delta": delta}],
                 "created": self.created, "id": self.id, "model": self.model,
                 "system_fingerprint": "b4273-0cf4c0a4", "object": "chat.completion.chunk"}
        elif self.style == "vllm":
            c = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                 "model": self.model,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if self.usage:
                c["usage"] = None
        else:
            d = {"role": "assistant", "content": ""}
            d.update(delta)
            c = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                 "model": self.model, "system_fingerprint": "fp_ollama",
                 "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}
        if extra:
            c.update(extra)
        self.chunks.append(c)
        self.completion_tokens += 1
        return len(self.chunks)

    @property
    def n(self):
        """Number of chunks so far (the 1-based number of the last one)."""
        return len(self.chunks)

    def _pieces(self, text, per):
        toks = tokens(text)
        return ["".join(toks[i:i + per]) for i in range(0, len(toks), per)]

    def text(self, text, per=1, field="content", on_piece=None):
        if self.style == "ollama" and field == "reasoning_content":
            field = "reasoning"
        for p in self._pieces(text, per):
            self._chunk({field: p})
            if on_piece:
                on_piece(self.n, p)

    def reasoning(self, text, per=1, on_piece=None):
        self.text(text, per, field="reasoning_content", on_piece=on_piece)

    def call(self, name, args, per=3, on_piece=None):
        """One tool call; returns the chunk number of its last delta."""
        a = args if isinstance(args, str) else args_json(args)
        idx = self.n_calls
        self.n_calls += 1
        cid = self._call_id()
        if self.style == "ollama":
            self._chunk({"tool_calls": [{"id": cid, "index": 0, "type": "function",
                                         "function": {"name": name, "arguments": a}}]})
            if on_piece:
                on_piece(self.n, a)
            return self.n
        if self.style == "llama":
            self._chunk({"tool_calls": [{"index": idx, "id": cid, "type": "function",
                                         "function": {"name": name, "arguments": ""}}]})
        else:
            self._chunk({"tool_calls": [{"id": cid, "type": "function", "index": idx,
                                         "function": {"name": name}}]})
        for p in self._pieces(a, per):
            self._chunk({"tool_calls": [{"index": idx, "function": {"arguments": p}}]})
            if on_piece:
                on_piece(self.n, p)
        return self.n

    def _call_id(self):
        r = "".join(self.rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
        return {"llama": "call_" + r, "vllm": "chatcmpl-tool-" + r.lower(), "ollama": "call_" + r.lower()[:8]}[self.style]

    def finish(self, reason=None, prompt_tokens=1500):
        reason = reason or ("tool_calls" if self.n_calls else "stop")
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": self.completion_tokens,
                 "total_tokens": prompt_tokens + self.completion_tokens}
        if self.style == "llama":
            extra = {"timings": {"prompt_n": prompt_tokens, "prompt_ms": 812.4,
                                 "predicted_n": self.completion_tokens, "predicted_ms": 21.7 * self.completion_tokens}}
            if self.usage:
                extra["usage"] = usage
            self._chunk({}, reason, extra)
        elif self.style == "vllm":
            self._chunk({}, reason)
            if self.usage:
                self.chunks.append({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                    "model": self.model, "choices": [], "usage": usage})
        else:
            self._chunk({}, reason)
        self.chunks.append("[DONE]")


class Conv:
    """A request body: system, user, and history turns."""

    def __init__(self, rng, tools, user, stream_usage=False, model="agent-model"):
        self.rng = rng
        self.body = {"model": model, "stream": True, "temperature": 0.2,
                     "tools": tool_defs(tools), "tool_choice": "auto",
                     "messages": [{"role": "system", "content": SYSTEM},
                                  {"role": "user", "content": user}]}
        if stream_usage:
            self.body["stream_options"] = {"include_usage": True}
        self.k = 0

    def turn(self, text, calls):
        """An assistant turn with <calls> [(name, args, result)] and their results."""
        tcs = []
        for name, args, _ in calls:
            self.k += 1
            tcs.append({"id": "call_h%03d" % self.k, "type": "function",
                        "function": {"name": name, "arguments": args if isinstance(args, str) else args_json(args)}})
        m = {"role": "assistant", "content": text, "tool_calls": tcs}
        self.body["messages"].append(m)
        for tc, (_, _, result) in zip(tcs, calls):
            self.body["messages"].append({"role": "tool", "tool_call_id": tc["id"], "content": result})

    def say(self, role, text):
        self.body["messages"].append({"role": role, "content": text})


def bound_bytes(period, floor=400):
    """Loop bytes after onset within which a text loop must trip."""
    reps = 8 if period <= 32 else 5 if period <= 256 else 4 if period <= 1024 else 3
    return max(reps * period, floor)


class LoopMark:
    """Tracks bytes emitted since a loop's onset to find its by_chunk."""

    def __init__(self, need):
        self.need = need
        self.onset = None
        self.bytes = 0
        self.by = None

    def start(self, next_chunk):
        self.onset = next_chunk

    def piece(self, n, p):
        if self.onset is None:
            return
        self.bytes += len(p.encode())
        if self.by is None and self.bytes >= self.need:
            self.by = n


SCENARIOS = []


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


def write(num, slug, name, desc, kind, expect, conv, stream, config=None):
    doc = {"name": name, "description": desc, "kind": kind, "expect": expect}
    if config:
        doc["config"] = config
    doc["request"] = conv.body
    doc["chunks"] = stream.chunks
    if kind == "loop":
        assert expect["by_chunk"] is not None and expect["by_chunk"] < len(stream.chunks), name
        assert expect["onset_chunk"] <= expect["by_chunk"] or expect["by_chunk"] == 0, name
    path = os.path.join(OUT, "%03d-%s.json" % (num, slug))
    body = pretty(doc)
    if len(body.encode()) >= MAX_FILE:
        print("TOO BIG: %s (%d bytes)" % (path, len(body.encode())))
    with open(path, "w", encoding="utf-8") as f:
        f.write(body)


def pretty(doc):
    """Top-level keys one per line, request compact, one chunk per line."""
    c = lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    lines = ["{"]
    keys = [k for k in doc if k != "chunks"]
    for k in keys:
        lines.append("  %s: %s," % (c(k), c(doc[k])))
    lines.append('  "chunks": [')
    for i, ch in enumerate(doc["chunks"]):
        lines.append("    " + c(ch) + ("," if i + 1 < len(doc["chunks"]) else ""))
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


WORDS = ("parser buffer socket thread config module request handler cache token index offset "
         "length header payload stream client server worker queue timer signal mutex atomic "
         "vector matrix kernel shader device memory region page block chunk frame packet "
         "schema column table query cursor row field record migration fixture mock assert "
         "render layout widget button modal input form submit route endpoint middleware "
         "session cookie secret policy role scope tenant account invoice payment ledger "
         "balance credit debit refund export import archive backup restore snapshot "
         "replica shard cluster node leader follower quorum epoch term vote commit log "
         "checksum digest nonce cipher signature certificate chain issuer subject expiry "
         "locale timezone calendar duration interval deadline retry backoff jitter budget "
         "metric gauge counter histogram bucket quantile label sample scrape alert rule").split()
VERBS = ("checks validates parses allocates releases forwards rejects caches flushes merges "
         "splits renames migrates encodes decodes schedules cancels retries logs hashes "
         "signs verifies compresses expands sorts filters maps reduces streams buffers").split()


def prose(rng, n_sentences):
    out = []
    for _ in range(n_sentences):
        n = rng.randrange(8, 18)
        ws = [rng.choice(WORDS) if i % 3 else rng.choice(VERBS) for i in range(n)]
        ws[0] = "The " + ws[0]
        out.append(" ".join(ws) + rng.choice([".", ".", ";", ", then"]) + " ")
    return "".join(out)


# ---------------------------------------------------------------- loops ----

@scenario
def l_name_run(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "grep", "list_dir", "edit"], "Find every place that still uses the old logger and list them.")
    s = Stream("llama", rng)
    s.text("I'll search for the old logger usages.\n")
    pats = ["oldLogger", "old_logger", "OldLogger", "logger.old", "legacyLog", "LegacyLogger", "log_old",
            "oldlog", "OLD_LOGGER", "logOld", "old-logger", "oldLog(", "old_logger\\(", "import.*oldLogger",
            "require\\('old", "from old_logger", "oldLogger\\.", "OldLog", "legacy_logger", "logLegacy",
            "old_log", "LOGGER_OLD", "oldLoggr", "olLogger", "oldLoger"]
    ends = []
    for p in pats:
        ends.append(s.call("grep", {"pattern": p, "path": "src/"}))
    s.finish()
    # 25 grep calls in a row, each with a different pattern: the model searches
    # forever instead of reading a result. Must stop by the 16th call; the
    # 4th spelling of "oldLogger" (dedup.max_similar) comes sooner.
    write(num, "name-run-grep", "name-run: grep 25 times with varied patterns",
          "A llama.cpp-served model keeps re-running grep with one more spelling of the pattern "
          "instead of reading results (seen with small coder models in opencode).",
          "loop", {"trip": True, "guard": ["name_run", "dedup"], "onset_chunk": ends[0] + 1, "by_chunk": ends[15]},
          conv, s)


@scenario
def l_same_call(num):
    rng = random.Random(num)
    conv = Conv(rng, ["bash", "read_file", "edit"], "Run the test suite and fix what fails.", stream_usage=True)
    conv.turn("", [("read_file", {"path": "package.json"}, '{"scripts":{"test":"vitest run"}}')])
    s = Stream("vllm", rng, usage=True)
    s.text("Let me run the tests.")
    ends = [s.call("bash", {"command": "npm test -- --run", "timeout": 120000}) for _ in range(6)]
    s.finish()
    write(num, "same-call-in-answer", "dedup: the same bash call six times in one answer",
          "vLLM stream with parallel tool calls where the model emits `npm test` six times in one "
          "answer (a Cline-style client would run all six).",
          "loop", {"trip": True, "guard": ["dedup"], "onset_chunk": ends[0] + 1, "by_chunk": ends[2]},
          conv, s)


@scenario
def l_cycle(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "grep", "edit"], "Why does parse_header return -1 on valid input?")
    s = Stream("llama", rng)
    s.text("Let me look at the parser.")
    ends = []
    for _ in range(6):
        ends.append(s.call("read_file", {"path": "src/http/parser.c", "offset": 120, "limit": 80}))
        ends.append(s.call("grep", {"pattern": "parse_header", "path": "src/http"}))
    s.finish()
    write(num, "abab-cycle", "dedup: read_file, grep, read_file, grep ... in one answer",
          "The model alternates between reading the same slice of a file and grepping for the same "
          "symbol, never acting: an A,B,A,B cycle of identical calls.",
          "loop", {"trip": True, "guard": ["dedup"], "onset_chunk": ends[1] + 1, "by_chunk": ends[5]},
          conv, s)


@scenario
def l_cross_turn(num):
    rng = random.Random(num)
    conv = Conv(rng, ["bash", "read_file", "edit"], "The deploy script fails, figure out why.")
    res = "server:\n  port: 8080\n  host: 0.0.0.0\ndatabase:\n  url: postgres://db:5432/app\n"
    for _ in range(3):
        conv.turn("Let me check the config.", [("bash", {"command": "cat config/deploy.yaml"}, res)])
    s = Stream("ollama", rng)
    s.text("Let me check the config.", per=2)
    end = s.call("bash", {"command": "cat config/deploy.yaml"})
    s.finish()
    write(num, "cross-turn-repeat", "cross-turn: the same cat, same result, a fourth round",
          "History shows three rounds of `cat config/deploy.yaml` with the identical result and "
          "nothing in between; the new answer (Ollama style) asks for it again.",
          "loop", {"trip": True, "guard": ["cross_turn"], "onset_chunk": end, "by_chunk": end},
          conv, s)


@scenario
def l_enoent(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "list_dir", "grep", "write_file"], "Add a debounce helper to the utils module.")
    err = "Error: ENOENT: no such file or directory, open '/home/dev/app/src/utils/helpers.ts'"
    conv.turn("I'll open the helpers file.", [("read_file", {"path": "src/utils/helpers.ts"}, err)])
    conv.turn("Let me try reading it again.", [("read_file", {"path": "src/utils/helpers.ts"}, err)])
    s = Stream("llama", rng)
    s.text("I'll read the helpers file to see the existing utilities.")
    end = s.call("read_file", {"path": "src/utils/helpers.ts"})
    s.finish()
    write(num, "enoent-reread", "failure: re-reading a file that does not exist",
          "Two earlier reads of src/utils/helpers.ts failed with ENOENT; the model asks again "
          "instead of listing the directory.",
          "loop", {"trip": True, "guard": ["failure", "cross_turn"], "onset_chunk": end, "by_chunk": end},
          conv, s)


@scenario
def l_unknown_tool(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "bash", "edit"], "Install the dependencies and run the linter.", stream_usage=True)
    err = "Error: Unknown tool 'run_terminal_cmd'. Available tools: read_file, bash, edit"
    conv.turn("", [("run_terminal_cmd", {"command": "npm install"}, err)])
    conv.turn("I will install the dependencies.", [("run_terminal_cmd", {"command": "npm install"}, err)])
    s = Stream("vllm", rng, usage=True)
    s.text("Installing the dependencies first.")
    end = s.call("run_terminal_cmd", {"command": "npm install"})
    s.finish()
    write(num, "unknown-tool", "failure: calling a tool that does not exist, a third time",
          "The model insists on a tool name from its training (run_terminal_cmd) that this client "
          "does not offer; the client answered 'Unknown tool' twice.",
          "loop", {"trip": True, "guard": ["failure", "cross_turn"], "onset_chunk": end, "by_chunk": end},
          conv, s)


def text_loop(s, unit, times, per, field="content"):
    """Emits <unit> <times> times; returns a LoopMark whose onset is the second copy."""
    m = LoopMark(bound_bytes(len(unit.encode())))
    emit = s.reasoning if field == "reasoning" else s.text
    emit(unit, per=per)
    m.start(s.n + 1)
    for _ in range(times - 1):
        emit(unit, per=per, on_piece=m.piece)
    return m


@scenario
def l_newline_flood(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "write_file"], "Summarize what src/server.c does.")
    s = Stream("llama", rng)
    s.text("`src/server.c` sets up the listening socket, accepts connections and hands each one to a worker thread.")
    m = LoopMark(bound_bytes(1))
    m.start(s.n + 1)
    for _ in range(500):
        s._chunk({"content": "\n\n"})
        m.piece(s.n, "\n\n")
    s.finish("length")
    write(num, "newline-flood", "repeat: a newline flood after one sentence",
          "A quantized model finishes its sentence and then emits only newline tokens until max_tokens.",
          "loop", {"trip": True, "guard": ["repeat"], "onset_chunk": m.onset, "by_chunk": m.by}, conv, s)


@scenario
def l_word_flood(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file"], "Explain the retry logic in client.go.")
    s = Stream("ollama", rng)
    s.text("The retry loop waits with exponential backoff and then calls the the")
    m = text_loop(s, " the", 400, 1)
    s.finish("length")
    write(num, "word-flood", "repeat: 'the the the ...'",
          "Ollama stream degenerating into one repeated word token.",
          "loop", {"trip": True, "guard": ["repeat", "simhash"], "onset_chunk": m.onset, "by_chunk": m.by}, conv, s)


@scenario
def l_paragraph(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "edit"], "Why is the cache hit rate so low?", stream_usage=True)
    para = ("The cache key includes the request timestamp, so two identical requests made a second "
            "apart never share an entry. Removing the timestamp from the key, and keeping it only in "
            "the stored value for expiry, would let repeated requests hit the cache.\n\n")
    s = Stream("vllm", rng, usage=True)
    s.text("I looked at `cache.py`.\n\n")
    m = text_loop(s, para, 12, 2)
    s.finish("length")
    write(num, "paragraph-repeat", "repeat: the same paragraph again and again",
          "vLLM stream where the model restates its conclusion verbatim, paragraph after paragraph.",
          "loop", {"trip": True, "guard": ["repeat", "simhash"], "onset_chunk": m.onset, "by_chunk": m.by}, conv, s)


@scenario
def l_reasoning_circling(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "bash", "edit"], "The integration test times out intermittently. Fix it.")
    s = Stream("llama", rng)
    cands = ["the connection pool", "the retry timer", "the mutex in the queue", "the DNS lookup"]
    s.reasoning("The test opens a client, sends a request and waits for the reply. ")
    onset = None
    need = 8
    k = 0
    for i in range(16):
        c = cands[i % len(cands)]
        t = ("Wait, let me reconsider. Maybe the problem is %s. If %s blocks, the reply never "
             "arrives and the test waits until the timeout. Actually, no, that can't be it, because "
             "the other tests use the same setup and pass. So the problem must be somewhere else. " % (c, c))
        if i == 1:
            onset = s.n + 1
        s.reasoning(t, per=3)
        if i >= 1:
            k += 1
            if k == need:
                by = s.n
    s.finish("length")
    write(num, "reasoning-circling", "simhash: reasoning that circles with near-repeats",
          "Reasoning model (llama.cpp reasoning_content) that keeps 'reconsidering' the same four "
          "hypotheses in near-identical sentences.",
          "loop", {"trip": True, "guard": ["simhash", "repeat", "paraphrase"], "onset_chunk": onset, "by_chunk": by}, conv, s)


@scenario
def l_attempt_n(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "edit", "bash"], "Fix the import error in main.py.")
    s = Stream("ollama", rng)
    s.text("Let me work through the import error.\n\n", per=2)
    onset = by = None
    for i in range(1, 31):
        t = ("Attempt %d: I will change the import to `from app.lib.parser import parse_config` and "
             "run it again. This should resolve the ModuleNotFoundError for `lib.parser`.\n" % i)
        if i == 2:
            onset = s.n + 1
        s.text(t, per=2)
        if i == 9:
            by = s.n
    s.finish("length")
    write(num, "attempt-n", "simhash: 'Attempt N:' near-repeats with a counter",
          "The model narrates numbered attempts that differ only in the counter.",
          "loop", {"trip": True, "guard": ["simhash", "repeat"], "onset_chunk": onset, "by_chunk": by}, conv, s)


@scenario
def l_function_30x(num):
    rng = random.Random(num)
    conv = Conv(rng, ["write_file", "read_file"], "Create src/mathutil.py with small math helpers.")
    fn = ("def clamp(value, low, high):\n    \"\"\"Limit value to the range [low, high].\"\"\"\n"
          "    if value < low:\n        return low\n    if value > high:\n        return high\n"
          "    return value\n\n\n")
    head = "import math\n\n\n"
    content = head + fn * 30
    s = Stream("llama", rng)
    s.text("I'll create the module.")
    a = args_json({"path": "src/mathutil.py", "content": content})
    # Where does the second copy of the function start inside the JSON text?
    esc_head = args_json({"path": "src/mathutil.py", "content": head + fn})[:-2]
    esc_fn = json.dumps(fn)[1:-1]
    m = LoopMark(bound_bytes(len(esc_fn.encode())))
    idx = s.n_calls
    s.n_calls += 1
    cid = s._call_id()
    s._chunk({"tool_calls": [{"index": idx, "id": cid, "type": "function",
                              "function": {"name": "write_file", "arguments": ""}}]})
    sent = 0
    for p in s._pieces(a, 5):
        s._chunk({"tool_calls": [{"index": idx, "function": {"arguments": p}}]})
        sent += len(p)
        if m.onset is None and sent > len(esc_head):
            m.start(s.n)
            m.piece(s.n, a[len(esc_head):sent])
        elif m.onset is not None:
            m.piece(s.n, p)
    s.finish()
    write(num, "function-30x-in-write", "repeat: one function written 30 times inside write_file",
          "The tool call's `content` argument repeats the same function 30 times; the call must "
          "never reach the client.",
          "loop", {"trip": True, "guard": ["repeat", "simhash"], "onset_chunk": m.onset, "by_chunk": m.by}, conv, s)


@scenario
def l_tool_budget(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "grep", "list_dir", "glob", "bash", "web_fetch"], "Audit the repo for uses of eval().")
    s = Stream("ollama", rng)
    s.text("I'll audit every directory.", per=2)
    ends = []
    dirs = ["src", "lib", "tests", "scripts", "tools", "docs", "examples", "bench", "cmd", "internal"]
    for i in range(70):
        d = dirs[i % len(dirs)] + "/" + "pkg%02d" % i
        kind = i % 6
        if kind == 0:
            ends.append(s.call("list_dir", {"path": d}))
        elif kind == 1:
            ends.append(s.call("grep", {"pattern": "eval\\(", "path": d}))
        elif kind == 2:
            ends.append(s.call("glob", {"pattern": d + "/**/*.js"}))
        elif kind == 3:
            ends.append(s.call("read_file", {"path": d + "/index.js"}))
        elif kind == 4:
            ends.append(s.call("bash", {"command": "wc -l %s/*.js" % d}))
        else:
            ends.append(s.call("grep", {"pattern": "new Function", "path": d}))
    s.finish()
    write(num, "tool-budget", "budget: 70 distinct tool calls in one answer",
          "Ollama stream that fans out 70 different calls in one answer (no two alike, no long run of "
          "one tool); the per-answer tool-call budget, set to 32 for this scenario, must stop it.",
          "loop", {"trip": True, "guard": ["budget"], "onset_chunk": ends[32], "by_chunk": ends[32]},
          conv, s, config={"guards.budget.max_tool_calls": "32"})


@scenario
def l_output_budget(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file"], "Document every module in the repository.", stream_usage=True)
    s = Stream("vllm", rng, usage=True)
    st = {"total": 0, "onset": None, "by": None}

    def piece(n, p):
        st["total"] += len(p.encode())
        if st["onset"] is None and st["total"] > 12288:
            st["onset"] = n
        if st["by"] is None and st["total"] >= 12288 + 600:
            st["by"] = n
    while st["total"] < 20000:
        s.text(prose(rng, 1), per=10, on_piece=piece)
    onset, by = st["onset"], st["by"]
    s.finish("length")
    write(num, "output-budget", "budget: an answer that never stops talking",
          "vLLM stream of 20 KB of ever-changing prose (no exact or near repeats); the output "
          "budget, set to 12 KiB for this scenario, must stop it.",
          "loop", {"trip": True, "guard": ["budget"], "onset_chunk": onset, "by_chunk": by},
          conv, s, config={"guards.budget.max_output_bytes": "12288"})


@scenario
def l_continuation(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "edit"], "Explain what the migration does.")
    looped = ("The migration adds the `archived_at` column to the `projects` table. " * 25)
    conv.say("assistant", "This migration changes the schema.\n\n" + looped)
    conv.say("user", "Continue.")
    s = Stream("llama", rng)
    m = text_loop(s, "The migration adds the `archived_at` column to the `projects` table. ", 30, 2)
    s.finish("length")
    write(num, "continuation-of-loop", "history: a continuation request for a looping answer",
          "aider-style continuation: the history's last assistant message is already a loop and the "
          "user asks to continue; the history check must answer before the upstream is called.",
          "loop", {"trip": True, "guard": ["repeat", "simhash", "history", "cross_turn"], "onset_chunk": 0, "by_chunk": 0},
          conv, s)


@scenario
def l_table_row(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file"], "Make a table of the HTTP endpoints.")
    s = Stream("llama", rng)
    s.text("| Method | Path | Handler |\n|---|---|---|\n| GET | /users | list_users |\n| POST | /users | create_user |\n")
    m = text_loop(s, "| GET | /users/{id} | get_user |\n", 30, 2)
    s.finish("length")
    write(num, "table-row-stuck", "repeat: a markdown table stuck on one row",
          "The same table row emitted again and again (contrast: the healthy 40-row table).",
          "loop", {"trip": True, "guard": ["repeat", "simhash"], "onset_chunk": m.onset, "by_chunk": m.by}, conv, s)


@scenario
def l_json_object(num):
    rng = random.Random(num)
    conv = Conv(rng, ["write_file"], "Give me sample user fixtures as JSON.", stream_usage=True)
    s = Stream("vllm", rng, usage=True)
    s.text("```json\n[\n")
    m = text_loop(s, '  {"id": 7, "name": "Ada Lovelace", "email": "ada@example.com", "active": true},\n', 24, 3)
    s.finish("length")
    write(num, "json-object-stuck", "repeat: a JSON array repeating one identical object",
          "Fixture generation where every element is the same object, id included (contrast: the "
          "healthy array of 50 similar objects).",
          "loop", {"trip": True, "guard": ["repeat", "simhash"], "onset_chunk": m.onset, "by_chunk": m.by}, conv, s)


@scenario
def l_ollama_parallel_same(num):
    rng = random.Random(num)
    conv = Conv(rng, ["web_fetch", "read_file"], "What changed in the latest release of libfoo?")
    s = Stream("ollama", rng)
    ends = [s.call("web_fetch", {"url": "https://github.com/libfoo/libfoo/releases/latest"}) for _ in range(8)]
    s.finish()
    write(num, "ollama-parallel-same", "dedup: eight identical web_fetch calls, Ollama index 0",
          "Ollama sends each call of a parallel batch with index 0 and a fresh id; all eight "
          "calls are the same fetch.",
          "loop", {"trip": True, "guard": ["dedup"], "onset_chunk": ends[1], "by_chunk": ends[2]}, conv, s)


@scenario
def l_reasoning_exact(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "edit"], "Rename the config flag verbose to debug everywhere.")
    s = Stream("ollama", rng)
    s.reasoning("The user wants a rename. ", per=2)
    m = text_loop(s, "I need to check the file first. Then I will edit it.\n", 30, 2, field="reasoning")
    s.finish("length")
    write(num, "reasoning-exact-loop", "repeat: reasoning stuck on one sentence",
          "Ollama `reasoning` field repeating one sentence verbatim.",
          "loop", {"trip": True, "guard": ["repeat", "simhash", "paraphrase"], "onset_chunk": m.onset, "by_chunk": m.by}, conv, s)


@scenario
def l_name_run_ollama(num):
    rng = random.Random(num)
    conv = Conv(rng, ["list_dir", "read_file"], "Where is the database schema defined?")
    s = Stream("ollama", rng)
    ends = []
    path = "."
    for i in range(24):
        path = ["src", "app", "db", "models", "core", "lib", "internal", "pkg"][i % 8] + "/" * (i > 7) + ("sub%d" % i if i > 7 else "")
        ends.append(s.call("list_dir", {"path": path}))
    s.finish()
    write(num, "name-run-list-dir", "name-run: list_dir 24 times, Ollama style",
          "The model walks directories one call at a time without ever reading a file.",
          "loop", {"trip": True, "guard": ["name_run"], "onset_chunk": ends[0] + 1, "by_chunk": ends[15]}, conv, s)


# -------------------------------------------------------------- healthy ----

def healthy(num, slug, name, desc, conv, s):
    write(num, slug, name, desc, "healthy", {"trip": False}, conv, s)


@scenario
def h_table(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file"], "List the error codes in errors.h as a table.")
    s = Stream("llama", rng)
    rows = "| Code | Name | Meaning |\n|---:|---|---|\n"
    names = ["OK", "EINVAL", "ENOMEM", "ETIMEDOUT", "ECONNRESET", "EPIPE", "EAGAIN", "EBADF", "EIO", "ENOENT"]
    for i in range(40):
        nm = "LW_E_%s_%d" % (names[i % 10], i)
        rows += "| %d | `%s` | %s |\n" % (-i, nm, prose(rng, 1).strip().rstrip(".;,")[:60])
    s.text(rows, per=3)
    s.finish()
    healthy(num, "markdown-table-40", "markdown table with 40 rows",
            "A long table: identical structure on every row, different values.", conv, s)


@scenario
def h_json_array(num):
    rng = random.Random(num)
    conv = Conv(rng, ["write_file"], "Give me 50 sample users as JSON.", stream_usage=True)
    s = Stream("vllm", rng, usage=True)
    first = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Ken", "Dennis", "Margaret", "Linus"]
    last = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Thompson", "Ritchie", "Hamilton", "Torvalds"]
    body = "```json\n[\n"
    for i in range(50):
        f, l = rng.choice(first), rng.choice(last)
        body += '  {"id": %d, "name": "%s %s", "email": "%s.%s%d@example.com", "age": %d, "active": %s}%s\n' % (
            i + 1, f, l, f.lower(), l.lower(), rng.randrange(100), rng.randrange(18, 80),
            "true" if rng.random() < 0.7 else "false", "," if i < 49 else "")
    body += "]\n```\n"
    s.text(body, per=5)
    s.finish()
    healthy(num, "json-array-50", "JSON array of 50 similar objects",
            "Fixture data: same keys in every object, different values.", conv, s)


@scenario
def h_switch(num):
    rng = random.Random(num)
    conv = Conv(rng, ["write_file", "read_file"], "Write opcode_name() for the VM's 40 opcodes.")
    ops = ["NOP", "PUSH", "POP", "DUP", "SWAP", "ADD", "SUB", "MUL", "DIV", "MOD", "NEG", "AND", "OR", "XOR",
           "NOT", "SHL", "SHR", "EQ", "NE", "LT", "LE", "GT", "GE", "JMP", "JZ", "JNZ", "CALL", "RET", "LOAD",
           "STORE", "LOADG", "STOREG", "NEWARR", "GETIDX", "SETIDX", "LEN", "PRINT", "HALT", "TRAP", "BREAK"]
    code = "#include \"vm.h\"\n\nconst char *opcode_name(enum opcode op)\n{\n\tswitch (op) {\n"
    for o in ops:
        code += "\tcase OP_%s:\n\t\treturn \"%s\";\n" % (o, o.lower())
    code += "\tdefault:\n\t\treturn \"unknown\";\n\t}\n}\n"
    s = Stream("llama", rng)
    s.text("Here is the function:")
    s.call("write_file", {"path": "src/vm/opcode_name.c", "content": code}, per=3)
    s.finish()
    healthy(num, "switch-40-cases", "a C switch with 40 cases inside write_file",
            "Code whose lines differ only in the case label and the string.", conv, s)


@scenario
def h_parallel_edits(num):
    rng = random.Random(num)
    conv = Conv(rng, ["edit", "read_file", "grep"], "Rename getUser to fetchUser across the services.")
    conv.turn("", [("grep", {"pattern": "getUser", "path": "src/services"},
                    "\n".join("src/services/svc%02d.ts:12: const u = await getUser(id);" % i for i in range(10)))])
    s = Stream("ollama", rng)
    s.text("I'll update all ten services.", per=2)
    for i in range(10):
        s.call("edit", {"path": "src/services/svc%02d.ts" % i, "old_string": "await getUser(id)",
                        "new_string": "await fetchUser(id)"})
    s.finish()
    healthy(num, "ten-parallel-edits", "ten parallel edits of ten files (Ollama index 0)",
            "Ten edit calls in one answer with the same old/new strings and different paths.", conv, s)


@scenario
def h_paging(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "grep"], "Review src/big_module.py for bugs.", stream_usage=True)
    for k in range(6):
        lines = "\n".join("%5d  %s" % (k * 200 + j + 1, prose(rng, 1)[:70]) for j in range(8))
        conv.turn("Reading the next part." if k else "Let me read it.",
                  [("read_file", {"path": "src/big_module.py", "offset": k * 200, "limit": 200}, lines)])
    s = Stream("vllm", rng, usage=True)
    s.text("Continuing with the next section.")
    s.call("read_file", {"path": "src/big_module.py", "offset": 1200, "limit": 200})
    s.finish()
    healthy(num, "paging-offsets", "paging through a file with increasing offsets",
            "Seven rounds of read_file on one path with offsets 0,200,...,1200: different calls, "
            "different results.", conv, s)


@scenario
def h_polling(num):
    rng = random.Random(num)
    conv = Conv(rng, ["bash", "read_file"], "Start the dev server and check that it is up.")
    conv.turn("", [("bash", {"command": "npm run dev > /tmp/dev.log 2>&1 &"}, "[1] 48213")])
    progress = ["curl: (7) Failed to connect to localhost port 3000 after 0 ms: Connection refused",
                "curl: (7) Failed to connect to localhost port 3000 after 1 ms: Connection refused",
                "{\"status\":\"starting\",\"compiled\":12,\"total\":40}",
                "{\"status\":\"starting\",\"compiled\":31,\"total\":40}"]
    for p in progress:
        conv.turn("The server is still starting; checking again.",
                  [("bash", {"command": "sleep 2 && curl -s localhost:3000/health"}, p)])
    s = Stream("llama", rng)
    s.text("Still compiling (31/40); one more check.")
    s.call("bash", {"command": "sleep 2 && curl -s localhost:3000/health"})
    s.finish()
    healthy(num, "polling-server-start", "polling a server that is still starting",
            "The same health-check call five rounds in a row; its result changes every time "
            "(connection refused is transient, then progress).", conv, s)


@scenario
def h_rerun_tests(num):
    rng = random.Random(num)
    conv = Conv(rng, ["bash", "edit", "read_file"], "Make the failing tests pass.", stream_usage=True)
    conv.turn("", [("bash", {"command": "pytest -q"}, "FAILED tests/test_api.py::test_login - AssertionError\n1 failed, 41 passed")])
    conv.turn("Fixing the login check.", [("edit", {"path": "app/api.py", "old_string": "if user.password == pw:",
                                                    "new_string": "if check_password(user, pw):"}, "Edited app/api.py")])
    conv.turn("", [("bash", {"command": "pytest -q"}, "FAILED tests/test_api.py::test_logout - KeyError: 'session'\n1 failed, 41 passed")])
    conv.turn("Fixing logout.", [("edit", {"path": "app/api.py", "old_string": "del request.session['user']",
                                           "new_string": "request.session.pop('user', None)"}, "Edited app/api.py")])
    s = Stream("vllm", rng, usage=True)
    s.text("Running the tests again.")
    s.call("bash", {"command": "pytest -q"})
    s.finish()
    healthy(num, "rerun-tests-after-edit", "re-running the tests after each edit",
            "`pytest -q` a third time: an edit came between every run, so the result may differ.", conv, s)


@scenario
def h_numbered_list(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file"], "Write a setup checklist for new contributors.")
    steps = ["Install the compiler toolchain", "Clone the repository", "Create a virtual environment",
             "Install the Python dependencies", "Install pre-commit hooks", "Copy .env.example to .env",
             "Start the database container", "Run the migrations", "Seed the development data",
             "Build the frontend assets", "Run the unit tests", "Run the integration tests",
             "Start the API server", "Open the admin page", "Create a test account",
             "Read CONTRIBUTING.md", "Pick a good-first-issue", "Create a feature branch",
             "Write a failing test", "Make it pass", "Run the linters", "Update the changelog",
             "Open a draft pull request", "Ask for a review", "Address review comments",
             "Squash fixup commits", "Wait for CI", "Merge when green", "Delete the branch",
             "Celebrate"]
    text = "".join("%d. %s. %s\n" % (i + 1, st, prose(rng, 1)[:50].strip()) for i, st in enumerate(steps))
    s = Stream("ollama", rng)
    s.text(text, per=2)
    s.finish()
    healthy(num, "numbered-list", "a numbered list of 30 steps",
            "Numbered lines with the same shape.", conv, s)


@scenario
def h_csv(num):
    rng = random.Random(num)
    conv = Conv(rng, ["write_file"], "Generate a CSV of monthly sales per region for testing.")
    regions = ["north", "south", "east", "west", "central"]
    csv = "month,region,units,revenue,returns\n"
    for m in range(1, 13):
        for r in regions:
            u = rng.randrange(100, 900)
            csv += "2024-%02d,%s,%d,%.2f,%d\n" % (m, r, u, u * rng.uniform(9.5, 12.5), rng.randrange(0, 30))
    s = Stream("llama", rng)
    s.text("Here is the data file.")
    s.call("write_file", {"path": "tests/data/sales.csv", "content": csv}, per=4)
    s.finish()
    healthy(num, "csv-data", "CSV data, 60 rows, in write_file", "Tabular data with a repeating shape.", conv, s)


@scenario
def h_closing_braces(num):
    rng = random.Random(num)
    conv = Conv(rng, ["write_file"], "Write the nested config validator.")
    code = "export function validate(cfg) {\n"
    depth = 1
    for k in ["server", "tls", "cert", "chain", "issuer", "name", "parts", "first"]:
        code += "  " * depth + "if (cfg.%s) {\n" % k
        depth += 1
        code += "  " * depth + "check%s(cfg.%s);\n" % (k.capitalize(), k)
    while depth > 1:
        depth -= 1
        code += "  " * depth + "}\n"
    code += "  return true;\n}\n\nexport const handlers = [\n"
    for i in range(6):
        code += "  () => {\n    return new Promise((resolve) => {\n      setTimeout(() => {\n        resolve(%d);\n      }, %d);\n    });\n  },\n" % (i, 10 * i)
    code += "];\n"
    s = Stream("vllm", rng)
    s.text("```js\n" + code + "```\n", per=1)
    s.finish()
    healthy(num, "closing-braces", "code with runs of closing braces",
            "Deep nesting closes with eight `}` lines in a row; callbacks close with `});`.", conv, s)


@scenario
def h_base64(num):
    rng = random.Random(num)
    conv = Conv(rng, ["write_file"], "Embed the favicon as a data file.")
    blob = base64.b64encode(bytes(rng.randrange(256) for _ in range(6000))).decode()
    blob = "\n".join(blob[i:i + 76] for i in range(0, len(blob), 76))
    s = Stream("llama", rng)
    s.text("Writing the encoded icon.")
    s.call("write_file", {"path": "assets/favicon.b64", "content": blob + "\n"}, per=6)
    s.finish()
    healthy(num, "base64-blob", "a long base64 blob", "8 KB of base64: high entropy, fixed line width.", conv, s)


@scenario
def h_reasoning_revisits(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "edit"], "Is the binary search in search.c correct?")
    r = ("The loop runs while lo < hi. mid is computed as lo + (hi - lo) / 2, which avoids overflow. "
         "If a[mid] < key we set lo = mid + 1, otherwise hi = mid. Let me re-check the loop bounds: "
         "hi starts at n, not n - 1, so the interval is half-open and the invariant holds. "
         "Wait, what about an empty array? n = 0 gives lo = hi = 0, the loop does not run and we "
         "return 0, the insertion point. Let me reconsider the duplicate case: with several equal keys "
         "hi moves left onto the first of them, so we return the leftmost match. Revisiting the "
         "overflow question once more: lo and hi are size_t, so hi - lo never goes negative. "
         "I am now confident the function is correct; the caller's check of a[i] == key is what is missing.")
    s = Stream("vllm", rng)
    s.reasoning(r, per=1)
    s.text("The search itself is correct (half-open interval, no overflow). The bug is in the caller: "
           "it uses the returned index without checking `i < n && a[i] == key`.")
    s.finish()
    healthy(num, "reasoning-revisits", "reasoning that legitimately revisits a point",
            "The model re-checks bounds and overflow in different words, then concludes.", conv, s)


@scenario
def h_ascii_art(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file"], "Draw the architecture as a diagram.")
    w = 72
    art = "```\n"
    art += "┌" + "─" * (w - 2) + "┐\n"
    for label in ["client (opencode, aider, Cline)", "", "loopwarden proxy", "", "guards: name_run dedup repeat simhash", ""]:
        art += "│" + label.center(w - 2) + "│\n"
    art += "└" + "─" * (w - 2) + "┘\n"
    art += " " * 35 + "│\n" + " " * 35 + "▼\n"
    art += "+" + "-" * (w - 2) + "+\n" + "|" + "upstream: llama-server / vLLM / Ollama".center(w - 2) + "|\n" + "+" + "-" * (w - 2) + "+\n"
    art += "=" * w + "\n" + "```\n"
    s = Stream("llama", rng)
    s.text(art, per=1)
    s.text("The proxy sits between the client and the upstream.")
    s.finish()
    healthy(num, "ascii-art-box", "ASCII art and box drawing",
            "72-wide box-drawing lines: long runs of one character, but short and bounded.", conv, s)


@scenario
def h_poem(num):
    rng = random.Random(num)
    conv = Conv(rng, [], "Write a short poem about debugging with a refrain.")
    stanzas = [
        "The logs ran long into the night,\nthe stack trace curled out of sight,",
        "I printed x, I printed y,\nI watched the counters multiply,",
        "A race, a lock, a missing free,\na pointer pointing back at me,",
        "The test went green, the test went red,\nI read the diff, I went to bed,",
        "At dawn I saw the off-by-one,\nthe loop that ran when it was done,",
        "So here's to bugs that teach us well,\nto every fix and every spell,",
    ]
    refrain = "\nand still the build was failing.\n\n"
    s = Stream("ollama", rng)
    for st in stanzas:
        s.text(st + refrain, per=1)
    s.finish()
    healthy(num, "poem-refrain", "a poem with a refrain", "Six stanzas, each ending in the same line.", conv, s)


@scenario
def h_log_output(num):
    rng = random.Random(num)
    conv = Conv(rng, ["bash", "read_file"], "Why are requests slow? Check the server log.")
    log = []
    paths = ["/api/users", "/api/orders", "/api/items", "/health", "/api/cart", "/api/search"]
    for i in range(40):
        log.append("2024-11-21T09:%02d:%02d.%03dZ %s [%s] %s %s %d %dms rid=%08x" % (
            14 + i // 20, (i * 7) % 60, rng.randrange(1000), rng.choice(["INFO", "INFO", "WARN"]),
            rng.choice(["http", "db", "cache"]), rng.choice(["GET", "POST", "PUT"]), rng.choice(paths),
            rng.choice([200, 200, 201, 304, 500]), rng.randrange(3, 2400), rng.randrange(1 << 32)))
    conv.turn("", [("bash", {"command": "tail -n 40 /var/log/app/server.log"}, "\n".join(log))])
    s = Stream("llama", rng)
    quoted = "\n".join(log[i] for i in range(0, 40, 3))
    s.text("The slow requests are all database-bound. From the log:\n\n```\n" + quoted +
           "\n```\n\nEvery request over 1s touches `/api/orders` or `/api/search`, which both run the "
           "unindexed `ORDER BY created_at` query.", per=2)
    s.finish()
    healthy(num, "log-output-quoted", "log output pasted by a tool and quoted",
            "The tool result is 40 log lines; the answer quotes 14 of them (same shape, different "
            "timestamps, paths, latencies, ids).", conv, s)


@scenario
def h_explanation(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "grep"], "Explain how the scheduler batches requests.", stream_usage=True)
    text = ("The scheduler runs on one thread and loops over three phases. First it admits queued "
            "requests whose KV footprint fits the pool, so a request never fails mid-decode for lack "
            "of memory. Second it builds a batch: prefill chunks for newly admitted prompts, capped at "
            "a token budget so that long prompts do not starve decoding, plus one decode step for every "
            "running sequence. Third it runs the batch on the backend and hands each sampled token to "
            "its request's queue, checking the cancel flag as it goes.\n\nA cancelled sequence is "
            "finished like an EOS: its KV pages return to the pool at once and its prefix-cache entry "
            "stays valid. Slow clients never block the loop: when a request's queue is full its "
            "sequence is paused, not the batch, and it resumes when the client drains.\n")
    s = Stream("vllm", rng, usage=True)
    s.text(text, per=1)
    s.finish()
    healthy(num, "plain-explanation", "a plain prose explanation", "Ordinary technical prose.", conv, s)


@scenario
def h_read_three(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "grep"], "Compare the three storage backends.")
    s = Stream("ollama", rng)
    s.reasoning("I should read all three backends before comparing them.", per=2)
    for f in ["src/store/memory.go", "src/store/redis.go", "src/store/postgres.go"]:
        s.call("read_file", {"path": f})
    s.finish()
    healthy(num, "parallel-reads", "three parallel reads (Ollama)", "Different files, one batch.", conv, s)


@scenario
def h_llama_tool_after_text(num):
    rng = random.Random(num)
    conv = Conv(rng, ["edit", "read_file", "bash"], "Fix the off-by-one in ring.c.", stream_usage=True)
    conv.turn("", [("read_file", {"path": "src/ring.c"},
                    "  41  size_t ring_next(size_t i, size_t cap)\n  42  {\n  43  \treturn i + 1 > cap ? 0 : i + 1;\n  44  }")])
    s = Stream("llama", rng, usage=True)
    s.reasoning("i + 1 == cap must wrap to 0, but the comparison uses >. It should be >=.", per=1)
    s.text("`ring_next` lets the index reach `cap`. Fixing the comparison:")
    s.call("edit", {"path": "src/ring.c", "old_string": "return i + 1 > cap ? 0 : i + 1;",
                    "new_string": "return i + 1 >= cap ? 0 : i + 1;"}, per=2)
    s.call("bash", {"command": "make test"}, per=2)
    s.finish()
    healthy(num, "edit-then-test", "an edit followed by a test run (llama.cpp, usage)",
            "Reasoning, text, then two different calls; usage on the last chunk.", conv, s)


@scenario
def h_html_list(num):
    rng = random.Random(num)
    conv = Conv(rng, ["write_file"], "Create the navigation menu partial.")
    items = ["Home", "Docs", "Guides", "API", "Blog", "Pricing", "Customers", "Careers", "Status",
             "Security", "Privacy", "Terms", "Changelog", "Community", "Support", "Contact"]
    html = "<nav class=\"menu\">\n  <ul>\n"
    for it in items:
        html += "    <li class=\"menu-item\"><a href=\"/%s\">%s</a></li>\n" % (it.lower(), it)
    html += "  </ul>\n</nav>\n"
    s = Stream("vllm", rng)
    s.call("write_file", {"path": "templates/partials/nav.html", "content": html}, per=3)
    s.finish()
    healthy(num, "html-menu", "an HTML list of 16 similar items in write_file",
            "Markup with one line per item.", conv, s)


# ------------------------------------------------- added look-alikes ----

@scenario
def l_canon_args(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "grep"], "What does init_pool do?")
    s = Stream("llama", rng)
    s.text("Reading the pool source.")
    forms = ['{"path":"src/pool.c","limit":120}', '{"limit": 120, "path": "src/pool.c"}',
             '{ "path" : "src/pool.c" ,\n  "limit" : 120 }', '{"path":"src/pool.c","limit":120}',
             '{"limit":120,"path":"src/pool.c"}']
    ends = [s.call("read_file", f, per=2) for f in forms]
    s.finish()
    write(num, "same-call-reformatted", "dedup: the same call with keys reordered and spaced",
          "Five read_file calls whose arguments differ only in key order and whitespace: one "
          "call after canonicalization.",
          "loop", {"trip": True, "guard": ["dedup"], "onset_chunk": ends[0] + 1, "by_chunk": ends[2]}, conv, s)


@scenario
def l_vllm_interleaved_same(num):
    rng = random.Random(num)
    conv = Conv(rng, ["grep", "read_file"], "Find where the session cookie is set.", stream_usage=True)
    s = Stream("vllm", rng, usage=True)
    args = args_json({"pattern": "Set-Cookie", "path": "server/"})
    ids = []
    for i in range(4):
        cid = s._call_id()
        ids.append(cid)
        s._chunk({"tool_calls": [{"id": cid, "type": "function", "index": i, "function": {"name": "grep"}}]})
    s.n_calls = 4
    pieces = s._pieces(args, 2)
    ends = [0] * 4
    for p in pieces:
        for i in range(4):
            s._chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]})
            ends[i] = s.n
    s.finish()
    write(num, "vllm-interleaved-same", "dedup: four identical parallel calls, interleaved by index",
          "vLLM streams the fragments of four parallel calls interleaved (index 0,1,2,3,0,1,...); "
          "all four are the same grep.",
          "loop", {"trip": True, "guard": ["dedup"], "onset_chunk": ends[0] + 1, "by_chunk": s.n - 1}, conv, s)


@scenario
def l_cross_turn_reordered(num):
    rng = random.Random(num)
    conv = Conv(rng, ["web_fetch", "read_file"], "Summarize what changed in version 2.4 from the changelog.")
    res = "# Changelog\n\n## 2.4.0\n- Streaming export of reports.\n- The CLI accepts --since.\n- Dropped Python 3.8."
    conv.turn("", [("web_fetch", '{"url":"https://docs.example.com/changelog","format":"markdown"}', res)])
    conv.turn("Let me fetch the docs again.", [("web_fetch", '{"format": "markdown", "url": "https://docs.example.com/changelog"}', res)])
    conv.turn("Fetching the page.", [("web_fetch", '{"url":"https://docs.example.com/changelog","format":"markdown"}', res)])
    conv.turn("", [("web_fetch", '{ "url": "https://docs.example.com/changelog", "format": "markdown" }', res)])
    s = Stream("llama", rng)
    end = s.call("web_fetch", '{"format":"markdown","url":"https://docs.example.com/changelog"}', per=2)
    s.finish()
    write(num, "cross-turn-reordered", "cross-turn: the same fetch five rounds, keys reordered",
          "History holds four rounds of the same web_fetch (key order and spacing vary) with the "
          "identical result; the answer asks a fifth time.",
          "loop", {"trip": True, "guard": ["cross_turn"], "onset_chunk": end, "by_chunk": end}, conv, s)


@scenario
def h_pytest_file(num):
    rng = random.Random(num)
    conv = Conv(rng, ["write_file", "read_file"], "Write unit tests for slugify().")
    cases = [("Hello World", "hello-world"), ("  spaces  ", "spaces"), ("Ünïcödé", "unicode"),
             ("a--b", "a-b"), ("C++ & Rust", "c-rust"), ("100% sure", "100-sure"), ("", ""),
             ("already-slug", "already-slug"), ("Tabs\tand\nnewlines", "tabs-and-newlines"),
             ("MiXeD CaSe", "mixed-case"), ("trailing-", "trailing"), ("-leading", "leading"),
             ("dots.in.name", "dots-in-name"), ("emoji 🚀 rocket", "emoji-rocket"),
             ("under_score", "under-score")]
    code = "import pytest\n\nfrom app.text import slugify\n\n\n"
    for i, (a, b) in enumerate(cases):
        name = re.sub(r"[^a-z0-9]+", "_", b or "empty").strip("_") or "case"
        code += "def test_slugify_%s_%d():\n    assert slugify(%r) == %r\n\n\n" % (name, i, a, b)
    code += "@pytest.mark.parametrize(\"bad\", [None, 3, b\"bytes\"])\ndef test_slugify_rejects(bad):\n    with pytest.raises(TypeError):\n        slugify(bad)\n"
    s = Stream("ollama", rng)
    s.text("Here are the tests.", per=2)
    s.call("write_file", {"path": "tests/test_slugify.py", "content": code})
    s.finish()
    healthy(num, "pytest-similar-tests", "a test file of 15 near-identical test functions",
            "One assert per test, same shape, different inputs: near-repeats by design.", conv, s)


@scenario
def h_api_docs(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file"], "Document the public functions of the queue module.")
    funcs = [("queue_new", "size_t cap", "struct queue *", "Creates a queue holding at most <cap> items."),
             ("queue_free", "struct queue *q", "void", "Frees <q>; NULL is a no-op."),
             ("queue_push", "struct queue *q, void *item", "int", "Appends <item>; -1 when the queue is full."),
             ("queue_pop", "struct queue *q", "void *", "Removes and returns the oldest item, or NULL."),
             ("queue_len", "const struct queue *q", "size_t", "Items currently held."),
             ("queue_clear", "struct queue *q", "void", "Drops every item without freeing them."),
             ("queue_peek", "const struct queue *q", "void *", "The oldest item without removing it.")]
    doc = "# queue.h\n\n"
    for name, args, ret, what in funcs:
        doc += "## `%s`\n\n```c\n%s %s(%s);\n```\n\n%s\n\n**Parameters**\n\n" % (name, ret, name, args, what)
        for a in args.split(", "):
            doc += "- `%s`: %s\n" % (a.split()[-1].lstrip("*"), prose(rng, 1)[:50].strip())
        doc += "\n**Returns**: `%s`.\n\n**Thread safety**: not thread-safe; callers lock.\n\n" % ret
    s = Stream("vllm", rng)
    s.text(doc, per=2)
    s.finish()
    healthy(num, "api-docs-sections", "API docs with the same sections per function",
            "Seven functions, each with Parameters / Returns / Thread safety headings and one "
            "identical sentence.", conv, s)


@scenario
def h_vllm_interleaved(num):
    rng = random.Random(num)
    conv = Conv(rng, ["grep", "read_file"], "Where are timeouts configured?", stream_usage=True)
    s = Stream("vllm", rng, usage=True)
    calls = [("grep", {"pattern": "timeout", "path": "config/"}),
             ("grep", {"pattern": "TIMEOUT", "path": "src/"}),
             ("read_file", {"path": "config/defaults.yaml"})]
    for i, (nm, _) in enumerate(calls):
        s._chunk({"tool_calls": [{"id": s._call_id(), "type": "function", "index": i, "function": {"name": nm}}]})
    s.n_calls = 3
    pieces = [s._pieces(args_json(a), 2) for _, a in calls]
    for k in range(max(len(p) for p in pieces)):
        for i, p in enumerate(pieces):
            if k < len(p):
                s._chunk({"tool_calls": [{"index": i, "function": {"arguments": p[k]}}]})
    s.finish()
    healthy(num, "vllm-interleaved-calls", "three different parallel calls, interleaved by index",
            "vLLM interleaves the argument fragments of three different calls.", conv, s)


@scenario
def h_sql_inserts(num):
    rng = random.Random(num)
    conv = Conv(rng, ["write_file"], "Write a seed migration for the countries table.")
    countries = [("AR", "Argentina"), ("AU", "Australia"), ("BR", "Brazil"), ("CA", "Canada"),
                 ("CN", "China"), ("DE", "Germany"), ("EG", "Egypt"), ("ES", "Spain"), ("FR", "France"),
                 ("GB", "United Kingdom"), ("IN", "India"), ("IT", "Italy"), ("JP", "Japan"),
                 ("KE", "Kenya"), ("KR", "South Korea"), ("MX", "Mexico"), ("NG", "Nigeria"),
                 ("NL", "Netherlands"), ("NO", "Norway"), ("NZ", "New Zealand"), ("PL", "Poland"),
                 ("PT", "Portugal"), ("SE", "Sweden"), ("TR", "Turkey"), ("US", "United States")]
    sql = "-- 0042_seed_countries.sql\nBEGIN;\n"
    for code, name in countries:
        sql += "INSERT INTO countries (code, name, created_at) VALUES ('%s', '%s', now());\n" % (code, name)
    sql += "COMMIT;\n"
    s = Stream("llama", rng)
    s.call("write_file", {"path": "db/migrations/0042_seed_countries.sql", "content": sql}, per=3)
    s.finish()
    healthy(num, "sql-inserts", "25 INSERT statements differing in two values",
            "Seed data: one statement per row.", conv, s)


@scenario
def h_ollama_reasoning_then_call(num):
    rng = random.Random(num)
    conv = Conv(rng, ["bash", "read_file"], "Check which Node version the project needs.")
    s = Stream("ollama", rng, model="qwen3:8b")
    s.reasoning("The engines field in package.json says which Node version is required. "
                "I could also look for an .nvmrc file. Reading package.json first is enough.", per=2)
    s.call("read_file", {"path": "package.json"})
    s.finish()
    healthy(num, "ollama-reasoning-call", "Ollama `reasoning` then one call",
            "A thinking model's `reasoning` field followed by a tool call.", conv, s)


# ---------------------------------- look-alikes of the class rules ----

@scenario
def h_worksheet(num):
    rng = random.Random(num)
    conv = Conv(rng, ["write_file"], "Make a printable worksheet on processes with room to write the answers.")
    s = Stream("llama", rng)
    qs = ["What does fork() return in the parent, and what in the child?",
          "Why does a shell call fork() before exec() instead of exec() alone?",
          "What happens to a child process whose parent never calls wait()?",
          "Name two things a child inherits from its parent, and one it does not."]
    s.text("# Worksheet: processes\n\nName: ______________________  Date: __________\n\n")
    for i, q in enumerate(qs):
        s.text("**%d.** %s\n" % (i + 1, q))
        # 14 blank lines of writing space: 15 line breaks in a row, one
        # under guards.repeat.min_blank_lines.
        for _ in range(7):
            s._chunk({"content": "\n\n"})
    s.text("*Hand in by Friday.*\n")
    s.finish()
    healthy(num, "worksheet-blank-lines", "a worksheet with 14 blank lines after each question",
            "Printable writing space: 15 line breaks in a row, four times (the blank-line rule "
            "trips at 16).", conv, s)


@scenario
def h_word_count_tests(num):
    rng = random.Random(num)
    conv = Conv(rng, ["write_file", "read_file"], "Write tests for count_words() and most_common_word().")
    code = ("from app.text import count_words, most_common_word\n\n\n"
            "def test_counts_repeated_words():\n"
            "    assert count_words(\"the the the the the the the\") == 7\n\n\n"
            "def test_most_common():\n"
            "    assert most_common_word(\"very very very very very very very good\") == \"very\"\n\n\n"
            "def test_short_syllables():\n"
            "    lyric = \"na na na na na na na na na na na na na na na na Batman\"\n"
            "    assert count_words(lyric) == 17\n"
            "    assert most_common_word(\"ho ho ho ho ho ho ho ho ho ho merry\") == \"ho\"\n\n\n"
            "def test_commas_and_apostrophes():\n"
            "    assert count_words(\"no, no, no, no, no, no, no, don't\") == 8\n")
    s = Stream("llama", rng)
    s.text("Here are the tests.")
    s.call("write_file", {"path": "tests/test_text.py", "content": code}, per=3)
    s.finish()
    healthy(num, "word-count-tests", "test inputs repeating a word 7 times, syllables 16 times",
            "A word repeated 7 times back-to-back (the plain-words rule trips at 8), and two-letter "
            "syllables (na, ho, no) that the rule leaves to the span rule.", conv, s)


@scenario
def h_hexdump_board(num):
    rng = random.Random(num)
    conv = Conv(rng, ["bash", "read_file"], "Is the flash page at 0x40 erased? Also show the start position.")
    dump = "".join("%08x: %s  ................\n" % (0x40 + 16 * i, " ".join(["ffff"] * 8)) for i in range(8))
    conv.turn("", [("bash", {"command": "xxd -s 0x40 -l 128 flash.bin"}, dump)])
    board = ("  a b c d e f g h\n8 r n b q k b n r\n7 p p p p p p p p\n6 . . . . . . . .\n"
             "5 . . . . . . . .\n4 . . . . . . . .\n3 . . . . . . . .\n2 P P P P P P P P\n1 R N B Q K B N R\n")
    s = Stream("vllm", rng)
    s.text("Yes, the page is erased: every byte reads `0xff`.\n\n```\n" + dump + "```\n\n"
           "And the start position:\n\n```\n" + board + "```\n", per=2)
    s.finish()
    healthy(num, "hexdump-and-board", "an xxd dump of erased flash and a chess board",
            "Runs of `ffff ` (8 per line) and `p p p p`: short words, but hex and single "
            "letters, so the plain-words rule leaves them to the span rule.", conv, s)


@scenario
def h_key_presses(num):
    rng = random.Random(num)
    conv = Conv(rng, ["computer", "bash"], "In the settings list, open the third entry below Display.",
                stream_usage=True)
    conv.turn("", [("computer", {"action": "screenshot"}, "[screenshot: Settings, 'Display' highlighted]")])
    s = Stream("vllm", rng, usage=True)
    s.text("Display is highlighted; the target is two rows down.")
    s.call("computer", {"action": "key", "text": "Down"}, per=2)
    s.call("computer", {"action": "key", "text": "Down"}, per=2)
    s.call("computer", {"action": "key", "text": "Return"}, per=2)
    s.call("computer", {"action": "screenshot"}, per=2)
    s.finish()
    healthy(num, "computer-use-key-presses", "computer use: the same key press twice in one answer",
            "Pressing Down twice is two moves, not a loop: `computer` is a repeatable input action "
            "(guards.dedup.repeatable, 3 identical calls trip), unlike a second identical `bash`.",
            conv, s)


# ------------------------------ issue 12: guards that generalize ----
# Each class both ways: the loop and its nearest healthy twin.

def near_by(onset, bound):
    """by_chunk for a text loop: the corpus convention, at most 64 chunks past the onset."""
    return min(bound, onset + 64)


TODOS = [{"content": "Add rate limiter middleware", "status": "in_progress", "priority": "high", "id": "1"},
         {"content": "Configure limits per API key in config/limits.yaml", "status": "pending", "priority": "high", "id": "2"},
         {"content": "Return 429 with a Retry-After header", "status": "pending", "priority": "medium", "id": "3"},
         {"content": "Write tests for the rate limiter", "status": "pending", "priority": "medium", "id": "4"}]


@scenario
def l_todowrite_same(num):
    # Item 4: the echoed todo list holds "rate limiter"; a substring match of
    # the transient pattern "rate limit" made every result transient.
    rng = random.Random(num)
    conv = Conv(rng, ["read", "edit@oc", "bash", "todowrite"], "Add rate limiting to the public API.",
                stream_usage=True, model="qwen3-coder")
    args = {"todos": TODOS}
    echo = json.dumps(TODOS, indent=2)
    conv.turn("", [("read", {"filePath": "/home/dev/api/src/server.ts"},
                    "00001| import express from 'express'\n00002| const app = express()\n00003| app.use(express.json())\n")])
    for _ in range(3):
        conv.turn("I'll track the work in a todo list first.", [("todowrite", args, echo)])
    s = Stream("vllm", rng, model="Qwen/Qwen3-Coder-30B-A3B-Instruct", usage=True)
    s.text("I'll track the work in a todo list first.")
    end = s.call("todowrite", args, per=4)
    s.finish()
    write(num, "todowrite-same-list", "cross-turn: the same todowrite every turn, list mentions a rate limiter",
          "opencode + Qwen3-Coder: three rounds of the identical todowrite, each answered with the echoed "
          "list ('Add rate limiter middleware'); the fourth must trip. A transient pattern matching inside "
          "the word 'limiter' used to make every result transient (issue 12 item 4).",
          "loop", {"trip": True, "guard": ["cross_turn"], "onset_chunk": end, "by_chunk": end}, conv, s)


@scenario
def h_todowrite_progress(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read", "edit@oc", "bash", "todowrite"], "Add rate limiting to the public API.",
                stream_usage=True, model="qwen3-coder")
    todos = [dict(t) for t in TODOS]
    conv.turn("Planning the work.", [("todowrite", {"todos": todos}, json.dumps(todos, indent=2))])
    steps = [("edit@oc", {"filePath": "/home/dev/api/src/server.ts", "oldString": "app.use(express.json())",
                          "newString": "app.use(express.json())\napp.use(rateLimit(limits))"}, "Edit applied successfully."),
             ("write", {"filePath": "/home/dev/api/config/limits.yaml", "content": "default: 100\nburst: 20\n"},
              "Wrote file successfully."),
             ("bash", {"command": "npm test -- ratelimit"}, "PASS test/ratelimit.test.ts (4 tests)")]
    for k, (name, a, res) in enumerate(steps):
        conv.turn("", [(name.split("@")[0], a, res)])
        todos[k]["status"] = "completed"
        todos[k + 1]["status"] = "in_progress"
        conv.turn("Updating the todo list.", [("todowrite", {"todos": todos}, json.dumps(todos, indent=2))])
    todos[3]["status"] = "completed"
    s = Stream("vllm", rng, model="Qwen/Qwen3-Coder-30B-A3B-Instruct", usage=True)
    s.text("All four items are done; updating the todo list.")
    s.call("todowrite", {"todos": todos}, per=4)
    s.finish()
    healthy(num, "todowrite-progress", "todowrite every turn while the work progresses",
            "The same tool every turn, but each list differs (statuses move on) and real work "
            "happens in between.", conv, s)


@scenario
def h_rate_limited_fetch(num):
    rng = random.Random(num)
    conv = Conv(rng, ["web_fetch", "read_file"], "Summarize the open issues labelled 'bug' on our GitHub repo.")
    res = ("HTTP 429 Too Many Requests\nx-ratelimit-remaining: 0\nx-ratelimit-reset: 1732047600\n"
           "{\"message\":\"API rate limit exceeded for 203.0.113.7.\"}")
    for _ in range(4):
        conv.turn("The API is rate limited; trying again.",
                  [("web_fetch", {"url": "https://api.github.com/repos/acme/app/issues?labels=bug"}, res)])
    s = Stream("llama", rng)
    s.text("Still rate limited; one more try after the reset.")
    s.call("web_fetch", {"url": "https://api.github.com/repos/acme/app/issues?labels=bug"})
    s.finish()
    healthy(num, "rate-limited-fetch", "retrying a rate-limited fetch",
            "Four identical 429 answers: a transient failure (the word 'rate limit'), so retrying "
            "is not a loop.", conv, s)


@scenario
def l_attempt_counter(num):
    # Item 2: only the attempt counter changes; the result is identical.
    rng = random.Random(num)
    conv = Conv(rng, ["http_request", "read_file"], "Why does the orders export come back empty?")
    res = "{\"status\":200,\"headers\":{\"content-type\":\"application/json\"},\"body\":{\"orders\":[],\"next\":null}}"
    for k in range(1, 4):
        conv.turn("The export was empty; requesting it again." if k > 1 else "",
                  [("http_request", {"method": "GET", "url": "http://localhost:8080/v1/orders/export?since=2024-11-01",
                                     "headers": {"Accept": "application/json"}, "attempt": k}, res)])
    s = Stream("ollama", rng, model="qwen3:14b")
    s.text("Still empty, retrying the export.", per=2)
    end = s.call("http_request", {"method": "GET", "url": "http://localhost:8080/v1/orders/export?since=2024-11-01",
                                  "headers": {"Accept": "application/json"}, "attempt": 4})
    s.finish()
    write(num, "attempt-counter-call", "cross-turn: the same request every turn, only `attempt` changes",
          "Ollama + qwen3: the identical GET each turn with an attempt counter 1, 2, 3, 4 and the "
          "identical empty result; the counter must not make the calls different (issue 12 item 2).",
          "loop", {"trip": True, "guard": ["cross_turn"], "onset_chunk": end, "by_chunk": end}, conv, s)


@scenario
def l_request_id_failure(num):
    rng = random.Random(num)
    conv = Conv(rng, ["web_fetch", "read_file"], "Check the v2 pricing endpoint of our API.")
    err = "Error: 404 Not Found: GET https://api.example.com/v2/pricing does not exist"
    for k, (rid, ts) in enumerate([("4f2a9c1e-55d2-4a8b-9e31-0b6f2d7c8a10", "2024-11-21T09:14:03Z"),
                                   ("b7e0c3d4-1a2b-4c5d-8e9f-a0b1c2d3e4f5", "2024-11-21T09:14:31Z")]):
        conv.turn("Fetching the endpoint." if k == 0 else "Let me try that again.",
                  [("web_fetch", {"url": "https://api.example.com/v2/pricing", "request_id": rid,
                                  "timestamp": ts}, err)])
    s = Stream("llama", rng)
    s.text("Retrying the pricing endpoint.")
    end = s.call("web_fetch", {"url": "https://api.example.com/v2/pricing",
                               "request_id": "0c9d8e7f-6a5b-4c3d-2e1f-001122334455", "timestamp": "2024-11-21T09:15:02Z"})
    s.finish()
    write(num, "request-id-failure", "failure: the same failing fetch with a fresh request id and timestamp",
          "Two identical 404s; the third attempt differs only in request_id and timestamp, which stamp "
          "the call and must not make it a new one (issue 12 item 2).",
          "loop", {"trip": True, "guard": ["failure", "cross_turn"], "onset_chunk": end, "by_chunk": end}, conv, s)


@scenario
def h_counter_progress(num):
    rng = random.Random(num)
    conv = Conv(rng, ["check_deploy", "bash"], "Deploy the api service and tell me when it is live.")
    conv.turn("", [("bash", {"command": "kubectl apply -f deploy/api.yaml"}, "deployment.apps/api configured")])
    for k, ready in enumerate([1, 2, 3, 4], start=1):
        conv.turn("Rolling out; checking again.",
                  [("check_deploy", {"deployment": "api", "attempt": k},
                    "{\"deployment\":\"api\",\"ready\":%d,\"desired\":5,\"status\":\"progressing\"}" % ready)])
    s = Stream("llama", rng)
    s.text("4 of 5 pods are ready; checking once more.")
    s.call("check_deploy", {"deployment": "api", "attempt": 5})
    s.finish()
    healthy(num, "counter-with-progress", "the same call with an attempt counter while the result changes",
            "An attempt counter, but every answer shows progress (1/5 ... 4/5 pods ready).", conv, s)


@scenario
def h_pagination(num):
    rng = random.Random(num)
    conv = Conv(rng, ["list_issues", "read_file"], "List every open issue labelled 'flaky'.", stream_usage=True)
    for page in range(1, 5):
        items = ",".join("{\"number\":%d,\"title\":\"%s\"}" % (400 - 10 * page - i, prose(rng, 1)[:40].strip())
                         for i in range(3))
        conv.turn("Next page." if page > 1 else "", [("list_issues", {"state": "open", "page": page}, "[" + items + "]")])
    s = Stream("vllm", rng, usage=True)
    s.text("Fetching page 5.")
    s.call("list_issues", {"state": "open", "page": 5})
    s.finish()
    healthy(num, "pagination", "paging through a list: only the page changes, results differ",
            "Five rounds of the same call with page 1..5; every page holds other issues.", conv, s)


def oc_cycle(conv, rounds, edit_ok):
    src = ("00001| export function isValid(token: Token): boolean {\n00002|   if (token) return true\n"
           "00003|   return false\n00004| }\n")
    fail = ("FAIL src/auth/token.test.ts\n  x rejects an expired token (3 ms)\n\n  Expected: false\n  Received: true\n\n"
            "Tests:       1 failed, 17 passed, 18 total")
    for k in range(rounds):
        conv.turn("Let me look at the token check.", [("read", {"filePath": "/home/dev/app/src/auth/token.ts"}, src)])
        if edit_ok:
            new = "if (token && token.exp > now()) return true" if k == 0 else "if (token && token.exp > now() - SKEW) return true"
            old = "if (token) return true" if k == 0 else "if (token && token.exp > now()) return true"
            conv.turn("Fixing the expiry check.", [("edit", {"filePath": "/home/dev/app/src/auth/token.ts",
                                                              "oldString": old, "newString": new},
                                                    "Edit applied successfully.")])
            src = src.replace(old, new)
            res = fail.replace("1 failed, 17 passed", "%d failed, %d passed" % (1 - (k > 0), 17 + (k > 0)))
            if k > 0:
                res = "PASS src/auth/token.test.ts\n\nTests:       18 passed, 18 total"
            conv.turn("Running the tests.", [("bash", {"command": "npx vitest run src/auth"}, res)])
        else:
            conv.turn("Fixing the expiry check.", [("edit", {"filePath": "/home/dev/app/src/auth/token.ts",
                                                              "oldString": "if (token) return true;",
                                                              "newString": "if (token && token.exp > now()) return true;"},
                                                    "Error: oldString not found in content")])
            conv.turn("Running the tests.", [("bash", {"command": "npx vitest run src/auth"}, fail)])


@scenario
def l_edit_fails_cycle(num):
    # Item 3: the failing edit and the identical test run changed nothing.
    rng = random.Random(num)
    conv = Conv(rng, ["read", "edit@oc", "bash"], "The expired-token test fails. Fix it.", model="glm-4.5-air")
    oc_cycle(conv, 3, False)
    s = Stream("vllm", rng, model="zai-org/GLM-4.5-Air")
    s.text("Let me look at the token check.")
    end = s.call("read", {"filePath": "/home/dev/app/src/auth/token.ts"})
    s.finish()
    write(num, "edit-fails-cycle", "cross-turn: read, a failing edit, the same failing tests, three rounds",
          "opencode + GLM: read -> edit (oldString not found: a stray ';') -> vitest with byte-identical "
          "output, three rounds; the fourth read must trip. A mutating call whose result is identical "
          "round after round changed nothing (issue 12 item 3).",
          "loop", {"trip": True, "guard": ["cross_turn", "failure"], "onset_chunk": end, "by_chunk": end}, conv, s)


@scenario
def h_edit_succeeds_cycle(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read", "edit@oc", "bash"], "The expired-token test fails. Fix it.", model="glm-4.5-air")
    oc_cycle(conv, 2, True)
    s = Stream("vllm", rng, model="zai-org/GLM-4.5-Air")
    s.text("Tests pass; let me read the final version once more.")
    s.call("read", {"filePath": "/home/dev/app/src/auth/token.ts"})
    s.finish()
    healthy(num, "edit-succeeds-cycle", "read, edit, test: the edit applies and the output changes",
            "The same read -> edit -> test cycle, but each edit succeeds and the test output moves on.",
            conv, s)


READ_FILES = ["package.json", "tsconfig.json", "src/index.ts", "src/server.ts", "src/routes/users.ts",
              "src/routes/orders.ts", "src/routes/items.ts", "src/models/user.ts", "src/models/order.ts",
              "src/models/item.ts", "src/db/pool.ts", "src/db/migrate.ts", "src/middleware/auth.ts",
              "src/middleware/errors.ts", "src/lib/logger.ts", "src/lib/config.ts", "test/users.test.ts",
              "test/orders.test.ts", "test/helpers.ts", "README.md"]


@scenario
def h_twenty_reads(num):
    # Item 6: twenty reads of twenty files in one answer is thoroughness.
    rng = random.Random(num)
    conv = Conv(rng, ["read", "grep", "glob"], "Review the whole API for missing authorization checks.")
    conv.turn("", [("glob", {"pattern": "**/*.ts"}, "\n".join(READ_FILES))])
    s = Stream("llama", rng)
    s.text("I'll read every source file before reviewing.")
    for f in READ_FILES:
        s.call("read", {"filePath": "/home/dev/api/" + f}, per=3)
    s.finish()
    healthy(num, "twenty-reads", "twenty reads of twenty different files in one answer",
            "opencode-style `read` fanned out over a whole project (llama.cpp): distinct files, "
            "not a name run (issue 12 item 6).", conv, s)


@scenario
def h_many_reads_ollama(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "list_dir", "grep"], "Summarize how each service handles retries.")
    s = Stream("ollama", rng, model="qwen3:30b-a3b")
    s.reasoning("There are 12 services; I need to read each client and its config.", per=2)
    for svc in ["billing", "catalog", "checkout", "email", "gateway", "inventory", "notify", "orders",
                "payments", "search", "shipping", "users"]:
        s.call("read_file", {"path": "services/%s/client.go" % svc})
        s.call("read_file", {"path": "services/%s/config.yaml" % svc})
    s.finish()
    healthy(num, "many-reads-ollama", "24 read_file calls of 24 files, Ollama index 0",
            "Two files per service for twelve services in one batch.", conv, s)


@scenario
def l_grep_spellings(num):
    rng = random.Random(num)
    conv = Conv(rng, ["grep", "read_file", "edit"], "Remove the deprecated fetchUserProfile helper.",
                stream_usage=True)
    s = Stream("vllm", rng, model="Qwen/Qwen2.5-Coder-7B-Instruct", usage=True)
    s.text("Searching for every use of the helper.")
    spellings = ["fetchUserProfile", "fetch_user_profile", "FetchUserProfile", "fetchUserProfile(",
                 "FETCH_USER_PROFILE", "fetch-user-profile", "fetchuserprofile", "fetchUserProfile\\(",
                 "fetch_User_Profile", "Fetch_User_Profile"]
    ends = [s.call("grep", {"pattern": p, "path": "src"}, per=2) for p in spellings]
    s.finish()
    write(num, "grep-spellings", "dedup: one search spelled ten ways in one answer",
          "A small coder model greps for the same symbol in every case and separator style; the "
          "fourth spelling trips (guards.dedup.max_similar), three are a legitimate search.",
          "loop", {"trip": True, "guard": ["dedup", "name_run"], "onset_chunk": ends[0] + 1, "by_chunk": ends[3]},
          conv, s)


def counter_loop(s, make, first, times, per, field="content"):
    """Emits make(first), make(first+1)...: a unit that changes only in a
    counter. Returns (onset, by) with by from the bytes rule, capped at 64."""
    emit = s.reasoning if field == "reasoning" else s.text
    emit(make(first), per=per)
    m = LoopMark(bound_bytes(len(make(first).encode())))
    m.start(s.n + 1)
    for k in range(first + 1, first + times):
        emit(make(k), per=per, on_piece=m.piece)
    return m.onset, near_by(m.onset, m.by)


@scenario
def l_table_row_counter(num):
    # Item 1: one row repeated, only its number changing.
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "grep"], "List every route of the API as a table.")
    s = Stream("llama", rng, model="qwen2.5-coder-7b-instruct-q4_k_m.gguf")
    s.text("Here are the routes:\n\n| # | Method | Path | Handler | Auth |\n|---|---|---|---|---|\n"
           "| 1 | GET | /api/v1/users | list_users | yes |\n| 2 | POST | /api/v1/users | create_user | yes |\n")
    onset, by = counter_loop(s, lambda k: "| %d | GET | /api/v1/users/{id} | get_user | yes |\n" % k, 3, 24, 1)
    s.finish("length")
    write(num, "table-row-counter", "counter: a table row repeated with only its number changing",
          "llama.cpp, one token per chunk: the model is stuck on one route and only the row number "
          "moves on. Exact repetition never sees it, and SimHash ignores windows this poor in words "
          "(issue 12 item 1).",
          "loop", {"trip": True, "guard": ["repeat"], "onset_chunk": onset, "by_chunk": by}, conv, s)


@scenario
def l_json_type_spaces(num):
    # Item 1: one JSON line repeated with varying spaces.
    rng = random.Random(num)
    conv = Conv(rng, ["write_file", "read_file"], "Give me the layer config of the model as JSON.",
                stream_usage=True)
    s = Stream("vllm", rng, model="zai-org/GLM-4.5-Air", usage=True)
    s.text("```json\n{\n  \"model\": \"tiny-conv\",\n  \"layers\": [\n    {\n      \"name\": \"conv1\",\n"
           "      \"kernel\": [3, 3],\n")
    pads = [6, 6, 7, 6, 8, 6, 6, 7]
    line = lambda k: " " * pads[k % len(pads)] + "\"type\":" + " " * (1 + (k % 5 == 3)) + "3.0,\n"
    onset, by = counter_loop(s, line, 0, 60, 1)
    s.finish("length")
    write(num, "json-line-spaces", "counter: one JSON line repeated with varying spaces",
          "GLM via vLLM writes `\"type\": 3.0,` again and again, indented and spaced a little "
          "differently each time: not an exact repeat, and its only words are `type` and numbers "
          "(issue 12 item 1).",
          "loop", {"trip": True, "guard": ["repeat"], "onset_chunk": onset, "by_chunk": by}, conv, s)


@scenario
def h_benchmark_table(num):
    rng = random.Random(num)
    conv = Conv(rng, ["bash", "read_file"], "Summarize the benchmark results as a table.")
    conv.turn("", [("bash", {"command": "./bench --threads 1,2,4,8,16,32"}, "see table")])
    s = Stream("llama", rng)
    rows = "| Threads | Requests/s | p50 (ms) | p99 (ms) | Speedup |\n|---:|---:|---:|---:|---:|\n"
    base = 8120
    for t in [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]:
        rps = int(base * min(t, 24) ** 0.93 * rng.uniform(0.97, 1.03))
        rows += "| %d | %d | %.1f | %.1f | %.2fx |\n" % (t, rps, rng.uniform(0.8, 3.5), rng.uniform(4, 40), rps / base)
    s.text("Throughput scales until 24 threads:\n\n" + rows, per=1)
    s.finish()
    healthy(num, "benchmark-table", "a numeric table: the same shape, numbers that really vary",
            "Twelve rows alike but for their numbers, none of them a counter.", conv, s)


@scenario
def h_json_schema(num):
    rng = random.Random(num)
    conv = Conv(rng, ["write_file"], "Write the JSON schema for the user record.", stream_usage=True)
    fields = [("id", "integer"), ("email", "string"), ("name", "string"), ("created_at", "string"),
              ("updated_at", "string"), ("is_admin", "boolean"), ("age", "integer"), ("country", "string"),
              ("locale", "string"), ("timezone", "string"), ("plan", "string"), ("seats", "integer"),
              ("score", "number"), ("tags", "array"), ("avatar_url", "string"), ("last_login", "string")]
    props = ",\n".join('    "%s": { "type": "%s" }' % (n, t) for n, t in fields)
    body = '{\n  "$schema": "https://json-schema.org/draft/2020-12/schema",\n  "type": "object",\n  "properties": {\n' + props + '\n  },\n  "required": ["id", "email"]\n}\n'
    s = Stream("vllm", rng, usage=True)
    s.call("write_file", {"path": "schemas/user.json", "content": body}, per=2)
    s.finish()
    healthy(num, "json-schema-properties", "a JSON schema: many properties of the same shape",
            "`\"x\": { \"type\": \"string\" }` again and again, each with its own name.", conv, s)


@scenario
def h_numbered_checklist(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file"], "Give me a release checklist.")
    items = ["Bump the version in package.json", "Update CHANGELOG.md", "Run the full test suite",
             "Build the Docker image", "Push the image to the registry", "Tag the release in git",
             "Deploy to staging", "Run the smoke tests on staging", "Deploy to production",
             "Watch the error rate for 30 minutes", "Announce the release in #eng", "Close the milestone"]
    text = "".join("%d. [ ] %s\n" % (i + 1, it) for i, it in enumerate(items))
    s = Stream("ollama", rng)
    s.text("Release checklist:\n\n" + text, per=1)
    s.finish()
    healthy(num, "numbered-checklist", "a numbered checklist", "Counters with real, different items.",
            conv, s)


def data_uri(rng, nbytes):
    return "data:image/png;base64," + base64.b64encode(bytes(rng.randrange(256) for _ in range(nbytes))).decode()


@scenario
def h_data_uri_twice(num):
    # Item 7: the same long passage twice in one file.
    rng = random.Random(num)
    conv = Conv(rng, ["write_file", "read_file"], "Make a single-file landing page, no external assets.")
    uri = data_uri(rng, 3600)
    html = ("<!doctype html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n  <title>Acme</title>\n"
            "  <link rel=\"icon\" type=\"image/png\" href=\"%s\">\n  <style>body{font-family:system-ui;margin:0}"
            "header{display:flex;gap:1rem;align-items:center;padding:1rem}</style>\n</head>\n<body>\n"
            "  <header>\n    <img class=\"logo\" alt=\"Acme\" width=\"48\" height=\"48\" src=\"%s\">\n"
            "    <h1>Acme</h1>\n  </header>\n  <main><p>Everything in one file.</p></main>\n</body>\n</html>\n"
            % (uri, uri))
    s = Stream("llama", rng)
    s.text("Here is the page, with the icon inlined for both the favicon and the logo.")
    s.call("write_file", {"path": "index.html", "content": html}, per=6)
    s.finish()
    healthy(num, "data-uri-twice", "the same 4.8 KB data URI twice in one file",
            "Favicon and logo share one base64 image: a long passage written twice, which exact "
            "repetition allows and SimHash must too (issue 12 item 7).", conv, s)


@scenario
def l_data_uri_flood(num):
    rng = random.Random(num)
    conv = Conv(rng, ["write_file"], "Add the star icon to every rating row.")
    tag = "    <img class=\"star\" alt=\"\" src=\"%s\">\n" % data_uri(rng, 180)
    head = "<div class=\"rating\">\n"
    content = head + tag * 12 + "</div>\n"
    s = Stream("llama", rng)
    s.text("Adding the stars.")
    a = args_json({"path": "partials/rating.html", "content": content})
    esc_first = args_json({"path": "partials/rating.html", "content": head + tag})[:-2]
    m = LoopMark(bound_bytes(len(json.dumps(tag)[1:-1].encode())))
    idx = s.n_calls
    s.n_calls += 1
    s._chunk({"tool_calls": [{"index": idx, "id": s._call_id(), "type": "function",
                              "function": {"name": "write_file", "arguments": ""}}]})
    sent = 0
    for p in s._pieces(a, 6):
        s._chunk({"tool_calls": [{"index": idx, "function": {"arguments": p}}]})
        sent += len(p)
        if m.onset is None and sent > len(esc_first):
            m.start(s.n)
            m.piece(s.n, a[len(esc_first):sent])
        elif m.onset is not None:
            m.piece(s.n, p)
    s.finish()
    write(num, "data-uri-flood", "repeat: the same inlined image again and again",
          "A write whose content repeats one `<img>` with a 240-byte data URI 12 times: exact "
          "repetition, cut at the third copy (the twin of 064, where it appears twice).",
          "loop", {"trip": True, "guard": ["repeat", "simhash"], "onset_chunk": m.onset, "by_chunk": m.by},
          conv, s)


@scenario
def h_generated_handlers(num):
    # Item 8: generated code that differs only in numbers and names.
    rng = random.Random(num)
    conv = Conv(rng, ["write_file", "read_file"], "Generate one HTTP handler per opcode in ops.py.")
    codes = [0, 7, 12, 13, 19, 21, 22, 30, 31, 37, 40, 44, 45, 51, 58, 60, 61, 64, 70, 77, 80, 88, 93, 99]
    code = ("from fastapi import APIRouter, Request\n\nfrom .dispatch import SCHEMAS, decode, dispatch\n\n"
            "router = APIRouter()\n\n")
    for c in codes:
        code += ("\n@router.post(\"/ops/%d\")\nasync def handle_%d(req: Request):\n"
                 "    payload = decode(await req.body(), schema=SCHEMAS[%d])\n"
                 "    return dispatch(%d, payload)\n\n" % (c, c, c, c))
    s = Stream("llama", rng)
    s.text("I'll generate the handlers.")
    s.call("write_file", {"path": "app/ops.py", "content": code}, per=3)
    s.finish()
    healthy(num, "generated-handlers", "24 generated handlers that differ only in numbers and names",
            "Table-driven code: `handle_0`, `handle_7`, ... each the same body; every handler adds a "
            "new identifier (issue 12 item 8).", conv, s)


@scenario
def h_generated_go_code(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file"], "Show me the route handlers for the admin API in Go.", stream_usage=True)
    names = ["ListUsers", "GetUser", "CreateUser", "UpdateUser", "DeleteUser", "ListTeams", "GetTeam",
             "CreateTeam", "DeleteTeam", "ListKeys", "CreateKey", "RevokeKey", "ListAudit", "ExportAudit",
             "GetSettings", "UpdateSettings"]
    code = "```go\npackage admin\n\nimport \"net/http\"\n\n"
    for i, n in enumerate(names):
        code += ("// handle%s serves op %d.\nfunc handle%s(w http.ResponseWriter, r *http.Request) {\n"
                 "\tserve(w, r, op%s, %d)\n}\n\n" % (n, i + 1, n, n, i + 1))
    code += "```\n"
    s = Stream("vllm", rng, usage=True)
    s.text("Each handler forwards to `serve` with its op:\n\n" + code, per=1)
    s.finish()
    healthy(num, "generated-go-handlers", "generated Go handlers in a fenced block of the answer",
            "Sixteen functions alike but for their names, shown in the answer text.", conv, s)


@scenario
def l_handler_same_name(num):
    rng = random.Random(num)
    conv = Conv(rng, ["write_file", "read_file"], "Generate one HTTP handler per opcode in ops.py.")
    head = ("from fastapi import APIRouter, Request\n\nfrom .dispatch import SCHEMAS, decode, dispatch\n\n"
            "router = APIRouter()\n\n")
    fn = lambda c: ("\n@router.post(\"/ops/%d\")\nasync def handle_op(req: Request):\n"
                    "    payload = decode(await req.body(), schema=SCHEMAS[%d])\n"
                    "    return dispatch(%d, payload)\n\n" % (c, c, c))
    content = head + "".join(fn(c) for c in range(16))
    s = Stream("llama", rng)
    s.text("I'll generate the handlers.")
    a = args_json({"path": "app/ops.py", "content": content})
    esc_first = args_json({"path": "app/ops.py", "content": head + fn(0)})[:-2]
    m = LoopMark(bound_bytes(len(json.dumps(fn(0))[1:-1].encode())))
    idx = s.n_calls
    s.n_calls += 1
    s._chunk({"tool_calls": [{"index": idx, "id": s._call_id(), "type": "function",
                              "function": {"name": "write_file", "arguments": ""}}]})
    sent = 0
    for p in s._pieces(a, 3):
        s._chunk({"tool_calls": [{"index": idx, "function": {"arguments": p}}]})
        sent += len(p)
        if m.onset is None and sent > len(esc_first):
            m.start(s.n)
            m.piece(s.n, a[len(esc_first):sent])
        elif m.onset is not None:
            m.piece(s.n, p)
    s.finish()
    write(num, "handler-same-name", "counter: the same handler again, only its opcode counting up",
          "The twin of 066: every copy is `handle_op` with the opcode counting 0, 1, 2...: nothing "
          "new but a counter.",
          "loop", {"trip": True, "guard": ["repeat", "simhash"], "onset_chunk": m.onset,
                   "by_chunk": near_by(m.onset, m.by)}, conv, s)


def paraphrase_loop(s, rng, intro, slots, cycles, per=1, field="reasoning"):
    """Reasoning that restates one plan again and again: each cycle picks one
    phrasing per slot (never the same sentence twice in a row). Returns the
    onset (the first chunk of the second statement of the plan)."""
    emit = s.reasoning if field == "reasoning" else s.text
    emit(intro, per=per)
    onset = None
    last = [None] * len(slots)
    for c in range(cycles):
        if c == 1:
            onset = s.n + 1
        for i, variants in enumerate(slots):
            choices = [v for v in variants if v != last[i]] or variants
            last[i] = rng.choice(choices)
            emit(last[i] + " ", per=per)
    return onset


@scenario
def l_paraphrase_gpt_oss(num):
    # Item 5: gpt-oss keeps rephrasing the same plan.
    rng = random.Random(num)
    conv = Conv(rng, ["read", "edit@oc", "bash"], "Make fetchJson retry on network errors.",
                stream_usage=True, model="gpt-oss-20b")
    conv.turn("", [("read", {"filePath": "/home/dev/web/src/api/client.ts"},
                    "00001| export async function fetchJson(url: string, init?: RequestInit) {\n"
                    "00002|   const res = await fetch(url, init)\n00003|   if (!res.ok) throw new HttpError(res.status)\n"
                    "00004|   return res.json()\n00005| }\n")])
    slots = [
        ["We need to add retry logic to fetchJson.", "We need to make fetchJson retry on failure.",
         "We need fetchJson to retry when the request fails.", "The task: fetchJson must retry failed requests."],
        ["Let's wrap the fetch call in a loop.", "Let's put the fetch call inside a retry loop.",
         "So we wrap fetch in a loop that retries.", "Let's loop around the fetch call."],
        ["Use exponential backoff, three attempts.", "Three attempts with exponential backoff should do.",
         "We can do up to three attempts, doubling the delay.", "Backoff exponentially, at most three attempts."],
        ["Only retry network errors, not HTTP errors.", "Network errors are retried; HttpError is not.",
         "We should not retry on HttpError, only on network failures."],
        ["Then we edit src/api/client.ts.", "So we need to edit src/api/client.ts.",
         "Then apply the edit to src/api/client.ts.", "We'll produce the edit for src/api/client.ts."],
        ["Let's do it.", "Let's implement.", "Ok.", "Let's produce the edit."],
    ]
    s = Stream("vllm", rng, model="openai/gpt-oss-20b", usage=True)
    onset = paraphrase_loop(s, rng, "The user wants fetchJson to retry on network errors. ", slots, 10)
    s.finish("length")
    write(num, "paraphrase-plan-gpt-oss", "reasoning: the same plan rephrased again and again (gpt-oss)",
          "gpt-oss via vLLM (one token per chunk) restates its plan in shuffled phrasings without ever "
          "calling the edit tool: no sentence repeats verbatim in a row, so neither exact repetition "
          "nor SimHash sees it soon (issue 12 item 5: cut 250 chunks past the onset).",
          "loop", {"trip": True, "guard": ["paraphrase", "simhash", "repeat"], "onset_chunk": onset,
                   "by_chunk": onset + 64}, conv, s)


@scenario
def l_paraphrase_qwen3(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "bash", "edit"], "The CSV export drops the last row. Fix it.",
                model="qwen3:30b-a3b")
    slots = [
        ["Okay, so the export loses the last row.", "So the last row of the export goes missing.",
         "Right, the export drops the last row."],
        ["The loop in export_rows probably stops one row short.",
         "Maybe the loop in export_rows ends one row too early.",
         "I think the loop in export_rows is off by one row."],
        ["I should read export.py to check the loop bounds.", "Let me open export.py and check the loop bounds.",
         "I need to check the loop bounds in export.py."],
        ["If the loop uses range(len(rows) - 1), that's the bug.",
         "If the range is len(rows) - 1, the loop skips the last row.",
         "A loop over range(len(rows) - 1) would drop the last row."],
        ["Wait, let me think again.", "Hmm, let me reconsider.", "Wait."],
    ]
    s = Stream("ollama", rng, model="qwen3:30b-a3b")
    onset = paraphrase_loop(s, rng, "The user says the CSV export drops the last row. ", slots, 10)
    s.finish("length")
    write(num, "paraphrase-plan-qwen3", "reasoning: a hypothesis rephrased again and again (qwen3, Ollama)",
          "Ollama's `reasoning` field: the model circles on one hypothesis and one intended action in "
          "varied words (keeping the terms of the problem, as restatements do) and never reads the file.",
          "loop", {"trip": True, "guard": ["paraphrase", "simhash", "repeat"], "onset_chunk": onset,
                   "by_chunk": onset + 64}, conv, s)


@scenario
def h_reasoning_progress(num):
    # Item 5's healthy twin: long reasoning that revisits its plan while making progress.
    rng = random.Random(num)
    conv = Conv(rng, ["read", "edit@oc", "bash"], "Make fetchJson retry on network errors.",
                stream_usage=True, model="gpt-oss-20b")
    r = ("The user wants fetchJson to retry on network errors. We need to add retry logic to fetchJson. "
         "Let's look at how it fails today: fetch rejects with a TypeError on a network failure, and the "
         "function throws HttpError when res.ok is false. So retry on TypeError only; HttpError means the "
         "server answered. We need to decide the delays: 100 ms, then 200, then 400, so three attempts "
         "take under a second. Let's also respect init.signal: if the caller aborted, an AbortError comes "
         "back and we must not retry it. We need to check whether AbortError is a TypeError. In browsers it "
         "is a DOMException named AbortError, in Node's undici too, so checking err.name works. "
         "Let's revisit the plan: wrap fetch in a loop of three attempts, sleep between them, rethrow the "
         "last error. Wait, the tests mock fetch with vi.fn and expect one call on failure; test/api.test.ts "
         "line 42 asserts toHaveBeenCalledTimes(1). We need to update that test to expect three calls, and "
         "use fake timers so the backoff does not slow the suite. Let's also export a small sleep helper "
         "from src/util/time.ts, since there is already a delay function there named wait. Actually wait() "
         "takes seconds, not milliseconds, so pass 0.1, 0.2, 0.4. Let me restate the plan to be sure: "
         "edit src/api/client.ts to loop three times around fetch, retry only TypeError, never AbortError, "
         "wait 0.1 s doubling each time; then change the expectation in test/api.test.ts and enable "
         "vi.useFakeTimers there; then run the tests. That covers it. Let's do the client edit first.")
    s = Stream("vllm", rng, model="openai/gpt-oss-20b", usage=True)
    s.reasoning(r, per=1)
    s.call("edit", {"filePath": "/home/dev/web/src/api/client.ts", "oldString": "  const res = await fetch(url, init)",
                    "newString": "  const res = await retry(() => fetch(url, init), 3)"}, per=3)
    s.finish()
    healthy(num, "reasoning-revisits-plan", "long reasoning that restates its plan while making progress",
            "gpt-oss-style reasoning that comes back to its plan three times, each time with new facts "
            "(the error types, the abort signal, the test to update, the helper's units).", conv, s)


@scenario
def h_reasoning_debugging(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "bash", "edit"], "The CSV export drops the last row. Fix it.",
                model="qwen3:30b-a3b")
    conv.turn("", [("read_file", {"path": "app/export.py"},
                    "def export_rows(rows, out):\n    w = csv.writer(out)\n    for i in range(len(rows)):\n"
                    "        w.writerow(rows[i])\n    return len(rows)\n")])
    r = ("Okay, so the export loses the last row. I expected an off-by-one in export_rows, but the loop is "
         "range(len(rows)), which is correct. So the bug is elsewhere. Maybe the caller passes rows already "
         "missing the last element. Let me think about where rows comes from: fetch_rows in db.py pages "
         "through the table with LIMIT and OFFSET. If the last page is smaller than the page size, the loop "
         "there might stop before appending it. Hmm, another possibility: csv.writer buffers, and the "
         "response closes the stream before flush, so the last row never reaches the client. That would "
         "show up only for big exports, and the user said every export loses one row, even tiny ones. So "
         "buffering is less likely. Back to fetch_rows: a typical bug is while len(page) == size, which "
         "drops a final partial page; but that would lose many rows, not exactly one. Exactly one row "
         "suggests the header handling: if the code skips the first data row thinking it is a header, the "
         "count is off by one too, but that loses the first row, not the last. Let me reconsider: the "
         "return value len(rows) is used by the view to set Content-Length? No, that would be bytes. I "
         "should read db.py's fetch_rows and the view in views/export.py before guessing further; the view "
         "slices rows[:-1] maybe to drop a trailing total line. That is the most specific hypothesis: a "
         "slice meant for a totals row that no longer exists. Let me read the view first, then db.py.")
    s = Stream("ollama", rng, model="qwen3:30b-a3b")
    s.reasoning(r, per=1)
    s.call("read_file", {"path": "app/views/export.py"})
    s.finish()
    healthy(num, "reasoning-debugging", "reasoning that weighs several hypotheses and returns to one",
            "Long debugging reasoning that revisits the same function and the same symptom several times, "
            "each time with a new hypothesis or a new fact.", conv, s)


# ---------------------------------------------- issue 12 item 10: tasks ----
# A new user message starts a new task for the history check; a request to
# go on with the answer before it does not.

QWEN_RESUME = ("Output token limit hit. Resume directly \u2014 no apology, no recap of what you were "
               "doing. Pick up mid-thought if that is where the cut happened. Break remaining work "
               "into smaller pieces.")
BUILD_PARA = ("The build uses CMake and the sources live in src/. To build it, run cmake and then "
              "make; the tests run with ctest. ")


def merged_cut_answers(conv):
    """Qwen Code keeps its five cut answers as one assistant message."""
    conv.say("assistant", ("Here is how the build works.\n\n" + BUILD_PARA * 3)[:324] * 5)


@scenario
def h_new_instruction_after_loop(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "bash"], "Explain how to build this project.", stream_usage=True)
    merged_cut_answers(conv)
    conv.say("user", "Thanks. A new task now: list the test targets.")
    s = Stream("llama", rng, usage=True)
    s.text("The test targets are test_unit, test_integration and test_fuzz; run them with ctest.", per=2)
    s.finish("stop")
    healthy(num, "new-instruction-after-loop", "a new instruction after a looping answer",
            "Qwen Code's five cut answers kept as one looping assistant message, then the user's new, "
            "different instruction: a new task, which the history check must let through (issue 12 "
            "item 10: it used to answer every later instruction of the session).", conv, s)


@scenario
def l_resume_after_loop(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "bash"], "Explain how to build this project.", stream_usage=True)
    merged_cut_answers(conv)
    conv.say("user", QWEN_RESUME)
    s = Stream("llama", rng, usage=True)
    text_loop(s, BUILD_PARA, 12, 3)
    s.finish("length")
    write(num, "resume-after-loop", "history: a recovery turn after a looping answer",
          "The twin of the new instruction: the same looping assistant message, then Qwen Code's "
          "recovery turn asking to go on with it. It continues the task: the history check must "
          "answer before the upstream is called.",
          "loop", {"trip": True, "guard": ["repeat", "simhash"], "onset_chunk": 0, "by_chunk": 0},
          conv, s)


def reread_rounds(conv):
    for _ in range(4):
        conv.turn("Let me check the README.", [("read", {"filePath": "/w/README.md"},
                                                "# demo\n\nA small demo project.\n")])
    conv.say("assistant", "The README does not mention an install step.")


@scenario
def h_new_instruction_after_reread(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read", "bash"], "Check the README until it mentions the install step.")
    reread_rounds(conv)
    conv.say("user", "Add an install section to the README, then read it back.")
    s = Stream("llama", rng)
    s.text("I will read the README first, then add the section.", per=3)
    s.call("read", {"filePath": "/w/README.md"})
    s.finish("tool_calls")
    healthy(num, "new-instruction-after-reread", "the same read as the first step of a new task",
            "Four identical reads of the README with the same result (a loop), a final answer, then a "
            "new instruction whose first step reads the README again: the new task's first round, not "
            "a fifth (issue 12 item 10).", conv, s)


@scenario
def l_continue_after_reread(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read", "bash"], "Check the README until it mentions the install step.")
    reread_rounds(conv)
    conv.say("user", "continue")
    s = Stream("llama", rng)
    s.call("read", {"filePath": "/w/README.md"})
    s.finish("tool_calls")
    write(num, "continue-after-reread", "history: continue after four identical reads",
          "The twin: the same four rounds and final answer, then a bare \"continue\": the task goes "
          "on, and its last four rounds are one call with one result.",
          "loop", {"trip": True, "guard": ["cross_turn"], "onset_chunk": 0, "by_chunk": 0}, conv, s)


# ------------------------------ guards2: long passages and benchmark prose ----
# A passage longer than SimHash's old horizon (about 250 tokens) written a
# third time, not back to back; and its twins. Reasoning that restates one
# measurement template with new numbers (a benchmark log), and its twin.

RETRY_FUNC = (
    "def fetch_json(url, *, attempts=3, base_delay=0.1, timeout=5.0, session=None):\n"
    "    \"\"\"GET <url> and decode its JSON body, retrying network failures.\n\n"
    "    Connection errors and timeouts are retried up to <attempts> times with an\n"
    "    exponential backoff starting at <base_delay> seconds; an HTTP error status\n"
    "    means the server answered and is raised at once as HTTPError.\n"
    "    \"\"\"\n"
    "    session = session or requests.Session()\n"
    "    delay = base_delay\n"
    "    last_error = None\n"
    "    for attempt in range(1, attempts + 1):\n"
    "        try:\n"
    "            response = session.get(url, timeout=timeout)\n"
    "        except (requests.ConnectionError, requests.Timeout) as err:\n"
    "            last_error = err\n"
    "            log.warning(\"fetch %s failed (attempt %d of %d): %s\", url, attempt, attempts, err)\n"
    "            if attempt == attempts:\n"
    "                break\n"
    "            time.sleep(delay)\n"
    "            delay *= 2\n"
    "            continue\n"
    "        response.raise_for_status()\n"
    "        try:\n"
    "            return response.json()\n"
    "        except ValueError as err:\n"
    "            raise ValueError(f\"{url} did not return JSON: {response.text[:200]!r}\") from err\n"
    "    raise FetchError(f\"{url}: giving up after {attempts} attempts\") from last_error\n")

RETRY_TESTS = (
    "\n\ndef test_fetch_json_retries_connection_errors(monkeypatch):\n"
    "    calls = []\n"
    "    def fake_get(url, timeout):\n"
    "        calls.append(url)\n"
    "        if len(calls) < 3:\n"
    "            raise requests.ConnectionError(\"connection refused\")\n"
    "        return FakeResponse(200, {\"ok\": True})\n"
    "    session = FakeSession(fake_get)\n"
    "    monkeypatch.setattr(time, \"sleep\", lambda seconds: None)\n"
    "    assert fetch_json(\"https://api.example.com/items\", session=session) == {\"ok\": True}\n"
    "    assert len(calls) == 3\n"
    "\n\ndef test_fetch_json_raises_http_errors_at_once():\n"
    "    session = FakeSession(lambda url, timeout: FakeResponse(503, None))\n"
    "    with pytest.raises(requests.HTTPError):\n"
    "        fetch_json(\"https://api.example.com/items\", session=session)\n"
    "    assert session.calls == 1\n"
    "\n\ndef test_fetch_json_rejects_a_body_that_is_not_json():\n"
    "    session = FakeSession(lambda url, timeout: FakeResponse(200, None, text=\"<html>oops</html>\"))\n"
    "    with pytest.raises(ValueError, match=\"did not return JSON\"):\n"
    "        fetch_json(\"https://api.example.com/items\", session=session)\n"
    "\n\ndef test_fetch_json_gives_up_after_the_last_attempt(monkeypatch):\n"
    "    session = FakeSession(lambda url, timeout: (_ for _ in ()).throw(requests.Timeout(\"slow\")))\n"
    "    monkeypatch.setattr(time, \"sleep\", lambda seconds: None)\n"
    "    with pytest.raises(FetchError, match=\"giving up after 3 attempts\"):\n"
    "        fetch_json(\"https://api.example.com/items\", session=session, attempts=3)\n"
    "    assert session.calls == 3\n")


@scenario
def l_long_passage_thrice(num):
    # A function and its tests, ~310 words (SimHash tokens), printed again
    # and again with a sentence of commentary between the copies (two
    # sentences, alternating): not back to back with one period until the
    # commentary comes round again. Before guards2, copy 1 was past
    # SimHash's horizon (history 128 windows x 4 tokens = 512 tokens) when
    # copy 3 came, so copy 3 matched only one earlier place (a passage
    # written twice, neutral); and windows were compared only with earlier
    # windows on the same 4-token grid, which a copy whose length is not a
    # multiple of 4 never lands on: nothing caught the loop.
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "edit", "bash"], "Make fetch_json in src/http_util.py retry on "
                "network errors, and show me the final function.", stream_usage=True)
    conv.turn("", [("read_file", {"path": "src/http_util.py"}, "import requests\n\ndef fetch_json(url):\n"
                    "    return requests.get(url).json()\n")])
    between = ["Let me double-check the edge cases once more before finishing.\n\n",
               "Wait, I should make sure the backoff is right. Here is the final version again:\n\n"]
    unit = "```python\n" + RETRY_FUNC + RETRY_TESTS + "```\n\n"
    s = Stream("vllm", rng, model="Qwen/Qwen3-Coder-30B-A3B-Instruct", usage=True)
    s.text("Here is the final function with retries, and its tests:\n\n", per=4)
    s.text(unit, per=4)
    # The bound: copies 2 to 4 (3 periods, reps 3 beyond 1 KiB).
    m = LoopMark(3 * len(unit.encode()) + len(between[1].encode()) + len(between[0].encode()))
    for k in range(3):
        s.text(between[k % len(between)], per=4, on_piece=m.piece)
        if m.onset is None:
            m.start(s.n + 1)
        s.text(unit, per=4, on_piece=m.piece)
    s.finish("length")
    write(num, "long-passage-thrice", "simhash: a long passage written again and again, not back to back",
          "Qwen3-Coder via vLLM prints its final function and tests (about 310 words) once more "
          "after every sentence of commentary. Two copies are a passage quoted twice; the third "
          "follows new words (neutral); the fourth matches three earlier places after nothing new. "
          "Before guards2, copy 1 had left SimHash's 512-token history when copy 3 came, windows "
          "were compared on a 4-token grid the copies did not land on, and nothing caught it.",
          "loop", {"trip": True, "guard": ["simhash"], "onset_chunk": m.onset, "by_chunk": m.by},
          conv, s)


@scenario
def h_long_passage_twice(num):
    rng = random.Random(num)
    conv = Conv(rng, ["read_file", "edit", "bash"], "Make fetch_json retry on network errors; show the "
                "function before and after the review comments.")
    s = Stream("vllm", rng, model="Qwen/Qwen3-Coder-30B-A3B-Instruct")
    s.text("Here is the function with retries:\n\n```python\n" + RETRY_FUNC + "```\n\n", per=2)
    s.text("The review asked for nothing but a docstring fix, which I made; the function as it is "
           "now in src/http_util.py, for the record:\n\n```python\n" + RETRY_FUNC + "```\n\n", per=2)
    s.text("Run `pytest tests/test_http_util.py` to check it; the new test covers three failed "
           "connections and a timeout.", per=2)
    s.finish("stop")
    healthy(num, "long-passage-twice", "a long function shown twice, with text between",
            "The nearest twin of the long passage written again and again: the same ~330-token "
            "function quoted twice in one answer (before and after a review), which is a quotation, "
            "not a loop.", conv, s)


HEADER = (
    "# Copyright 2024 Acme Corp.\n"
    "#\n"
    "# Licensed under the Apache License, Version 2.0 (the \"License\");\n"
    "# you may not use this file except in compliance with the License.\n"
    "# You may obtain a copy of the License at\n"
    "#\n"
    "#     http://www.apache.org/licenses/LICENSE-2.0\n"
    "#\n"
    "# Unless required by applicable law or agreed to in writing, software\n"
    "# distributed under the License is distributed on an \"AS IS\" BASIS,\n"
    "# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.\n"
    "# See the License for the specific language governing permissions and\n"
    "# limitations under the License.\n"
    "\n"
    "from __future__ import annotations\n\n"
    "import json\nimport logging\nimport os\nimport time\nfrom dataclasses import dataclass, field\n"
    "from typing import Any, Iterable, Mapping, Optional\n\n"
    "import requests\n\n"
    "from acme.config import Settings, load_settings\nfrom acme.errors import AcmeError, RetryableError\n"
    "from acme.telemetry import counter, histogram, tracer\n\n"
    "log = logging.getLogger(__name__)\n"
    "settings: Settings = load_settings(os.environ.get(\"ACME_ENV\", \"dev\"))\n\n")


@scenario
def h_three_files_same_header(num):
    rng = random.Random(num)
    conv = Conv(rng, ["write_file", "read_file"], "Split the client into three modules: users, orders "
                "and invoices, each with the project's standard header.")
    bodies = [
        ("acme/users.py", "@dataclass\nclass User:\n    id: int\n    email: str\n    name: str = \"\"\n\n\n"
         "def get_user(user_id: int) -> User:\n    with tracer.span(\"users.get\"):\n"
         "        r = requests.get(f\"{settings.api}/users/{user_id}\", timeout=settings.timeout)\n"
         "        r.raise_for_status()\n        counter(\"users.fetched\").inc()\n"
         "        return User(**r.json())\n"),
        ("acme/orders.py", "@dataclass\nclass Order:\n    id: int\n    user_id: int\n"
         "    lines: list[Mapping[str, Any]] = field(default_factory=list)\n\n\n"
         "def orders_for(user_id: int, since: Optional[float] = None) -> Iterable[Order]:\n"
         "    params = {\"user\": user_id, \"since\": since or 0}\n"
         "    started = time.monotonic()\n"
         "    r = requests.get(f\"{settings.api}/orders\", params=params, timeout=settings.timeout)\n"
         "    histogram(\"orders.latency\").observe(time.monotonic() - started)\n"
         "    if r.status_code == 429:\n        raise RetryableError(\"orders: rate limited\")\n"
         "    return [Order(**o) for o in r.json()[\"orders\"]]\n"),
        ("acme/invoices.py", "class InvoiceError(AcmeError):\n    \"\"\"An invoice could not be rendered.\"\"\"\n\n\n"
         "def render_invoice(order_id: int, locale: str = \"en\") -> bytes:\n"
         "    payload = json.dumps({\"order\": order_id, \"locale\": locale})\n"
         "    r = requests.post(f\"{settings.api}/invoices/render\", data=payload,\n"
         "                      headers={\"Content-Type\": \"application/json\"}, timeout=30)\n"
         "    if not r.ok:\n        raise InvoiceError(f\"order {order_id}: HTTP {r.status_code}\")\n"
         "    log.info(\"rendered invoice for order %d (%d bytes)\", order_id, len(r.content))\n"
         "    return r.content\n"),
    ]
    s = Stream("vllm", rng, model="Qwen/Qwen3-Coder-30B-A3B-Instruct")
    s.text("Here are the three modules; each starts with the project's license header and the "
           "shared imports.\n\n", per=2)
    for path, body in bodies:
        s.text("`%s`:\n\n```python\n%s%s```\n\n" % (path, HEADER, body), per=2)
    s.text("Import them from `acme/__init__.py` as before.", per=2)
    s.finish("stop")
    healthy(num, "three-files-same-header", "three files with the same long header",
            "The twin of the long passage written three times: three modules in one answer, each "
            "beginning with the same ~300-token license header and imports, each with its own body. "
            "The third header matches two earlier places, but the text brought new words since the "
            "last of them (SimHash's fresh-word rule).", conv, s)


@scenario
def h_progressive_versions(num):
    rng = random.Random(num)
    conv = Conv(rng, ["write_file", "read_file"], "Walk me through building a small rate limiter in "
                "Python, step by step, showing the whole class each time.")
    v1 = ("class TokenBucket:\n"
          "    \"\"\"A token bucket: <rate> tokens a second, at most <burst> saved up.\"\"\"\n\n"
          "    def __init__(self, rate: float, burst: int, clock=time.monotonic):\n"
          "        if rate <= 0 or burst <= 0:\n"
          "            raise ValueError(\"rate and burst must be positive\")\n"
          "        self.rate = rate\n        self.burst = burst\n        self.clock = clock\n"
          "        self.tokens = float(burst)\n        self.updated = clock()\n\n"
          "    def _refill(self) -> None:\n        now = self.clock()\n"
          "        elapsed = now - self.updated\n        self.updated = now\n"
          "        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)\n\n"
          "    def try_acquire(self, n: int = 1) -> bool:\n        self._refill()\n"
          "        if self.tokens >= n:\n            self.tokens -= n\n            return True\n"
          "        return False\n")
    v2 = v1 + ("\n    def wait_time(self, n: int = 1) -> float:\n"
               "        \"\"\"Seconds until <n> tokens are available (0 when they are now).\"\"\"\n"
               "        self._refill()\n        missing = n - self.tokens\n"
               "        return 0.0 if missing <= 0 else missing / self.rate\n")
    v3 = v2 + ("\n    def acquire(self, n: int = 1, timeout: float | None = None) -> bool:\n"
               "        \"\"\"Blocks until <n> tokens are taken, or <timeout> seconds pass.\"\"\"\n"
               "        deadline = None if timeout is None else self.clock() + timeout\n"
               "        while not self.try_acquire(n):\n            pause = self.wait_time(n)\n"
               "            if deadline is not None and self.clock() + pause > deadline:\n"
               "                return False\n            time.sleep(pause)\n        return True\n")
    s = Stream("vllm", rng, model="Qwen/Qwen3-Coder-30B-A3B-Instruct")
    s.text("Step 1, the bucket itself: it refills lazily, from the time elapsed since the last "
           "call.\n\n```python\n" + v1 + "```\n\n", per=2)
    s.text("Step 2, callers want to know how long to back off, so we add `wait_time`:\n\n```python\n"
           + v2 + "```\n\n", per=2)
    s.text("Step 3, a blocking `acquire` with an optional timeout, built on the two:\n\n```python\n"
           + v3 + "```\n\n", per=2)
    s.text("That is the whole limiter; a test with a fake clock comes next.", per=2)
    s.finish("stop")
    healthy(num, "progressive-versions", "a class shown whole three times as it grows",
            "A tutorial answer that prints the whole class after each step: its first version "
            "appears three times, but each new version adds methods (new words) after it.", conv, s)


@scenario
def h_benchmark_reasoning(num):
    # The paraphrase watchdog's known limit: prose that restates one
    # measurement template, sentence after sentence, with new numbers. Each
    # sentence shares most of its words with the one before (run, build,
    # took, p99, cache, warm...), but each reports a new measurement.
    rng = random.Random(num)
    conv = Conv(rng, ["bash", "read_file"], "Did the cache change make /api/search faster? The benchmark "
                "output is in bench.log.", stream_usage=True, model="gpt-oss-20b")
    conv.turn("", [("read_file", {"path": "bench.log"}, "run,build,cache,p50_ms,p99_ms\n"
                    "1,old,cold,212,412\n2,old,warm,181,398\n3,new,cold,121,251\n4,new,warm,102,247\n"
                    "5,new,warm,109,263\n6,old,warm,186,405\n7,new,cold,118,244\n8,old,cold,209,431\n")])
    r = ("The user wants to know whether the cache change made the search endpoint faster. Let me go "
         "through the runs in bench.log one by one. Run 1 on the old build took 412 ms at p99 with the "
         "cache cold. Run 2 on the old build took 398 ms at p99 with the cache warm. Run 3 on the new "
         "build took 251 ms at p99 with the cache cold. Run 4 on the new build took 247 ms at p99 with the "
         "cache warm. Run 5 on the new build took 263 ms at p99 with the cache warm, a little noisier. "
         "Run 6 on the old build took 405 ms at p99 with the cache warm. Run 7 on the new build took 244 "
         "ms at p99 with the cache cold. Run 8 on the old build took 431 ms at p99 with the cache cold. "
         "The p50 column tells the same story: 212, 181, 186 and 209 ms for the old build, 121, 102, 109 "
         "and 118 ms for the new one. So the new build is about 150 ms faster at p99 whatever the cache "
         "state, and the warm cache matters less than the build. I'll answer with a short table.")
    s = Stream("vllm", rng, model="openai/gpt-oss-20b", usage=True)
    s.reasoning(r, per=1)
    s.text("Yes: the new build is about 150 ms faster at p99 (about 250 ms against 400 ms), with a "
           "cold or a warm cache alike.", per=2)
    s.finish("stop")
    healthy(num, "benchmark-reasoning", "reasoning that reads a benchmark log run by run",
            "gpt-oss restates one sentence template for every run (build, p99, cache state), each "
            "time with a new measurement: the paraphrase watchdog's old known limit (it tripped at "
            "the fourth run). A sentence that brings a number never seen before is not a "
            "restatement.", conv, s)


@scenario
def l_paraphrase_same_numbers(num):
    # Its loop twin: a plan restated with the same numbers every time.
    rng = random.Random(num)
    conv = Conv(rng, ["read", "edit@oc", "bash"], "Add a retry with backoff to the uploader.",
                stream_usage=True, model="gpt-oss-20b")
    slots = [
        ["We need uploadPart to retry a failed upload.", "So uploadPart must retry the failed upload.",
         "We need to make uploadPart retry when the upload failed."],
        ["Let's wrap the upload call in a retry loop.", "Let's put the upload call inside a retry loop.",
         "So we wrap the upload call in a loop that retries."],
        ["Use exponential backoff, 3 attempts, 250 ms first.", "Exponential backoff, 3 attempts, first 250 ms.",
         "Backoff exponentially, 250 ms first, 3 attempts."],
        ["Only retry a 503, not other HTTP errors.", "A 503 is retried; other HTTP errors are not.",
         "Retry only a 503, no other HTTP errors."],
        ["Then we edit src/upload.ts at line 88.", "So we need to edit src/upload.ts at line 88.",
         "Then apply the edit to src/upload.ts at line 88."],
        ["Let's do it.", "Let's implement.", "Ok."],
    ]
    s = Stream("vllm", rng, model="openai/gpt-oss-20b", usage=True)
    onset = paraphrase_loop(s, rng, "The user wants the uploader to retry. ", slots, 10)
    s.finish("length")
    write(num, "paraphrase-same-numbers", "reasoning: a plan restated with the same numbers",
          "The twin of the benchmark reasoning: gpt-oss restates one plan again and again, its numbers "
          "(3 attempts, 250 ms, 503, line 88) the same each time. Numbers seen before bring nothing "
          "new: the restatements count.",
          "loop", {"trip": True, "guard": ["paraphrase", "simhash", "repeat"], "onset_chunk": onset,
                   "by_chunk": onset + 64}, conv, s)


def main():
    for f in os.listdir(OUT):
        if re.match(r"^\d{3}-.*\.json$", f):
            os.remove(os.path.join(OUT, f))
    for i, fn in enumerate(SCENARIOS, start=1):
        fn(i)
    print("wrote %d scenarios to %s" % (len(SCENARIOS), OUT))


if __name__ == "__main__":
    main()
