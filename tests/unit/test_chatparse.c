/* The output parser: generated text -> guard events, per template family,
 * with outputs written the way the models write them (Qwen2.5/Qwen3 Hermes
 * <tool_call> blocks and <think> reasoning, Llama 3.1 JSON calls with and
 * without <|python_tag|>, Mistral v0.3 / Nemo [TOOL_CALLS] lists and the
 * newer [TOOL_CALLS]name[ARGS] form; a few are llama.cpp's
 * tests/test-chat.cpp parse cases), malformed ones included. Every output
 * is parsed whole, split in two at every byte, and one byte at a time: the
 * events, with adjacent fragments of the same stream joined, must be the
 * same each way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/chatparse.h"

#define S(lit) ((struct eng_str){ (lit), sizeof(lit) - 1 })

static const struct eng_chat_tool tools[] = {
	{ .name = S("get_weather") },
	{ .name = S("get_time") },
	{ .name = S("read_file") },
	{ .name = S("write_file") },
	{ .name = S("special_function") },
	{ .name = S("get_current_weather") },
};
#define N_TOOLS ((uint32_t)(sizeof(tools) / sizeof(tools[0])))

/* The events as one string: "T:" text, "R:" reasoning, "B<i>:<name>",
 * "A<i>:" arguments, "E<i>", "F:<reason>", joined by '|'; adjacent text,
 * reasoning or same-call argument fragments are joined first. Checks each
 * event's shape on the way. */
struct rec {
	char *s;
	size_t len, cap;
	int last;
	uint32_t last_index;
	int open;
	int broken;
	char ids[16][ENG_CHATPARSE_ID_MAX];
	uint32_t n_ids;
	size_t id_len;
};

static void add(struct rec *r, const char *s, size_t n)
{
	if (r->len + n + 1 > r->cap) {
		r->cap = 2 * (r->len + n + 1);
		r->s = realloc(r->s, r->cap);
		assert_non_null(r->s);
	}
	memcpy(r->s + r->len, s, n);
	r->len += n;
	r->s[r->len] = '\0';
}

static int on_event(const struct gd_event *ev, void *ctx)
{
	struct rec *r = ctx;
	char tag[300];
	bool join;

	assert_non_null(ev->data);
	assert_non_null(ev->id);
	assert_non_null(ev->name);
	join = (int)ev->type == r->last &&
	       (ev->type == GD_EV_TEXT || ev->type == GD_EV_REASONING ||
	        (ev->type == GD_EV_TOOL_ARGS && ev->index == r->last_index));
	switch (ev->type) {
	case GD_EV_TEXT:
	case GD_EV_REASONING:
		assert_true(ev->len > 0);
		snprintf(tag, sizeof(tag), "%s", ev->type == GD_EV_TEXT ? "T:" : "R:");
		break;
	case GD_EV_TOOL_BEGIN:
		assert_int_equal(r->open, 0);
		assert_true(ev->id_len > 0 && ev->name_len > 0);
		/* ids: unique, all of one form */
		for (uint32_t i = 0; i < r->n_ids && i < 16; i++)
			assert_false(strlen(r->ids[i]) == ev->id_len &&
			             memcmp(r->ids[i], ev->id, ev->id_len) == 0);
		if (r->n_ids < 16) {
			memcpy(r->ids[r->n_ids], ev->id, ev->id_len);
			r->ids[r->n_ids][ev->id_len] = '\0';
		}
		r->n_ids++;
		r->id_len = ev->id_len;
		r->open++;
		snprintf(tag, sizeof(tag), "B%u:%.*s", ev->index, (int)ev->name_len, ev->name);
		break;
	case GD_EV_TOOL_ARGS:
		assert_int_equal(r->open, 1);
		assert_true(ev->len > 0);
		snprintf(tag, sizeof(tag), "A%u:", ev->index);
		break;
	case GD_EV_TOOL_END:
		assert_int_equal(r->open, 1);
		r->open--;
		snprintf(tag, sizeof(tag), "E%u", ev->index);
		break;
	case GD_EV_FINISH:
		assert_int_equal(r->open, 0);
		snprintf(tag, sizeof(tag), "F:");
		break;
	default:
		fail_msg("unexpected event type %d", ev->type);
	}
	if (!join) {
		if (r->len)
			add(r, "|", 1);
		add(r, tag, strlen(tag));
	}
	add(r, ev->data, ev->len);
	r->last = ev->type;
	r->last_index = ev->index;
	return 0;
}

