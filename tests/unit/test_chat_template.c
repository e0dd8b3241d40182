/* Chat templates: family detection from tokenizer.chat_template, and the
 * rendered prompts against expected strings. The plain conversations use the
 * expected outputs of llama.cpp's tests/test-chat-template.cpp (the
 * "expected_output_jinja" strings, which come from rendering the real
 * templates; BOS is left to the tokenizer here, as there). The tool
 * conversations were written out by hand from the reference templates
 * (Qwen2.5-7B-Instruct, Qwen3, Llama-3.1-8B-Instruct and
 * Mistral-7B-Instruct-v0.3 / Mistral-Nemo-Instruct-2407 tokenizer_config.json
 * chat_template), one branch at a time; the tool-call lines agree with
 * llama.cpp's tests/test-chat.cpp ("<tool_call>\n{\"name\": \"special_function\",
 * \"arguments\": {\"arg1\": 1}}\n</tool_call>", "{\"name\": \"special_function\",
 * \"parameters\": {\"arg1\": 1}}", "[TOOL_CALLS][{\"name\": \"special_function\",
 * \"arguments\": {\"arg1\": 1}, \"id\": \"123456789\"}]"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/chat_template.h"
#include "engine/gguf_write.h"
#include "engine/load.h"
#include "engine/tokenizer.h"

#define S(lit) ((struct eng_str){ (lit), sizeof(lit) - 1 })
#define NONE ((struct eng_str){ NULL, 0 })

/* Excerpts of the real templates, enough to carry their markers. */
static const char tmpl_hermes[] = /* teknium/OpenHermes-2.5-Mistral-7B */
	"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
	"'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
	"{% endif %}";
static const char tmpl_qwen25[] = /* Qwen/Qwen2.5-7B-Instruct (excerpt) */
	"{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n"
	"        {{- messages[0]['content'] }}\n    {%- else %}\n"
	"        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n"
	"    {%- endif %}\n"
	"{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n"
	"        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
	"    {%- else %}\n"
	"        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
	"assistant.<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n";
static const char tmpl_qwen3[] = /* Qwen/Qwen3-8B (excerpt) */
	"{%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) %}\n"
	"        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}\n"
	"{{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + "
	"'\\n</think>\\n\\n' + content.lstrip('\\n') }}\n";
static const char tmpl_qwen3_thinking[] = /* Qwen/Qwen3-4B-Thinking-2507 (excerpt) */
	"{{- '<|im_start|>' + message.role + '\\n<think>\\n' }}\n"
	"{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n<think>\\n' }}\n{%- endif %}\n";
static const char tmpl_llama30[] = /* llama.cpp test-chat-template.cpp "Llama-3" */
	"{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
	"'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
	"'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
	"{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}";
static const char tmpl_llama31[] = /* meta-llama/Llama-3.1-8B-Instruct (excerpt) */
	"{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
	"{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n";
static const char tmpl_mistral_v3[] = /* mistralai/Mistral-7B-Instruct-v0.3 (excerpt) */
	"{{- \"[AVAILABLE_TOOLS] [\" }}\n"
	"{{- \"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}\n";
static const char tmpl_mistral_nemo[] = /* mistralai/Mistral-Nemo-Instruct-2407 (excerpt) */
	"{{- \"[AVAILABLE_TOOLS][\" }}\n"
	"{{- \"[INST]\" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}\n";

/* llama.cpp's test conversation. */
static const struct eng_chat_msg conversation[] = {
	{ .role = ENG_CHAT_SYSTEM, .content = S("You are a helpful assistant") },
	{ .role = ENG_CHAT_USER, .content = S("Hello") },
	{ .role = ENG_CHAT_ASSISTANT, .content = S("Hi there") },
	{ .role = ENG_CHAT_USER, .content = S("Who are you") },
	{ .role = ENG_CHAT_ASSISTANT, .content = S("   I am an assistant   ") },
	{ .role = ENG_CHAT_USER, .content = S("Another question") },
};

static const struct eng_chat_tool weather_tool = {
	.name = S("get_weather"),
	.description = S("Get the current weather"),
	.parameters = S("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"
	                "\"required\":[\"city\"]}"),
};

static const struct eng_chat_call weather_call = {
	.id = S("call_abc123"), .name = S("get_weather"), .arguments = S("{\"city\":\"Paris\"}"),
};

static struct eng_chat_template detect(const char *tmpl, enum eng_chat_family want)
{
	struct eng_chat_template t;
	char err[256];

	assert_int_equal(eng_chat_template_init(&t, tmpl, tmpl ? strlen(tmpl) : 0, want, err,
	                                        sizeof(err)),
	                 ENG_OK);
	return t;
}

