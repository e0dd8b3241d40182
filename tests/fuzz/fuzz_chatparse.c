/* Fuzz target for the co-resident chat side: the output parser
 * (engine/chatparse.h), the stop-string matcher (engine/stop.h) and the
 * chat templates (engine/chat_template.h). The first input byte picks:
 *   bits 0-1  family: chatml, llama3, mistral, plain
 *   bit 2     the prompt opened <think>      bit 3  no reasoning parsing
 *   bit 4     the request has no tools
 * the rest is the generated text. It is parsed whole and in pieces cut
 * where the input says; both must give well-formed events (tool calls
 * balanced, arguments only inside a call, one finish, last) and the same
 * events once adjacent fragments are joined. The text also goes through the
 * stop matcher (stop strings taken from it) whole and byte by byte, and is
 * used as a template, as message content, as call arguments and as tool
 * parameters for every family. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/chat_template.h"
#include "engine/chatparse.h"
#include "engine/stop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct rec {
	char *s;
	size_t len, cap;
	int last;
	uint32_t last_index;
	int open;
	bool finished;
};

static void add(struct rec *r, const char *s, size_t n)
{
	if (r->len + n + 1 > r->cap) {
		r->cap = 2 * (r->len + n + 1);
		r->s = realloc(r->s, r->cap);
		if (!r->s)
			abort();
	}
	memcpy(r->s + r->len, s, n);
	r->len += n;
}

static int on_event(const struct gd_event *ev, void *ctx)
{
	struct rec *r = ctx;
	char tag[64];
	bool join;

	if ((unsigned)ev->type >= GD_EV_COUNT || !ev->data || !ev->id || !ev->name || r->finished)
		abort();
	join = (int)ev->type == r->last &&
	       (ev->type == GD_EV_TEXT || ev->type == GD_EV_REASONING ||
	        (ev->type == GD_EV_TOOL_ARGS && ev->index == r->last_index));
	switch (ev->type) {
	case GD_EV_TOOL_BEGIN:
		if (r->open || !ev->id_len || !ev->name_len || ev->id_len >= ENG_CHATPARSE_ID_MAX ||
		    ev->name_len >= ENG_CHATPARSE_NAME_MAX)
			abort();
		r->open = 1;
		break;
	case GD_EV_TOOL_ARGS:
		if (!r->open || !ev->len)
			abort();
		break;
	case GD_EV_TOOL_END:
		if (!r->open)
			abort();
		r->open = 0;
		break;
	case GD_EV_FINISH:
		if (r->open)
			abort();
		r->finished = true;
		break;
	case GD_EV_TEXT:
	case GD_EV_REASONING:
		if (!ev->len)
			abort();
		break;
	default:
		abort();
	}
	if (!join) {
		snprintf(tag, sizeof(tag), "|%d:%u:", (int)ev->type, ev->index);
		add(r, tag, strlen(tag));
		add(r, ev->name, ev->name_len);
		add(r, ":", 1);
	}
	add(r, ev->data, ev->len); /* touches every byte */
	r->last = ev->type;
	r->last_index = ev->index;
	return 0;
}

static const struct eng_chat_tool tools[] = {
	{ .name = { "get_weather", 11 } }, { .name = { "f", 1 } }, { .name = { "a", 1 } },
};

static void parse(const struct eng_chatparse_cfg *cfg, const char *text, size_t n,
                  const uint8_t *cut_src, size_t cut_n, struct rec *r)
{
	struct eng_chatparse *p = eng_chatparse_new();
	char err[256];
	size_t at = 0, k = 0;

	if (!p)
		abort();
	memset(r, 0, sizeof(*r));
	r->last = -1;
	if (eng_chatparse_reset(p, cfg) != ENG_CHATPARSE_OK)
		abort();
	while (at < n) {
		/* piece sizes from the input itself: 1..64, or the rest */
		size_t len = cut_src ? 1 + (size_t)(cut_src[k++ % cut_n] & 63) : n - at;
		enum eng_chatparse_status st;

		if (len > n - at)
			len = n - at;
		err[0] = '\0';
		st = eng_chatparse_feed(p, text + at, len, on_event, r, err, sizeof(err));
		if (st != ENG_CHATPARSE_OK && (st != ENG_CHATPARSE_EBROKEN || !err[0]))
			abort();
		at += len;
	}
	if (eng_chatparse_end(p, NULL, on_event, r, err, sizeof(err)) < ENG_CHATPARSE_EBROKEN ||
	    !r->finished)
		abort();
	eng_chatparse_free(p);
}