static struct eng_chatparse_cfg cfg_of(enum eng_chat_family f)
{
	struct eng_chatparse_cfg c = {
		.family = f, .tools = tools, .n_tools = N_TOOLS, .reasoning = true, .id_seed = 42,
	};
	return c;
}

static void track(struct rec *r, enum eng_chatparse_status st, char *err)
{
	if (st == ENG_CHATPARSE_EBROKEN) {
		assert_true(err[0] != '\0');
		r->broken++;
	} else {
		assert_int_equal(st, ENG_CHATPARSE_OK);
	}
}

/* Feeds <text> in pieces ending at the offsets <cuts> (ascending), then ends. */
static void parse(const struct eng_chatparse_cfg *cfg, const char *text, size_t n,
                  const size_t *cuts, size_t ncuts, const char *reason, struct rec *r,
                  struct eng_chatparse_info *info)
{
	struct eng_chatparse *p = eng_chatparse_new();
	size_t at = 0;
	char err[256];

	assert_non_null(p);
	memset(r, 0, sizeof(*r));
	r->last = -1;
	add(r, "", 0);
	assert_int_equal(eng_chatparse_reset(p, cfg), ENG_CHATPARSE_OK);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : n;

		err[0] = '\0';
		track(r, eng_chatparse_feed(p, text + at, to - at, on_event, r, err, sizeof(err)), err);
		at = to;
	}
	err[0] = '\0';
	track(r, eng_chatparse_end(p, reason, on_event, r, err, sizeof(err)), err);
	eng_chatparse_info(p, info);
	eng_chatparse_free(p);
}

/* Parses <text> whole and expects <want>; then every split and byte by
 * byte must give the same. Returns the info of the whole parse. */
static struct eng_chatparse_info check(const struct eng_chatparse_cfg *cfg, const char *text,
                                       const char *reason, const char *want, int want_broken)
{
	size_t n = strlen(text);
	struct rec whole, r;
	struct eng_chatparse_info info, info2;
	size_t *cuts = malloc((n + 1) * sizeof(*cuts));

	assert_non_null(cuts);
	parse(cfg, text, n, NULL, 0, reason, &whole, &info);
	if (strcmp(whole.s, want) != 0)
		fail_msg("parsed:\n%s\n--- expected:\n%s", whole.s, want);
	assert_int_equal(whole.broken, want_broken);
	for (size_t k = 0; k <= n; k++) {
		parse(cfg, text, n, &k, 1, reason, &r, &info2);
		if (strcmp(r.s, whole.s) != 0)
			fail_msg("split at %zu:\n%s\n--- whole:\n%s", k, r.s, whole.s);
		assert_int_equal(r.broken, whole.broken);
		assert_int_equal(info2.malformed, info.malformed);
		free(r.s);
	}
	for (size_t k = 0; k < n; k++)
		cuts[k] = k + 1;
	parse(cfg, text, n, cuts, n, reason, &r, &info2);
	if (strcmp(r.s, whole.s) != 0)
		fail_msg("byte by byte:\n%s\n--- whole:\n%s", r.s, whole.s);
	assert_int_equal(info2.malformed, info.malformed);
	free(r.s);
	free(whole.s);
	free(cuts);
	return info;
}

/* ---- Qwen2.5 / Qwen3 (ChatML, Hermes tool calls) ------------------------------ */

static void test_chatml_text(void **state)
{
	struct eng_chatparse_cfg c = cfg_of(ENG_CHAT_CHATML);
	struct eng_chatparse_info info;

	(void)state;
	info = check(&c, "The capital of France is Paris.", NULL, "T:The capital of France is Paris.|F:stop", 0);
	assert_int_equal(info.malformed, 0);
	assert_int_equal(info.tool_calls, 0);
	/* Near-markers are text. */
	check(&c, "Use <tool> or <tool_call without a bracket; a < b > c", NULL,
	      "T:Use <tool> or <tool_call without a bracket; a < b > c|F:stop", 0);
}

