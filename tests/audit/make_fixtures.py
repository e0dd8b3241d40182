#!/usr/bin/env python3
"""Writes the loopwarden-audit test fixtures in tests/audit/data/ from a corpus
scenario. Run once after changing it; the output is committed (the test itself
needs no Python): python3 tests/audit/make_fixtures.py"""
import os
HERE = os.path.dirname(os.path.abspath(__file__))
import sys
sys.argv = [sys.argv[0], os.path.join(HERE, "..", "data", "002-same-call-in-answer.json"), os.path.join(HERE, "data")]
os.makedirs(sys.argv[2], exist_ok=True)
import json, sys
d = json.load(open(sys.argv[1]))
out = sys.argv[2]
with open(out + "/answer.sse", "w") as f:
    for c in d["chunks"]:
        f.write("data: " + (c if isinstance(c, str) else json.dumps(c)) + "\n\n")
with open(out + "/lines.sse", "w") as f:   # no blank lines, no [DONE]
    for c in d["chunks"][:-1]:
        f.write("data: " + json.dumps(c) + "\n")
with open(out + "/truncated.sse", "w") as f:
    for c in d["chunks"][:5]:
        f.write("data: " + json.dumps(c) + "\n\n")
    f.write("data: " + json.dumps(d["chunks"][5])[:40])
with open(out + "/request.json", "w") as f:
    json.dump(d["request"], f)
import os
os.makedirs(out + "/rec/20260101-1-1", exist_ok=True)
with open(out + "/rec/20260101-1-1/request.json", "w") as f:
    json.dump(d["request"], f)
with open(out + "/rec/20260101-1-1/stream.sse", "w") as f:
    for c in d["chunks"]:
        f.write("data: " + (c if isinstance(c, str) else json.dumps(c)) + "\r\n\r\n")
with open(out + "/notjson.json", "w") as f:
    f.write('{\n  "name": "x",\n  "chunks": [\n    {"a": 1},,\n  ]\n}\n')
with open(out + "/badchunk.json", "w") as f:
    f.write('{"name": "x", "kind": "healthy", "expect": {"trip": false},\n"chunks": [\n"{not json",\n"[DONE]"]}\n')
with open(out + "/bad.yaml", "w") as f:
    f.write("guards:\n  name_run:\n    max_run: many\n")
with open(out + "/good.yaml", "w") as f:
    f.write("guards:\n  dedup:\n    enabled: false\n  name_run:\n    enabled: false\n")
# A non-streaming recording: response.json holding three identical calls.
os.makedirs(out + "/rec/20260101-1-2", exist_ok=True)
req = dict(d["request"])
req["stream"] = False
with open(out + "/rec/20260101-1-2/request.json", "w") as f:
    json.dump(req, f)
call = {"type": "function", "function": {"name": "bash", "arguments": "{\"command\":\"npm test -- --run\"}"}}
body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": "tool_calls",
                     "message": {"role": "assistant", "content": "Running the tests.",
                                 "tool_calls": [dict(call, id="call_%d" % i) for i in range(3)]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 30, "total_tokens": 130}}
with open(out + "/rec/20260101-1-2/response.json", "w") as f:
    json.dump(body, f)