/* Renders and returns the prompt (freed by the caller). */
static struct eng_chat_prompt *render(const struct eng_chat_template *t,
                                      const struct eng_chat_input *in)
{
	struct eng_chat_prompt *p = eng_chat_prompt_new(1 << 20);
	char err[256] = "";
	enum eng_status st;

	assert_non_null(p);
	st = eng_chat_render(t, in, p, err, sizeof(err));
	if (st != ENG_OK)
		fail_msg("render: %s", err);
	assert_int_equal(strlen(p->text), p->len);
	return p;
}

static void expect(const char *tmpl, enum eng_chat_family want, const struct eng_chat_input *in,
                   const char *want_text)
{
	struct eng_chat_template t = detect(tmpl, want);
	struct eng_chat_prompt *p = render(&t, in);

	if (strcmp(p->text, want_text) != 0)
		fail_msg("rendered:\n%s\n--- expected:\n%s", p->text, want_text);
	eng_chat_prompt_free(p);
}

static struct eng_chat_input conv_input(void)
{
	struct eng_chat_input in = {
		.msgs = conversation, .n_msgs = 6, .add_generation_prompt = true,
	};
	return in;
}

static void test_detect(void **state)
{
	struct eng_chat_template t;
	char err[256];

	(void)state;
	t = detect(tmpl_hermes, ENG_CHAT_AUTO);
	assert_int_equal(t.family, ENG_CHAT_CHATML);
	assert_int_equal(t.flags, 0);
	assert_int_equal(t.system_len, 0);
	t = detect(tmpl_qwen25, ENG_CHAT_AUTO);
	assert_int_equal(t.family, ENG_CHAT_CHATML);
	assert_string_equal(t.system, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
	t = detect(tmpl_qwen3, ENG_CHAT_AUTO);
	assert_int_equal(t.flags, ENG_CHAT_QWEN3);
	t = detect(tmpl_qwen3_thinking, ENG_CHAT_AUTO);
	assert_int_equal(t.flags, ENG_CHAT_QWEN3 | ENG_CHAT_THINK_PROMPT);
	t = detect(tmpl_llama30, ENG_CHAT_AUTO);
	assert_int_equal(t.family, ENG_CHAT_LLAMA3);
	assert_int_equal(t.flags, 0);
	t = detect(tmpl_llama31, ENG_CHAT_AUTO);
	assert_int_equal(t.flags, ENG_CHAT_LLAMA31);
	t = detect(tmpl_mistral_v3, ENG_CHAT_AUTO);
	assert_int_equal(t.family, ENG_CHAT_MISTRAL);
	assert_int_equal(t.flags, 0);
	t = detect(tmpl_mistral_nemo, ENG_CHAT_AUTO);
	assert_int_equal(t.flags, ENG_CHAT_TEKKEN);
	t = detect(NULL, ENG_CHAT_AUTO);
	assert_int_equal(t.family, ENG_CHAT_PLAIN);
	/* A template with none of the markers: ChatML, flagged, as llama.cpp. */
	t = detect("{{ bos_token }}{% for m in messages %}<|user|>{{ m.content }}{% endfor %}",
	           ENG_CHAT_AUTO);
	assert_int_equal(t.family, ENG_CHAT_CHATML);
	assert_true(t.fallback);
	/* Named: the family wins, the variant still comes from the template. */
	t = detect(tmpl_qwen3, ENG_CHAT_PLAIN);
	assert_int_equal(t.family, ENG_CHAT_PLAIN);
	t = detect(NULL, ENG_CHAT_LLAMA3);
	assert_int_equal(t.flags, ENG_CHAT_LLAMA31);
	assert_int_equal(eng_chat_template_init(&t, "x", 1, ENG_CHAT_FAMILY_COUNT, err, sizeof(err)),
	                 ENG_ERR_ARG);
	assert_non_null(strstr(err, "auto, chatml, llama3, mistral, plain"));
	assert_int_equal(eng_chat_family_from_name("mistral"), ENG_CHAT_MISTRAL);
	assert_int_equal(eng_chat_family_from_name("auto"), ENG_CHAT_AUTO);
	assert_int_equal(eng_chat_family_from_name("jinja"), -1);
	assert_string_equal(eng_chat_family_name(ENG_CHAT_LLAMA3), "llama3");
}

static void test_conversation_chatml(void **state)
{
	struct eng_chat_input in = conv_input();

	(void)state;
	/* test-chat-template.cpp "teknium/OpenHermes-2.5-Mistral-7B" */
	expect(tmpl_hermes, ENG_CHAT_AUTO, &in,
	       "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
	       "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n"
	       "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\n"
	       "Another question<|im_end|>\n<|im_start|>assistant\n");
}

static void test_conversation_llama3(void **state)
{
	struct eng_chat_input in = conv_input();

	(void)state;
	/* test-chat-template.cpp "Llama-3" (3.0: no system preamble) */
	expect(tmpl_llama30, ENG_CHAT_AUTO, &in,
	       "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
	       "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
	       "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
	       "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
	       "<|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>"
	       "<|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|>"
	       "<|start_header_id|>assistant<|end_header_id|>\n\n");
	/* Llama 3.1: the system preamble with the dates (template branch
	 * "System message + builtin tools"), content trimmed. */
	in.date = "03 Sep 2024";
	expect(tmpl_llama31, ENG_CHAT_AUTO, &in,
	       "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
	       "Today Date: 03 Sep 2024\n\nYou are a helpful assistant<|eot_id|>"
	       "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
	       "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
	       "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
	       "<|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>"
	       "<|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|>"
	       "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void test_conversation_mistral(void **state)
{
	struct eng_chat_input in = conv_input();

	(void)state;
	/* test-chat-template.cpp "Mistral-Large-Instruct-2407 (mistralai 'v3'
	 * template)", the same template as Mistral-7B-Instruct-v0.3 */
	expect(tmpl_mistral_v3, ENG_CHAT_AUTO, &in,
	       "[INST] Hello[/INST] Hi there</s>[INST] Who are you[/INST] I am an assistant</s>"
	       "[INST] You are a helpful assistant\n\nAnother question[/INST]");
	/* test-chat-template.cpp "Mistral-Nemo-Instruct-2407 ('v3-tekken')" */
	expect(tmpl_mistral_nemo, ENG_CHAT_AUTO, &in,
	       "[INST]Hello[/INST]Hi there</s>[INST]Who are you[/INST]   I am an assistant   </s>"
	       "[INST]You are a helpful assistant\n\nAnother question[/INST]");
}

static void test_plain(void **state)
{
	struct eng_chat_msg one = { .role = ENG_CHAT_USER, .content = S("One day, a big bear") };
	struct eng_chat_input in = { .msgs = &one, .n_msgs = 1, .add_generation_prompt = true,
	                             .tools = &weather_tool, .n_tools = 1 };
	struct eng_chat_template t = detect(NULL, ENG_CHAT_AUTO);
	struct eng_chat_prompt *p = render(&t, &in);

	(void)state;
	/* A base model gets the raw prompt: no markers, no tools. */
	assert_string_equal(p->text, "One day, a big bear");
	assert_int_equal(p->n_spans, 0);
	eng_chat_prompt_free(p);
	in = conv_input();
	expect(NULL, ENG_CHAT_AUTO, &in,
	       "You are a helpful assistant\nHello\nHi there\nWho are you\n   I am an assistant   \n"
	       "Another question");
}

/* A user asks, the model calls get_weather, the tool answers. */
static const struct eng_chat_msg tool_turns[] = {
	{ .role = ENG_CHAT_USER, .content = S("What's the weather in Paris?") },
	{ .role = ENG_CHAT_ASSISTANT, .calls = &weather_call, .n_calls = 1 },
	{ .role = ENG_CHAT_TOOL, .content = S("{\"temp\": 18}"), .tool_call_id = S("call_abc123"),
	  .name = S("get_weather") },
};

static void test_tools_qwen25(void **state)
{
	struct eng_chat_input in = { .msgs = tool_turns, .n_msgs = 3, .tools = &weather_tool,
	                             .n_tools = 1, .add_generation_prompt = true };

	(void)state;
	/* Qwen2.5-7B-Instruct: the default system prompt, the tools as tojson
	 * (", " and ": "), the call's arguments as tojson of the parsed object,
	 * the result as <tool_response> in a user turn. */
	expect(tmpl_qwen25, ENG_CHAT_AUTO, &in,
	       "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n"
	       "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
	       "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
	       "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": "
	       "\"Get the current weather\", \"parameters\": {\"type\": \"object\", \"properties\": "
	       "{\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}\n</tools>\n\n"
	       "For each function call, return a json object with function name and arguments within "
	       "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
	       "\"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
	       "<|im_start|>user\nWhat's the weather in Paris?<|im_end|>\n"
	       "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
	       "{\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
	       "<|im_start|>user\n<tool_response>\n{\"temp\": 18}\n</tool_response><|im_end|>\n"
	       "<|im_start|>assistant\n");
}

static void test_tools_qwen25_parallel(void **state)
{
	/* Two calls with text, two results in one user turn; no tools listed,
	 * so the default system prompt stands alone. llama.cpp test-chat.cpp's
	 * call: {"arg1": 1}. */
	static const struct eng_chat_call calls[] = {
		{ .id = S("a"), .name = S("special_function"), .arguments = S("{\"arg1\":1}") },
		{ .id = S("b"), .name = S("get_weather"), .arguments = S("not json") },
	};
	static const struct eng_chat_msg msgs[] = {
		{ .role = ENG_CHAT_USER, .content = S("Go") },
		{ .role = ENG_CHAT_ASSISTANT, .content = S("Calling both."), .calls = calls, .n_calls = 2 },
		{ .role = ENG_CHAT_TOOL, .content = S("1") },
		{ .role = ENG_CHAT_TOOL, .content = S("2") },
		{ .role = ENG_CHAT_ASSISTANT, .content = S("Done.") },
	};
	struct eng_chat_input in = { .msgs = msgs, .n_msgs = 5, .add_generation_prompt = false };

	(void)state;
	expect(tmpl_qwen25, ENG_CHAT_AUTO, &in,
	       "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
	       "assistant.<|im_end|>\n<|im_start|>user\nGo<|im_end|>\n"
	       "<|im_start|>assistant\nCalling both.\n<tool_call>\n{\"name\": \"special_function\", "
	       "\"arguments\": {\"arg1\": 1}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", "
	       "\"arguments\": \"not json\"}\n</tool_call><|im_end|>\n"
	       "<|im_start|>user\n<tool_response>\n1\n</tool_response>\n<tool_response>\n2\n"
	       "</tool_response><|im_end|>\n<|im_start|>assistant\nDone.<|im_end|>\n");
}

static void test_tools_qwen3(void **state)
{
	struct eng_chat_call call = weather_call;
	struct eng_chat_msg msgs[3];
	struct eng_chat_input in = { .msgs = msgs, .n_msgs = 3, .tools = &weather_tool,
	                             .n_tools = 1, .add_generation_prompt = true };

	(void)state;
	memcpy(msgs, tool_turns, sizeof(msgs));
	msgs[1].reasoning = S("\nI should call the tool.\n");
	msgs[1].calls = &call;
	/* Qwen3: no default system; the reasoning of a turn after the last user
	 * query is kept (stripped of newlines); string arguments copied as is. */
	expect(tmpl_qwen3, ENG_CHAT_AUTO, &in,
	       "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the "
	       "user query.\n\nYou are provided with function signatures within <tools></tools> XML "
	       "tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
	       "\"description\": \"Get the current weather\", \"parameters\": {\"type\": \"object\", "
	       "\"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}\n"
	       "</tools>\n\nFor each function call, return a json object with function name and "
	       "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
	       "<function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
	       "<|im_start|>user\nWhat's the weather in Paris?<|im_end|>\n"
	       "<|im_start|>assistant\n<think>\nI should call the tool.\n</think>\n\n<tool_call>\n"
	       "{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}\n</tool_call>"
	       "<|im_end|>\n<|im_start|>user\n<tool_response>\n{\"temp\": 18}\n</tool_response>"
	       "<|im_end|>\n<|im_start|>assistant\n");
}

static void test_qwen3_history_thinking(void **state)
{
	static const struct eng_chat_msg msgs[] = {
		{ .role = ENG_CHAT_SYSTEM, .content = S("Be brief.") },
		{ .role = ENG_CHAT_USER, .content = S("Hi") },
		{ .role = ENG_CHAT_ASSISTANT, .content = S("<think>\nGreet back.\n</think>\n\nHello!") },
		{ .role = ENG_CHAT_USER, .content = S("Bye") },
	};
	struct eng_chat_input in = { .msgs = msgs, .n_msgs = 4, .add_generation_prompt = true,
	                             .no_thinking = true };
	struct eng_chat_template t = detect(tmpl_qwen3_thinking, ENG_CHAT_AUTO);
	struct eng_chat_prompt *p;

	(void)state;
	/* An earlier turn loses its <think> block; enable_thinking=false gives
	 * the empty block. */
	expect(tmpl_qwen3, ENG_CHAT_AUTO, &in,
	       "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
	       "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
	       "<|im_start|>assistant\n<think>\n\n</think>\n\n");
	/* A Thinking template opens <think> in the generation prompt. */
	in.no_thinking = false;
	p = render(&t, &in);
	assert_true(p->think_open);
	assert_non_null(strstr(p->text, "<|im_start|>assistant\n<think>\n"));
	assert_int_equal(strcmp(p->text + p->len - 8, "<think>\n"), 0);
	eng_chat_prompt_free(p);
}

static void test_tools_llama31(void **state)
{
	static const struct eng_chat_msg msgs[] = {
		{ .role = ENG_CHAT_SYSTEM, .content = S("You are a helpful assistant.") },
		{ .role = ENG_CHAT_USER, .content = S("What's the weather in Paris?") },
		{ .role = ENG_CHAT_ASSISTANT, .calls = &weather_call, .n_calls = 1 },
		{ .role = ENG_CHAT_TOOL, .content = S("{\"temp\": 18}") },
	};
	struct eng_chat_input in = { .msgs = msgs, .n_msgs = 4, .tools = &weather_tool,
	                             .n_tools = 1, .add_generation_prompt = true };

	(void)state;
	/* Llama-3.1-8B-Instruct with tools_in_user_message (its default): the
	 * tools as tojson(indent=4) before the first user message, the call as
	 * {"name", "parameters"}, the result in the ipython role, quoted by
	 * tojson (a string `is iterable` in Jinja). */
	expect(tmpl_llama31, ENG_CHAT_AUTO, &in,
	       "<|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n"
	       "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
	       "You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
	       "Given the following functions, please respond with a JSON for a function call with "
	       "its proper arguments that best answers the given prompt.\n\nRespond in the format "
	       "{\"name\": function name, \"parameters\": dictionary of argument name and its value}."
	       "Do not use variables.\n\n"
	       "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n"
	       "        \"description\": \"Get the current weather\",\n        \"parameters\": {\n"
	       "            \"type\": \"object\",\n            \"properties\": {\n"
	       "                \"city\": {\n                    \"type\": \"string\"\n"
	       "                }\n            },\n            \"required\": [\n"
	       "                \"city\"\n            ]\n        }\n    }\n}\n\n"
	       "What's the weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
	       "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|>"
	       "<|start_header_id|>ipython<|end_header_id|>\n\n\"{\\\"temp\\\": 18}\"<|eot_id|>"
	       "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void test_llama31_edges(void **state)
{
	static const struct eng_chat_call calls[] = {
		{ .name = S("special_function"), .arguments = S("{\"arg1\": 1}") },
		{ .name = S("special_function"), .arguments = S("{\"arg1\": 2}") },
	};
	static const struct eng_chat_msg msgs[] = {
		{ .role = ENG_CHAT_ASSISTANT, .calls = calls, .n_calls = 2 },
	};
	static const struct eng_chat_msg sys_only[] = {
		{ .role = ENG_CHAT_SYSTEM, .content = S("x") },
	};
	struct eng_chat_input in = { .msgs = msgs, .n_msgs = 1 };
	struct eng_chat_template t = detect(tmpl_llama31, ENG_CHAT_AUTO);
	struct eng_chat_prompt *p = eng_chat_prompt_new(4096);
	char err[256];

	(void)state;
	/* Parallel calls (the template allows one): "; " between, as the model
	 * writes them. */
	expect(tmpl_llama31, ENG_CHAT_AUTO, &in,
	       "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
	       "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
	       "{\"name\": \"special_function\", \"parameters\": {\"arg1\": 1}}; {\"name\": "
	       "\"special_function\", \"parameters\": {\"arg1\": 2}}<|eot_id|>");
	/* Tools with no message to carry them: the template raises; so do we. */
	in.msgs = sys_only;
	in.tools = &weather_tool;
	in.n_tools = 1;
	assert_int_equal(eng_chat_render(&t, &in, p, err, sizeof(err)), ENG_ERR_ARG);
	assert_non_null(strstr(err, "first user message"));
	eng_chat_prompt_free(p);
}

static void test_tools_mistral(void **state)
{
	static const struct eng_chat_call call = {
		.id = S("123456789"), .name = S("special_function"), .arguments = S("{\"arg1\":1}"),
	};
	static const struct eng_chat_tool tool = {
		.name = S("special_function"), .description = S("I'm special"),
		.parameters = S("{\"type\":\"object\",\"properties\":{\"arg1\":{\"type\":\"integer\"}}}"),
	};
	static const struct eng_chat_msg msgs[] = {
		{ .role = ENG_CHAT_SYSTEM, .content = S("Sys") },
		{ .role = ENG_CHAT_USER, .content = S("Call it") },
		{ .role = ENG_CHAT_ASSISTANT, .calls = &call, .n_calls = 1 },
		{ .role = ENG_CHAT_TOOL, .content = S("42"), .tool_call_id = S("123456789") },
	};
	struct eng_chat_input in = { .msgs = msgs, .n_msgs = 4, .tools = &tool, .n_tools = 1 };

	(void)state;
	/* Mistral-7B-Instruct-v0.3: tools before the last user message, the
	 * system prompt in it, the call with its 9-character id, the result. */
	expect(tmpl_mistral_v3, ENG_CHAT_AUTO, &in,
	       "[AVAILABLE_TOOLS] [{\"type\": \"function\", \"function\": {\"name\": \"special_function\", "
	       "\"description\": \"I'm special\", \"parameters\": {\"type\": \"object\", \"properties\": "
	       "{\"arg1\": {\"type\": \"integer\"}}}}}][/AVAILABLE_TOOLS][INST] Sys\n\nCall it[/INST]"
	       "[TOOL_CALLS] [{\"name\": \"special_function\", \"arguments\": {\"arg1\": 1}, \"id\": "
	       "\"123456789\"}]</s>[TOOL_RESULTS] {\"content\": 42, \"call_id\": \"123456789\"}"
	       "[/TOOL_RESULTS]");
	/* Mistral-Nemo: no spaces; the call line is llama.cpp test-chat.cpp's. */
	expect(tmpl_mistral_nemo, ENG_CHAT_AUTO, &in,
	       "[AVAILABLE_TOOLS][{\"type\": \"function\", \"function\": {\"name\": \"special_function\", "
	       "\"description\": \"I'm special\", \"parameters\": {\"type\": \"object\", \"properties\": "
	       "{\"arg1\": {\"type\": \"integer\"}}}}}][/AVAILABLE_TOOLS][INST]Sys\n\nCall it[/INST]"
	       "[TOOL_CALLS][{\"name\": \"special_function\", \"arguments\": {\"arg1\": 1}, \"id\": "
	       "\"123456789\"}]</s>[TOOL_RESULTS]{\"content\": 42, \"call_id\": \"123456789\"}"
	       "[/TOOL_RESULTS]");
}

static void test_mistral_ids(void **state)
{
	/* OpenAI ids are not 9 alphanumerics: a call and its result get the
	 * same 9-character stand-in. */
	struct eng_chat_msg msgs[3];
	struct eng_chat_input in = { .msgs = msgs, .n_msgs = 3 };
	struct eng_chat_template t = detect(tmpl_mistral_nemo, ENG_CHAT_AUTO);
	struct eng_chat_prompt *p;
	const char *a, *b;

	(void)state;
	memcpy(msgs, tool_turns, sizeof(msgs));
	p = render(&t, &in);
	a = strstr(p->text, "\"id\": \"");
	b = strstr(p->text, "\"call_id\": \"");
	assert_non_null(a);
	assert_non_null(b);
	a += 7;
	b += 12;
	assert_int_equal(strchr(a, '"') - a, 9);
	assert_memory_equal(a, b, 9);
	for (int i = 0; i < 9; i++)
		assert_true(a[i] >= '0' && (a[i] <= '9' || a[i] >= 'A'));
	eng_chat_prompt_free(p);
}

static void test_tojson(void **state)
{
	/* transformers' tojson: json.dumps(ensure_ascii=False); numbers as
	 * Python writes the float/int json.loads made of them. */
	static const struct eng_chat_call call = {
		.name = S("f"),
		.arguments = S("{\"s\":\"a\\\"b\\\\c\\n\\u0001\\u00e9\xc3\xa9\",\"n\":[1.0,1e5,1E-5,0.0001,"
		               "-0.0,-0,2.5e16,123456789012345678901234567890,1.5,0.1],\"e\":{},\"l\":[],"
		               "\"t\":true,\"z\":null}"),
	};
	static const struct eng_chat_msg msgs[] = {
		{ .role = ENG_CHAT_ASSISTANT, .calls = &call, .n_calls = 1 },
	};
	struct eng_chat_input in = { .msgs = msgs, .n_msgs = 1 };

	(void)state;
	expect(tmpl_hermes, ENG_CHAT_AUTO, &in,
	       "<|im_start|>assistant\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"s\": "
	       "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\xc3\xa9\", \"n\": [1.0, 100000.0, 1e-05, 0.0001, -0.0, 0, "
	       "2.5e+16, 123456789012345678901234567890, 1.5, 0.1], \"e\": {}, \"l\": [], "
	       "\"t\": true, \"z\": null}}\n</tool_call><|im_end|>\n");
}

static void test_spans(void **state)
{
	struct eng_chat_msg one = { .role = ENG_CHAT_USER, .content = S("<|im_end|> is text here") };
	struct eng_chat_input in = { .msgs = &one, .n_msgs = 1, .add_generation_prompt = true };
	struct eng_chat_template t = detect(tmpl_hermes, ENG_CHAT_AUTO);
	struct eng_chat_prompt *p = render(&t, &in);
	static const char *const want[] = { "<|im_start|>", "<|im_end|>", "<|im_start|>" };

	(void)state;
	/* The template's markers are spans; the message's copy is not. */
	assert_int_equal(p->n_spans, 3);
	for (uint32_t i = 0; i < 3; i++) {
		assert_int_equal(p->spans[i].len, strlen(want[i]));
		assert_memory_equal(p->text + p->spans[i].off, want[i], p->spans[i].len);
	}
	assert_int_equal(p->spans[1].off, strlen("<|im_start|>user\n<|im_end|> is text here"));
	eng_chat_prompt_free(p);
}

static void test_limits(void **state)
{
	struct eng_chat_input in = conv_input();
	struct eng_chat_template t = detect(tmpl_hermes, ENG_CHAT_AUTO);
	struct eng_chat_prompt *p = eng_chat_prompt_new(64);
	struct eng_chat_msg bad = { .role = ENG_CHAT_ROLE_COUNT };
	struct eng_chat_call nameless = { .arguments = S("{}") };
	struct eng_chat_msg callmsg = { .role = ENG_CHAT_ASSISTANT, .calls = &nameless, .n_calls = 1 };
	char err[256];

	(void)state;
	assert_null(eng_chat_prompt_new(0));
	assert_null(eng_chat_prompt_new(ENG_CHAT_MAX_PROMPT + 1));
	assert_int_equal(eng_chat_render(&t, &in, p, err, sizeof(err)), ENG_ERR_LIMIT);
	assert_non_null(strstr(err, "longer than the cap of 64 bytes"));
	assert_int_equal(p->len, 0);
	in.msgs = &bad;
	in.n_msgs = 1;
	assert_int_equal(eng_chat_render(&t, &in, p, err, sizeof(err)), ENG_ERR_ARG);
	assert_non_null(strstr(err, "messages[0]: unknown role"));
	in.msgs = &callmsg;
	assert_int_equal(eng_chat_render(&t, &in, p, err, sizeof(err)), ENG_ERR_ARG);
	assert_non_null(strstr(err, "messages[0].tool_calls[0] has no function name"));
	in.n_msgs = ENG_CHAT_MAX_MESSAGES + 1;
	assert_int_equal(eng_chat_render(&t, &in, p, err, sizeof(err)), ENG_ERR_LIMIT);
	/* A deeply nested argument is not JSON to the renderer: quoted. */
	{
		char deep[2 * (ENG_CHAT_JSON_DEPTH + 2) + 1];
		struct eng_chat_call c = { .name = S("f") };
		struct eng_chat_msg m = { .role = ENG_CHAT_ASSISTANT, .calls = &c, .n_calls = 1 };
		struct eng_chat_prompt *big = eng_chat_prompt_new(4096);

		memset(deep, '[', ENG_CHAT_JSON_DEPTH + 2);
		memset(deep + ENG_CHAT_JSON_DEPTH + 2, ']', ENG_CHAT_JSON_DEPTH + 2);
		deep[sizeof(deep) - 1] = '\0';
		c.arguments = (struct eng_str){ deep, sizeof(deep) - 1 };
		in.msgs = &m;
		in.n_msgs = 1;
		assert_int_equal(eng_chat_render(&t, &in, big, err, sizeof(err)), ENG_OK);
		assert_non_null(strstr(big->text, "\"arguments\": \"[[[["));
		eng_chat_prompt_free(big);
	}
	eng_chat_prompt_free(p);
	eng_chat_prompt_free(NULL);
}

/* A GGUF holding only tokenizer.chat_template, parsed from memory. */
static void test_from_gguf(void **state)
{
	struct eng_gguf_writer *w = eng_gguf_writer_new(3, 32);
	struct eng_gguf *g = NULL;
	struct eng_chat_template t;
	void *buf = NULL;
	size_t len = 0;
	char err[256];

	(void)state;
	assert_non_null(w);
	assert_int_equal(eng_gguf_writer_set_str(w, "tokenizer.chat_template", tmpl_qwen25), ENG_OK);
	assert_int_equal(eng_gguf_writer_write_mem(w, NULL, NULL, &buf, &len, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_gguf_parse(buf, len, &g, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_chat_template_from_gguf(&t, g, ENG_CHAT_AUTO, err, sizeof(err)), ENG_OK);
	assert_int_equal(t.family, ENG_CHAT_CHATML);
	assert_true(t.system_len > 0);
	eng_gguf_free(g);
	free(buf);
	eng_gguf_writer_free(w);
}

/* stories260K has no chat template: plain, the raw prompt. */
static void test_stories_plain(void **state)
{
	struct eng_file *f = NULL;
	struct eng_chat_template t;
	char err[256];

	(void)state;
	if (eng_file_open(NULL, LW_SHARED_DIR "/models/stories260K.gguf", ENG_LOAD_READ, &f, err,
	                  sizeof(err)) != ENG_OK)
		fail_msg("%s", err);
	assert_int_equal(eng_chat_template_from_gguf(&t, eng_file_gguf(f), ENG_CHAT_AUTO, err,
	                                             sizeof(err)),
	                 ENG_OK);
	assert_int_equal(t.family, ENG_CHAT_PLAIN);
	assert_int_equal(eng_file_close(f, err, sizeof(err)), ENG_OK);
}

static struct eng_tok *load_vocab(const char *name)
{
	struct eng_file *f = NULL;
	struct eng_tok *tok = NULL;
	char path[512], err[256];

	snprintf(path, sizeof(path), "%s/vocab/%s", LW_SHARED_DIR, name);
	if (eng_file_open(NULL, path, ENG_LOAD_READ, &f, err, sizeof(err)) != ENG_OK)
		fail_msg("%s", err);
	if (eng_tok_new_from_gguf(eng_file_gguf(f), &tok, err, sizeof(err)) != ENG_OK)
		fail_msg("%s", err);
	assert_int_equal(eng_file_close(f, err, sizeof(err)), ENG_OK);
	return tok;
}

static void test_encode(void **state)
{
	/* The Llama 2 vocabulary knows </s> (a control token) but not [INST]. */
	struct eng_tok *tok = load_vocab("ggml-vocab-llama-spm.gguf");
	struct eng_chat_template t = detect(tmpl_mistral_v3, ENG_CHAT_AUTO);
	struct eng_chat_msg msgs[] = {
		{ .role = ENG_CHAT_USER, .content = S("Hello") },
		{ .role = ENG_CHAT_ASSISTANT, .content = S("Hi") },
		{ .role = ENG_CHAT_USER, .content = S("Say </s> please") },
	};
	struct eng_chat_input in = { .msgs = msgs, .n_msgs = 2 };
	struct eng_chat_prompt *p = render(&t, &in);
	int32_t ids[256], whole[256];
	int n, nw, eos = eng_tok_eos(tok), count;

	(void)state;
	/* Without special text in the messages the ids are exactly llama.cpp's
	 * whole-prompt encode with special parsing. */
	n = eng_chat_encode(tok, p, ids, 256);
	nw = eng_tok_encode(tok, p->text, p->len, true, true, whole, 256);
	assert_true(n > 0);
	assert_int_equal(n, nw);
	assert_memory_equal(ids, whole, (size_t)n * sizeof(int32_t));
	assert_int_equal(ids[0], eng_tok_bos(tok));
	assert_int_equal(ids[n - 1], eos); /* the template's </s> */
	assert_int_equal(eng_chat_encode(tok, p, NULL, 0), n);
	assert_int_equal(eng_chat_encode(tok, p, ids, (size_t)n - 1), ENG_ERR_RANGE);
	eng_chat_prompt_free(p);
	/* A message's "</s>" stays text: only the template's is the token. */
	in.n_msgs = 3;
	p = render(&t, &in);
	n = eng_chat_encode(tok, p, ids, 256);
	assert_true(n > 0);
	count = 0;
	for (int i = 0; i < n; i++)
		count += ids[i] == eos;
	assert_int_equal(count, 1);
	nw = eng_tok_encode(tok, p->text, p->len, true, true, whole, 256);
	count = 0;
	for (int i = 0; i < nw; i++)
		count += whole[i] == eos;
	assert_int_equal(count, 2); /* what parsing the whole prompt would have done */
	eng_chat_prompt_free(p);
	eng_tok_free(tok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_detect),
		cmocka_unit_test(test_conversation_chatml),
		cmocka_unit_test(test_conversation_llama3),
		cmocka_unit_test(test_conversation_mistral),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_tools_qwen25),
		cmocka_unit_test(test_tools_qwen25_parallel),
		cmocka_unit_test(test_tools_qwen3),
		cmocka_unit_test(test_qwen3_history_thinking),
		cmocka_unit_test(test_tools_llama31),
		cmocka_unit_test(test_llama31_edges),
		cmocka_unit_test(test_tools_mistral),
		cmocka_unit_test(test_mistral_ids),
		cmocka_unit_test(test_tojson),
		cmocka_unit_test(test_spans),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_from_gguf),
		cmocka_unit_test(test_stories_plain),
		cmocka_unit_test(test_encode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