static void test_chatml_call(void **state)
{
	struct eng_chatparse_cfg c = cfg_of(ENG_CHAT_CHATML);
	struct eng_chatparse_info info;

	(void)state;
	info = check(&c,
	             "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", "
	             "\"unit\": \"celsius\"}}\n</tool_call>",
	             NULL,
	             "B0:get_weather|A0:{\"city\": \"Paris\", \"unit\": \"celsius\"}|E0|F:tool_calls", 0);
	assert_int_equal(info.tool_calls, 1);
	assert_int_equal(info.malformed, 0);
	/* llama.cpp test-chat.cpp's Hermes call */
	check(&c, "<tool_call>\n{\"name\": \"special_function\", \"arguments\": {\"arg1\": 1}}\n</tool_call>",
	      NULL, "B0:special_function|A0:{\"arg1\": 1}|E0|F:tool_calls", 0);
}

static void test_chatml_parallel(void **state)
{
	struct eng_chatparse_cfg c = cfg_of(ENG_CHAT_CHATML);

	(void)state;
	/* Text first (kept as written), whitespace between calls dropped. */
	check(&c,
	      "I'll check both cities.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
	      "{\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", "
	      "\"arguments\": {\"city\": \"London\"}}\n</tool_call>",
	      NULL,
	      "T:I'll check both cities.\n|B0:get_weather|A0:{\"city\": \"Paris\"}|E0|"
	      "B1:get_weather|A1:{\"city\": \"London\"}|E1|F:tool_calls", 0);
	/* Text after the calls is relayed; the gap before it too. */
	check(&c,
	      "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>\n\nWaiting.", NULL,
	      "B0:get_time|A0:{}|E0|T:\n\nWaiting.|F:tool_calls", 0);
}

static void test_chatml_argument_forms(void **state)
{
	struct eng_chatparse_cfg c = cfg_of(ENG_CHAT_CHATML);

	(void)state;
	/* "arguments" before "name": held until the name is known. */
	check(&c,
	      "<tool_call>\n{\"arguments\": {\"path\": \"/tmp/a.txt\"}, \"name\": \"read_file\"}\n</tool_call>",
	      NULL, "B0:read_file|A0:{\"path\": \"/tmp/a.txt\"}|E0|F:tool_calls", 0);
	/* Arguments as a JSON string holding the object: decoded. */
	check(&c,
	      "<tool_call>\n{\"name\": \"read_file\", \"arguments\": \"{\\\"path\\\": \\\"/tmp/\\u00e9.txt\\\"}\"}"
	      "\n</tool_call>",
	      NULL, "B0:read_file|A0:{\"path\": \"/tmp/\xc3\xa9.txt\"}|E0|F:tool_calls", 0);
	check(&c,
	      "<tool_call>{\"arguments\": \"{}\", \"name\": \"get_time\", \"id\": 7}</tool_call>", NULL,
	      "B0:get_time|A0:{}|E0|F:tool_calls", 0);
	/* Braces and quotes inside strings, nesting, escapes: relayed as written. */
	check(&c,
	      "<tool_call>\n{\"name\": \"write_file\", \"arguments\": {\"path\": \"main.c\", \"content\": "
	      "\"int main(void) { puts(\\\"}\\\"); return 0; }\\n\", \"opts\": {\"mode\": [420, true, null, "
	      "-1.5e3]}}}\n</tool_call>",
	      NULL,
	      "B0:write_file|A0:{\"path\": \"main.c\", \"content\": \"int main(void) { puts(\\\"}\\\"); "
	      "return 0; }\\n\", \"opts\": {\"mode\": [420, true, null, -1.5e3]}}|E0|F:tool_calls", 0);
	/* No arguments at all: "{}". */
	check(&c, "<tool_call>\n{\"name\": \"get_time\"}\n</tool_call>", NULL,
	      "B0:get_time|A0:{}|E0|F:tool_calls", 0);
}

