#!/usr/bin/env python3
"""Writes the client requests of the history-check integration test
(tests/integration/data/history/*.json): compact, realistic stand-ins for the
requests real agents send after a cut, modelled on the recordings of
tests/agents (Qwen Code 0.24: text parts with <system-reminder> parts,
max_tokens 32000, include_usage; opencode 1.18: tool_choice auto, max_tokens
4096). "<DELIVERED>" is where the test puts the text the proxy delivered
before its cut. Run from this folder."""
import json

QWEN_SYSTEM = ("You are Qwen Code, a non-interactive CLI agent developed by Alibaba Group, "
               "specializing in software engineering tasks.")
QWEN_TOOLS = [
    {"type": "function", "function": {"name": "read_file", "description": "Reads a file.",
     "parameters": {"type": "object", "properties": {"absolute_path": {"type": "string"}},
                    "required": ["absolute_path"]}}},
    {"type": "function", "function": {"name": "run_shell_command", "description": "Runs a shell command.",
     "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                    "required": ["command"]}}},
]
RESUME = ("Output token limit hit. Resume directly \u2014 no apology, no recap of what you were "
          "doing. Pick up mid-thought if that is where the cut happened. Break remaining work "
          "into smaller pieces.")
PARA = ("The build uses CMake and the sources live in src/. To build it, run cmake "
        "and then make; the tests run with ctest. ")
# What a client kept of one cut answer (the preamble and two and a bit copies).
CUT = ("Here is how the build works.\n\n" + PARA * 3)[:368]

def qwen_user(text):
    return {"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>\nThis is the Qwen Code. We are setting up the "
                                 "context for our chat.\nToday's date is Friday, December 4, 2026."
                                 "\n</system-reminder>"},
        {"type": "text", "text": text}]}

def qwen(messages, max_tokens=32000):
    return {"model": "scripted", "messages": [{"role": "system", "content": QWEN_SYSTEM}] + messages,
            "tools": QWEN_TOOLS, "max_tokens": max_tokens, "stream": True,
            "stream_options": {"include_usage": True}}

def write(name, doc):
    with open("data/history/%s.json" % name, "w") as f:
        f.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))

task = [qwen_user("Explain how to build this project.")]
write("qwen-task", qwen(task))
# Qwen Code's answer to "length": the same request, max_tokens doubled.
write("qwen-retry-max-tokens-doubled", qwen(task, 64000))
# ...then its recovery turns: the cut text, and a user turn asking to go on.
resume = [{"role": "assistant", "content": "<DELIVERED>"},
          {"role": "user", "content": [{"type": "text", "text": RESUME + "\n\n<previous_response_suffix>\n"
                                        "(the end of the cut text)\n</previous_response_suffix>"}]}]
write("qwen-resume", qwen(task + resume, 64000))
# Qwen Code keeps its five cut answers as one assistant message; the user's
# next instruction in the same session is a new task (issue 12 item 10)...
merged = {"role": "assistant", "content": CUT * 5}
write("qwen-new-instruction-after-loop",
      qwen(task + [merged, qwen_user("Thanks. A new task now: say hello.")]))
# ...its twin: the same history, and a recovery turn: still the loop.
write("qwen-resume-after-loop", qwen(task + [merged, {"role": "user", "content": RESUME}], 64000))

OC_SYSTEM = "You are opencode, an interactive CLI tool that helps users with software engineering tasks."
OC_TOOLS = [{"type": "function", "function": {"name": "read", "description": "Read a file",
             "parameters": {"type": "object", "properties": {"filePath": {"type": "string"}},
                            "required": ["filePath"]}}}]

def opencode(messages):
    return {"model": "scripted", "max_tokens": 4096, "tool_choice": "auto",
            "messages": [{"role": "system", "content": OC_SYSTEM}] + messages,
            "tools": OC_TOOLS, "stream": True, "stream_options": {"include_usage": True}}

rounds = [{"role": "user", "content": "Check the README until it mentions the install step."}]
for i in range(4):
    rounds.append({"role": "assistant", "content": "Let me check the README.", "tool_calls": [
        {"id": "call_%d" % i, "type": "function",
         "function": {"name": "read", "arguments": "{\"filePath\":\"/w/README.md\"}"}}]})
    rounds.append({"role": "tool", "tool_call_id": "call_%d" % i,
                   "content": "# demo\n\nA small demo project.\n"})
final = {"role": "assistant", "content": "The README does not mention an install step."}
# Four identical rounds (another instance, or history_action: off, let them
# through), a final answer, then a new instruction: a new task.
write("opencode-reread-new-instruction",
      opencode(rounds + [final, {"role": "user", "content": "Thanks. A new task now: say hello."}]))
# Its twin: the same rounds, and the user says "continue".
write("opencode-reread-continue", opencode(rounds + [final, {"role": "user", "content": "continue"}]))