static void check_parser(uint8_t flags, const char *text, size_t n)
{
	struct eng_chatparse_cfg cfg = {
		.family = (enum eng_chat_family)(ENG_CHAT_CHATML + (flags & 3)),
		.tools = tools, .n_tools = 3,
		.think_open = flags & 4, .reasoning = !(flags & 8), .id_seed = n,
	};
	struct rec whole, split;

	if (flags & 16) {
		cfg.tools = NULL;
		cfg.n_tools = 0;
	}
	parse(&cfg, text, n, NULL, 0, &whole);
	parse(&cfg, text, n, (const uint8_t *)text, n ? n : 1, &split);
	if (whole.len != split.len || memcmp(whole.s, split.s, whole.len) != 0)
		abort(); /* split anywhere, the same events */
	free(whole.s);
	free(split.s);
}

static void check_stop(const char *text, size_t n)
{
	struct eng_str stops[3];
	struct eng_stop a, b;
	char *out = malloc(ENG_STOP_OUT_MAX(n)), one[ENG_STOP_OUT_MAX(1)];
	int64_t ra, rb, total = 0;

	if (!out || n < 6) {
		free(out);
		return;
	}
	/* stop strings: pieces of the text itself, so they do occur */
	stops[0] = (struct eng_str){ text + n / 3, 1 + (size_t)(text[0] & 3) };
	stops[1] = (struct eng_str){ text + n / 2, 1 };
	stops[2] = (struct eng_str){ text + 1, 2 };
	if (eng_stop_init(&a, stops, 3, NULL, 0) != ENG_OK || eng_stop_init(&b, stops, 3, NULL, 0) != ENG_OK)
		abort();
	ra = eng_stop_feed(&a, text, n, out, ENG_STOP_OUT_MAX(n));
	if (ra < 0 || (size_t)ra > n || memcmp(out, text, (size_t)ra) != 0)
		abort();
	for (size_t i = 0; i < n; i++) {
		rb = eng_stop_feed(&b, text + i, 1, one, sizeof(one));
		if (rb < 0 || memcmp(one, text + total, (size_t)rb) != 0)
			abort();
		total += rb;
	}
	if (eng_stop_matched(&a) < 0) {
		ra += eng_stop_flush(&a, out, ENG_STOP_LEN_MAX);
		total += eng_stop_flush(&b, one, sizeof(one));
	}
	if (ra != total || eng_stop_matched(&a) != eng_stop_matched(&b))
		abort();
	free(out);
}

static void check_templates(const char *text, size_t n)
{
	struct eng_str s = { text, n };
	struct eng_chat_call call = { .id = s, .name = { "f", 1 }, .arguments = s };
	struct eng_chat_tool tool = { .name = { "f", 1 }, .description = s, .parameters = s };
	struct eng_chat_msg msgs[] = {
		{ .role = ENG_CHAT_SYSTEM, .content = s },
		{ .role = ENG_CHAT_USER, .content = s },
		{ .role = ENG_CHAT_ASSISTANT, .content = s, .reasoning = s, .calls = &call, .n_calls = 1 },
		{ .role = ENG_CHAT_TOOL, .content = s, .tool_call_id = s },
		{ .role = ENG_CHAT_ASSISTANT, .content = s },
	};
	struct eng_chat_input in = { .msgs = msgs, .n_msgs = 5, .tools = &tool, .n_tools = 1,
	                             .add_generation_prompt = true };
	struct eng_chat_prompt *p = eng_chat_prompt_new(1u << 20);
	struct eng_chat_template t;
	char err[256];

	if (!p)
		abort();
	for (int f = ENG_CHAT_AUTO; f < ENG_CHAT_FAMILY_COUNT; f++) {
		if (eng_chat_template_init(&t, text, n, (enum eng_chat_family)f, err, sizeof(err)) != ENG_OK)
			abort();
		if (eng_chat_render(&t, &in, p, err, sizeof(err)) != ENG_OK)
			continue;
		if (p->len > (1u << 20) || p->text[p->len] != '\0')
			abort();
		for (uint32_t i = 0; i < p->n_spans; i++)
			if (p->spans[i].off + p->spans[i].len > p->len ||
			    (i && p->spans[i].off < p->spans[i - 1].off + p->spans[i - 1].len))
				abort();
	}
	eng_chat_prompt_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data + 1;
	size_t n = size ? size - 1 : 0;

	if (size == 0)
		return 0;
	check_parser(data[0], text, n);
	check_stop(text, n);
	if (n <= 4096)
		check_templates(text, n);
	return 0;
}

#include "wire_replay.h"