static void test_qwen3_thinking(void **state)
{
	struct eng_chatparse_cfg c = cfg_of(ENG_CHAT_CHATML);

	(void)state;
	check(&c,
	      "<think>\nThe user wants the weather in Paris. I should call get_weather.\n</think>\n\n"
	      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
	      NULL,
	      "R:The user wants the weather in Paris. I should call get_weather.|B0:get_weather|"
	      "A0:{\"city\": \"Paris\"}|E0|F:tool_calls", 0);
	check(&c, "<think>\nSimple greeting.\n\nNo tools needed.\n</think>\n\nHello! How can I help you today?",
	      NULL, "R:Simple greeting.\n\nNo tools needed.|T:Hello! How can I help you today?|F:stop", 0);
	/* enable_thinking=false: the empty block the template put in the
	 * prompt is not in the output; an empty block in the output is fine. */
	check(&c, "<think>\n\n</think>\n\nHi.", NULL, "T:Hi.|F:stop", 0);
	/* <think> later in the text is text. */
	check(&c, "Tags like <think> appear in docs.", NULL, "T:Tags like <think> appear in docs.|F:stop", 0);
	/* A Thinking template opened <think> in the prompt. */
	c.think_open = true;
	check(&c, "The user asks for 2+2.\n</think>\n\n4", NULL, "R:The user asks for 2+2.|T:4|F:stop", 0);
	/* Cut inside the reasoning. */
	check(&c, "Let me think about this carefully.\n\n", "length",
	      "R:Let me think about this carefully.|F:length", 0);
	/* No reasoning parsing: all text. */
	c = cfg_of(ENG_CHAT_CHATML);
	c.reasoning = false;
	check(&c, "<think>x</think>y", NULL, "T:<think>x</think>y|F:stop", 0);
}

static void test_whitespace_bounds(void **state)
{
	struct eng_chatparse_cfg c = cfg_of(ENG_CHAT_CHATML);
	char text[512], want[512];

	(void)state;
	/* A newline flood before </think> is relayed past the bound, so the
	 * watchdogs see it; a short run is trimmed. */
	snprintf(text, sizeof(text), "<think>a%.*s</think>b", 100,
	         "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n"
	         "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n"
	         "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n");
	snprintf(want, sizeof(want), "R:a%.*s|T:b|F:stop", 100, text + 8);
	check(&c, text, NULL, want, 0);
}

static void test_chatml_malformed(void **state)
{
	struct eng_chatparse_cfg c = cfg_of(ENG_CHAT_CHATML);
	struct eng_chatparse_info info;
	const char *t;

	(void)state;
	/* Cut by max_tokens inside the arguments: the call is begun, so it
	 * ends and the parser reports it broken. */
	info = check(&c,
	             "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par", "length",
	             "B0:get_weather|A0:{\"city\": \"Par|E0|F:length", 1);
	assert_int_equal(info.broken, 1);
	assert_non_null(strstr(info.error, "ended inside it"));
	/* Not JSON: relayed as text, marker and all. */
	t = "<tool_call>\n{name: get_weather, city: Paris}\n</tool_call>";
	info = check(&c, t, NULL, "T:<tool_call>\n{name: get_weather, city: Paris}\n</tool_call>|F:stop", 0);
	assert_int_equal(info.malformed, 1);
	assert_int_equal(info.tool_calls, 0);
	assert_non_null(strstr(info.error, "not valid JSON"));
	/* A tool the request does not have: text. */
	info = check(&c, "<tool_call>\n{\"name\": \"delete_everything\", \"arguments\": {}}\n</tool_call>",
	             NULL, "T:<tool_call>\n{\"name\": \"delete_everything\", \"arguments\": {}}\n</tool_call>|F:stop",
	             0);
	assert_non_null(strstr(info.error, "tool the request does not have"));
	/* Arguments stop being JSON after the call began: broken, the rest of
	 * the block skipped, text after it relayed. */
	info = check(&c,
	             "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": Paris}}\n</tool_call>\nDone.",
	             NULL, "B0:get_weather|A0:{\"city\": |E0|T:\nDone.|F:stop", 1);
	assert_int_equal(info.broken, 1);
	/* No </tool_call>: the call stands, the text after it is text. */
	info = check(&c,
	             "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\nLet me know.",
	             NULL, "B0:get_weather|A0:{\"city\": \"Paris\"}|E0|T:Let me know.|F:tool_calls", 0);
	assert_int_equal(info.malformed, 1);
	/* Unclosed before the name is known, at the end: text. */
	info = check(&c, "Checking.<tool_call>\n{\"name\": \"get_wea", NULL,
	             "T:Checking.<tool_call>\n{\"name\": \"get_wea|F:stop", 0);
	assert_int_equal(info.malformed, 1);
	/* No name; name not a string; arguments not an object. */
	check(&c, "<tool_call>{\"arguments\": {}}</tool_call>", NULL,
	      "T:<tool_call>{\"arguments\": {}}</tool_call>|F:stop", 0);
	check(&c, "<tool_call>{\"name\": 5}</tool_call>", NULL,
	      "T:<tool_call>{\"name\": 5}</tool_call>|F:stop", 0);
	check(&c, "<tool_call>{\"name\": \"get_time\", \"arguments\": [1]}</tool_call>", NULL,
	      "B0:get_time|E0|F:stop", 1);
	/* String arguments that hold no object. */
	check(&c, "<tool_call>{\"arguments\": \"[1]\", \"name\": \"get_time\"}</tool_call>", NULL,
	      "T:<tool_call>{\"arguments\": \"[1]\", \"name\": \"get_time\"}</tool_call>|F:stop", 0);
	/* Two markers: the first is text, the second a call. */
	check(&c, "<tool_call><tool_call>{\"name\": \"get_time\"}</tool_call>", NULL,
	      "T:<tool_call>|B0:get_time|A0:{}|E0|F:tool_calls", 0);
}

static void test_no_tools(void **state)
{
	struct eng_chatparse_cfg c = cfg_of(ENG_CHAT_CHATML);

	(void)state;
	/* A request without tools: tool-call syntax is text. */
	c.n_tools = 0;
	c.tools = NULL;
	check(&c, "<think>ok</think><tool_call>{\"name\": \"get_time\"}</tool_call>", NULL,
	      "R:ok|T:<tool_call>{\"name\": \"get_time\"}</tool_call>|F:stop", 0);
	c = cfg_of(ENG_CHAT_PLAIN);
	c.reasoning = false;
	check(&c, "Once upon a time <tool_call>[TOOL_CALLS]", NULL,
	      "T:Once upon a time <tool_call>[TOOL_CALLS]|F:stop", 0);
}

/* ---- Llama 3.1 -------------------------------------------------------------------- */

static void test_llama3(void **state)
{
	struct eng_chatparse_cfg c = cfg_of(ENG_CHAT_LLAMA3);
	struct eng_chatparse_info info;

	(void)state;
	/* llama.cpp test-chat.cpp's Llama 3.1 call */
	check(&c, "{\"name\": \"special_function\", \"parameters\": {\"arg1\": 1}}", NULL,
	      "B0:special_function|A0:{\"arg1\": 1}|E0|F:tool_calls", 0);
	check(&c, "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", NULL,
	      "B0:get_weather|A0:{\"city\": \"Paris\"}|E0|F:tool_calls", 0);
	check(&c, "\n{\"type\": \"function\", \"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
	      NULL, "B0:get_weather|A0:{\"city\": \"Paris\"}|E0|F:tool_calls", 0);
	/* Parallel calls, ";"-separated as Llama 3.1 writes them. */
	check(&c,
	      "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}; {\"name\": \"get_weather\", "
	      "\"parameters\": {\"city\": \"London\"}}",
	      NULL,
	      "B0:get_weather|A0:{\"city\": \"Paris\"}|E0|B1:get_weather|A1:{\"city\": \"London\"}|E1|"
	      "F:tool_calls", 0);
	check(&c, "The weather in Paris is 18\xc2\xb0" "C and sunny.", NULL,
	      "T:The weather in Paris is 18\xc2\xb0" "C and sunny.|F:stop", 0);
	/* A JSON answer that is no call (llama.cpp: "unknown_function" stays
	 * content): text, and not counted as malformed (no marker). */
	info = check(&c, "{\"name\": \"Alice\", \"age\": 30}", NULL,
	             "T:{\"name\": \"Alice\", \"age\": 30}|F:stop", 0);
	assert_int_equal(info.malformed, 0);
	check(&c, "{\"city\": \"Paris\"}", NULL, "T:{\"city\": \"Paris\"}|F:stop", 0);
	/* Calls only at the start of the answer. */
	check(&c, "Sure: {\"name\": \"get_weather\", \"parameters\": {}}", NULL,
	      "T:Sure: {\"name\": \"get_weather\", \"parameters\": {}}|F:stop", 0);
	/* Text after a call. */
	check(&c, "{\"name\": \"get_time\", \"parameters\": {}}\nThen I will answer.", NULL,
	      "B0:get_time|A0:{}|E0|T:Then I will answer.|F:tool_calls", 0);
	/* Cut inside the arguments. */
	check(&c, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Pa", "length",
	      "B0:get_weather|A0:{\"city\": \"Pa|E0|F:length", 1);
	/* <|python_tag|> followed by something else: text, counted. */
	info = check(&c, "<|python_tag|>brave_search.call(query=\"x\")", NULL,
	             "T:<|python_tag|>brave_search.call(query=\"x\")|F:stop", 0);
	assert_int_equal(info.malformed, 1);
}

/* ---- Mistral ------------------------------------------------------------------------- */

static void test_mistral(void **state)
{
	struct eng_chatparse_cfg c = cfg_of(ENG_CHAT_MISTRAL);
	struct rec r;
	struct eng_chatparse_info info;
	const char *t;

	(void)state;
	/* v0.3 */
	t = "[TOOL_CALLS] [{\"name\": \"get_current_weather\", \"arguments\": {\"location\": \"Paris, France\", "
	    "\"format\": \"celsius\"}}]";
	check(&c, t, NULL,
	      "B0:get_current_weather|A0:{\"location\": \"Paris, France\", \"format\": \"celsius\"}|E0|"
	      "F:tool_calls", 0);
	/* Mistral ids: 9 alphanumerics, as the template wants them back. */
	parse(&c, t, strlen(t), NULL, 0, NULL, &r, &info);
	assert_int_equal(r.id_len, 9);
	free(r.s);
	/* Nemo, two calls with the model's ids */
	check(&c,
	      "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"a1b2c3d4e\"}, "
	      "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"London\"}, \"id\": \"f5g6h7i8j\"}]",
	      NULL,
	      "B0:get_weather|A0:{\"city\": \"Paris\"}|E0|B1:get_weather|A1:{\"city\": \"London\"}|E1|"
	      "F:tool_calls", 0);
	/* llama.cpp test-chat.cpp: text before, arguments before the name */
	check(&c,
	      "Bleh[TOOL_CALLS][{\"arguments\": {\"arg1\": 1}, \"name\": \"special_function\", \"id\": \"123456789\"}]",
	      NULL, "T:Bleh|B0:special_function|A0:{\"arg1\": 1}|E0|F:tool_calls", 0);
	/* The newer form, with and without [CALL_ID] */
	check(&c, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]get_time[ARGS]{\"tz\": \"CET\"}",
	      NULL, "B0:get_weather|A0:{\"city\": \"Paris\"}|E0|B1:get_time|A1:{\"tz\": \"CET\"}|E1|F:tool_calls", 0);
	check(&c, "[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{\"city\": \"Paris\"}", NULL,
	      "B0:get_weather|A0:{\"city\": \"Paris\"}|E0|F:tool_calls", 0);
	check(&c, "Plain answer: 42.", NULL, "T:Plain answer: 42.|F:stop", 0);
	/* Malformed: the list not closed at the end (arguments whole: the call
	 * stands); [ARGS] without an object (text); an unknown name (text). */
	info = check(&c, "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}", NULL,
	             "B0:get_weather|A0:{\"city\": \"Paris\"}|E0|F:tool_calls", 0);
	assert_int_equal(info.malformed, 1);
	check(&c, "[TOOL_CALLS]get_weather[ARGS]not json", NULL,
	      "T:[TOOL_CALLS]get_weather[ARGS]not json|F:stop", 0);
	check(&c, "[TOOL_CALLS]launch_missiles[ARGS]{}", NULL,
	      "T:[TOOL_CALLS]launch_missiles[ARGS]{}|F:stop", 0);
	check(&c, "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": }}]", NULL,
	      "B0:get_weather|A0:{\"city\": |E0|F:stop", 1);
	check(&c, "[TOOL_CALLS] [] then text", NULL, "T: then text|F:stop", 0);
}

/* ---- the contract ------------------------------------------------------------------------ */

static int count_events(const struct gd_event *ev, void *ctx)
{
	(void)ev;
	(*(int *)ctx)++;
	return 0;
}

#define FEED(lit) eng_chatparse_feed(p, (lit), strlen(lit), on_event, &r, err, sizeof(err))

static void test_streaming(void **state)
{
	struct eng_chatparse_cfg c = cfg_of(ENG_CHAT_CHATML);
	struct eng_chatparse *p = eng_chatparse_new();
	struct rec r;
	char err[128];

	(void)state;
	memset(&r, 0, sizeof(r));
	r.last = -1;
	assert_int_equal(eng_chatparse_reset(p, &c), ENG_CHATPARSE_OK);
	/* Text goes out at once; only a possible marker start is held. */
	assert_int_equal(FEED("Hello"), ENG_CHATPARSE_OK);
	assert_string_equal(r.s, "T:Hello");
	assert_int_equal(FEED(" wor<too"), ENG_CHATPARSE_OK);
	assert_string_equal(r.s, "T:Hello wor");
	assert_int_equal(FEED("l_call>\n{\"name\": \"get_weather\", \"argu"), ENG_CHATPARSE_OK);
	assert_string_equal(r.s, "T:Hello wor|B0:get_weather");
	/* Arguments go out as they come. */
	assert_int_equal(FEED("ments\": {\"ci"), ENG_CHATPARSE_OK);
	assert_string_equal(r.s, "T:Hello wor|B0:get_weather|A0:{\"ci");
	assert_int_equal(FEED("ty\": 1}}"), ENG_CHATPARSE_OK);
	assert_string_equal(r.s, "T:Hello wor|B0:get_weather|A0:{\"city\": 1}|E0");
	assert_int_equal(eng_chatparse_end(p, NULL, on_event, &r, err, sizeof(err)), ENG_CHATPARSE_OK);
	assert_string_equal(r.s, "T:Hello wor|B0:get_weather|A0:{\"city\": 1}|E0|F:tool_calls");
	free(r.s);
	eng_chatparse_free(p);
	eng_chatparse_free(NULL);
}

static int stop_at_begin(const struct gd_event *ev, void *ctx)
{
	(*(int *)ctx)++;
	return ev->type == GD_EV_TOOL_BEGIN;
}

static void test_stop_and_args(void **state)
{
	struct eng_chatparse_cfg c = cfg_of(ENG_CHAT_CHATML);
	struct eng_chatparse *p = eng_chatparse_new();
	const char *t = "a<tool_call>{\"name\": \"get_time\"}</tool_call>b";
	int n = 0;

	(void)state;
	assert_int_equal(eng_chatparse_reset(p, &c), ENG_CHATPARSE_OK);
	assert_int_equal(eng_chatparse_feed(p, t, strlen(t), stop_at_begin, &n, NULL, 0),
	                 ENG_CHATPARSE_ESTOPPED);
	assert_int_equal(n, 2); /* the text, then the begin that stopped it */
	assert_int_equal(eng_chatparse_feed(p, "x", 1, stop_at_begin, &n, NULL, 0),
	                 ENG_CHATPARSE_ESTOPPED);
	assert_int_equal(eng_chatparse_end(p, NULL, stop_at_begin, &n, NULL, 0), ENG_CHATPARSE_ESTOPPED);
	assert_int_equal(n, 2);
	/* Reset makes it usable again. */
	assert_int_equal(eng_chatparse_reset(p, &c), ENG_CHATPARSE_OK);
	n = 0;
	assert_int_equal(eng_chatparse_feed(p, "x", 1, count_events, &n, NULL, 0), ENG_CHATPARSE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(eng_chatparse_feed(NULL, "x", 1, count_events, &n, NULL, 0),
	                 ENG_CHATPARSE_EINVAL);
	assert_int_equal(eng_chatparse_feed(p, NULL, 1, count_events, &n, NULL, 0), ENG_CHATPARSE_EINVAL);
	c.n_tools = 1;
	c.tools = NULL;
	assert_int_equal(eng_chatparse_reset(p, &c), ENG_CHATPARSE_EINVAL);
	c = cfg_of(ENG_CHAT_FAMILY_COUNT);
	assert_int_equal(eng_chatparse_reset(p, &c), ENG_CHATPARSE_EINVAL);
	assert_string_equal(eng_chatparse_strerror(ENG_CHATPARSE_EBROKEN),
	                    "a tool call the model began is malformed");
	eng_chatparse_free(p);
}

/* Inputs past the parser's window and head caps, in a few pieces each. */
static void test_caps(void **state)
{
	struct eng_chatparse_cfg c = cfg_of(ENG_CHAT_CHATML);
	size_t big = ENG_CHATPARSE_HEAD_MAX + 100;
	char *t = malloc(big + 200), *want = malloc(big + 300);
	size_t n, cuts[3];
	struct rec r, r2;
	struct eng_chatparse_info info;

	(void)state;
	/* Arguments before the name, longer than a call may be held: text. */
	n = (size_t)sprintf(t, "<tool_call>{\"arguments\": {\"x\": \"");
	memset(t + n, 'a', big);
	n += big;
	n += (size_t)sprintf(t + n, "\"}, \"name\": \"get_time\"}</tool_call>");
	parse(&c, t, n, NULL, 0, NULL, &r, &info);
	sprintf(want, "T:%s|F:stop", t);
	assert_string_equal(r.s, want);
	assert_non_null(strstr(info.error, "too long before its name"));
	cuts[0] = 5;
	cuts[1] = 5000;
	cuts[2] = n - 3;
	parse(&c, t, n, cuts, 3, NULL, &r2, &info);
	assert_string_equal(r2.s, r.s);
	free(r.s);
	free(r2.s);
	/* The same size after the name streams through. */
	n = (size_t)sprintf(t, "<tool_call>{\"name\": \"get_time\", \"arguments\": {\"x\": \"");
	memset(t + n, 'a', big);
	n += big;
	n += (size_t)sprintf(t + n, "\"}}</tool_call>");
	parse(&c, t, n, cuts, 3, NULL, &r, &info);
	assert_int_equal(info.tool_calls, 1);
	assert_int_equal(info.malformed, 0);
	assert_true(r.len > big);
	free(r.s);
	/* Deeper than the scanner's depth: not valid, text. */
	n = (size_t)sprintf(t, "<tool_call>{\"arguments\": {\"a\": ");
	memset(t + n, '[', ENG_CHATPARSE_DEPTH + 1);
	n += ENG_CHATPARSE_DEPTH + 1;
	t[n] = '\0';
	parse(&c, t, n, NULL, 0, NULL, &r, &info);
	assert_int_equal(info.tool_calls, 0);
	assert_non_null(strstr(info.error, "not valid JSON"));
	sprintf(want, "T:%s|F:stop", t);
	assert_string_equal(r.s, want);
	free(r.s);
	/* A window of undecided whitespace at the start is decided when full. */
	memset(t, ' ', 5000);
	strcpy(t + 5000, "x");
	c = cfg_of(ENG_CHAT_LLAMA3);
	parse(&c, t, 5001, NULL, 0, NULL, &r, &info);
	cuts[0] = 1;
	cuts[1] = 4097;
	cuts[2] = 4999;
	parse(&c, t, 5001, cuts, 3, NULL, &r2, &info);
	assert_string_equal(r.s, r2.s);
	assert_int_equal(r.len, 2 + 5001 + 7);
	free(r.s);
	free(r2.s);
	free(t);
	free(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chatml_text),
		cmocka_unit_test(test_chatml_call),
		cmocka_unit_test(test_chatml_parallel),
		cmocka_unit_test(test_chatml_argument_forms),
		cmocka_unit_test(test_qwen3_thinking),
		cmocka_unit_test(test_whitespace_bounds),
		cmocka_unit_test(test_chatml_malformed),
		cmocka_unit_test(test_no_tools),
		cmocka_unit_test(test_llama3),
		cmocka_unit_test(test_mistral),
		cmocka_unit_test(test_streaming),
		cmocka_unit_test(test_stop_and_args),
		cmocka_unit_test(test_caps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
