/* OpenAI-format output written by loopwarden itself. */
#include "proxy/emit.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "guards/utf8.h"

/* The one JSON string writer: every string loopwarden composes itself
 * (error messages that quote a path or an upstream's text, ids, models,
 * guard details) goes through here, so what we emit is valid JSON and valid
 * UTF-8 whatever bytes the input held: control characters are escaped, and
 * each byte that does not start a valid UTF-8 character becomes U+FFFD
 * (guards/utf8.h, strict: no overlongs, surrogates or values past
 * U+10FFFF). Valid characters are copied as they are. */
void px_json_string(struct evbuffer *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	static const char replacement[] = "\xEF\xBF\xBD";
	const unsigned char *u = (const unsigned char *)s;
	evbuffer_add(out, "\"", 1);
	size_t run = 0; /* start of the bytes not yet written */
	for (size_t i = 0; i < len;) {
		unsigned char ch = u[i];
		if (ch >= 0x80) {
			uint32_t cp;
			size_t k = gd_utf8_decode(u + i, len - i, &cp);
			if (k > 0) {
				i += k;
				continue;
			}
			evbuffer_add(out, s + run, i - run);
			evbuffer_add(out, replacement, 3);
			run = ++i;
			continue;
		}
		if (ch >= 0x20 && ch != '"' && ch != '\\') {
			i++;
			continue;
		}
		evbuffer_add(out, s + run, i - run);
		run = ++i;
		char esc[7] = {'\\', 0};
		size_t n = 2;
		switch (ch) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 15];
			n = 6;
		}
		evbuffer_add(out, esc, n);
	}
	evbuffer_add(out, s + run, len - run);
	evbuffer_add(out, "\"", 1);
}

static void json_cstr(struct evbuffer *out, const char *s)
{
	px_json_string(out, s, strlen(s));
}

const char *px_error_type(int status)
{
	switch (status) {
	case 400: case 411: case 413: case 422: return "invalid_request_error";
	case 401: return "authentication_error";
	case 403: return "permission_error";
	case 404: return "not_found_error";
	case 405: return "invalid_request_error";
	case 429: return "rate_limit_error";
	case 501: return "not_supported_error";
	case 503: return "unavailable_error";
	default: return status >= 500 ? "server_error" : "invalid_request_error";
	}
}

void px_emit_error(struct evbuffer *out, int status, const char *msg)
{
	evbuffer_add_printf(out, "{\"error\":{\"message\":");
	json_cstr(out, msg);
	evbuffer_add_printf(out, ",\"type\":\"%s\",\"code\":%d}}", px_error_type(status), status);
}

void px_emit_error_event(struct evbuffer *out, int status, const char *msg)
{
	evbuffer_add(out, "data: ", 6);
	px_emit_error(out, status, msg);
	evbuffer_add(out, "\n\n", 2);
}

void px_emit_frame(struct evbuffer *out, const char *json, size_t len)
{
	evbuffer_add(out, "data: ", 6);
	evbuffer_add(out, json, len);
	evbuffer_add(out, "\n\n", 2);
}

void px_emit_done(struct evbuffer *out)
{
	evbuffer_add(out, "data: [DONE]\n\n", 14);
}

static void chunk_head(struct evbuffer *out, const struct px_answer_id *a)
{
	evbuffer_add_printf(out, "{\"id\":");
	json_cstr(out, a->id);
	evbuffer_add_printf(out, ",\"object\":\"chat.completion.chunk\",\"created\":%" PRId64 ",\"model\":",
	                    a->created);
	json_cstr(out, a->model);
}

static void loopwarden_obj(struct evbuffer *out, const struct gd_trip *trip)
{
	evbuffer_add_printf(out, "\"loopwarden\":{\"guard\":");
	json_cstr(out, trip->guard);
	evbuffer_add_printf(out, ",\"detail\":");
	json_cstr(out, trip->detail);
	evbuffer_add(out, "}", 1);
}

void px_emit_trip_chunk(struct evbuffer *out, const struct px_answer_id *a,
                        const struct gd_trip *trip)
{
	evbuffer_add(out, "data: ", 6);
	chunk_head(out, a);
	evbuffer_add_printf(out, ",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\","
	                         "\"logprobs\":null}],");
	loopwarden_obj(out, trip);
	evbuffer_add(out, "}\n\n", 3);
}

void px_emit_notice_stream(struct evbuffer *out, const struct px_answer_id *a,
                           const char *content, const char *finish,
                           const struct gd_trip *trip)
{
	evbuffer_add(out, "data: ", 6);
	chunk_head(out, a);
	evbuffer_add_printf(out, ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":");
	json_cstr(out, content);
	evbuffer_add_printf(out, "},\"finish_reason\":null,\"logprobs\":null}]}\n\n");
	evbuffer_add(out, "data: ", 6);
	chunk_head(out, a);
	evbuffer_add_printf(out, ",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"%s\","
	                         "\"logprobs\":null}],", finish);
	loopwarden_obj(out, trip);
	evbuffer_add(out, "}\n\n", 3);
	px_emit_done(out);
}

void px_emit_notice_body(struct evbuffer *out, const struct px_answer_id *a,
                         const char *content, const char *finish,
                         const struct gd_trip *trip)
{
	evbuffer_add_printf(out, "{\"id\":");
	json_cstr(out, a->id);
	evbuffer_add_printf(out, ",\"object\":\"chat.completion\",\"created\":%" PRId64 ",\"model\":",
	                    a->created);
	json_cstr(out, a->model);
	evbuffer_add_printf(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
	json_cstr(out, content);
	evbuffer_add_printf(out, "},\"finish_reason\":\"%s\",\"logprobs\":null}],"
	                         "\"usage\":{\"prompt_tokens\":0,\"completion_tokens\":0,\"total_tokens\":0},",
	                    finish);
	loopwarden_obj(out, trip);
	evbuffer_add(out, "}", 1);
}

void px_notice_text(char *buf, size_t buflen, const struct gd_trip *trip)
{
	snprintf(buf, buflen,
	         "[loopwarden] This request was not sent to the model: the conversation is "
	         "already in a loop (guard \"%s\": %s). Change the approach instead of repeating "
	         "the same step.", trip->guard, trip->detail);
}

/* ---- truncating a non-streaming answer ---- */

enum node_role { R_PLAIN = 0, R_CHOICE0, R_MESSAGE, R_TOP };

/* What the rewrite puts in: the cut, the trip, the finish reason, the usage
 * to add when the body has none. */
struct trunc {
	const struct px_cut *cut;
	const struct gd_trip *trip;
	const char *finish;
	const struct px_usage *usage;
};

static void gen_value(yajl_gen g, yajl_val v, enum node_role role, const struct trunc *t);

static void gen_str(yajl_gen g, const char *s)
{
	yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void gen_number(yajl_gen g, int64_t v)
{
	char num[32];
	int n = snprintf(num, sizeof(num), "%" PRId64, v < 0 ? 0 : v);

	yajl_gen_number(g, num, (size_t)n);
}

static void gen_object(yajl_gen g, yajl_val v, enum node_role role, const struct trunc *t)
{
	const struct px_cut *cut = t->cut;
	const struct gd_trip *trip = t->trip;
	bool has_usage = false;

	yajl_gen_map_open(g);
	for (size_t i = 0; i < v->u.object.len; i++) {
		const char *k = v->u.object.keys[i];
		yajl_val c = v->u.object.values[i];
		if (role == R_TOP && strcmp(k, "loopwarden") == 0)
			continue;
		if (role == R_CHOICE0 && strcmp(k, "finish_reason") == 0) {
			gen_str(g, k);
			gen_str(g, t->finish);
			continue;
		}
		if (role == R_TOP && strcmp(k, "usage") == 0 && YAJL_IS_OBJECT(c))
			has_usage = true;
		if (role == R_MESSAGE && (strcmp(k, "content") == 0 || strcmp(k, "reasoning_content") == 0 ||
		                          strcmp(k, "reasoning") == 0) && YAJL_IS_STRING(c)) {
			const char *s = YAJL_GET_STRING(c);
			size_t n = strlen(s);
			size_t keep = strcmp(k, "content") == 0 ? cut->text_bytes : cut->reasoning_bytes;
			gen_str(g, k);
			yajl_gen_string(g, (const unsigned char *)s, gd_utf8_cut(s, n, keep));
			continue;
		}
		if (role == R_MESSAGE && strcmp(k, "tool_calls") == 0 && YAJL_IS_ARRAY(c)) {
			size_t n = c->u.array.len < cut->tool_calls ? c->u.array.len : cut->tool_calls;
			if (n == 0)
				continue;
			gen_str(g, k);
			yajl_gen_array_open(g);
			for (size_t j = 0; j < n; j++)
				gen_value(g, c->u.array.values[j], R_PLAIN, t);
			yajl_gen_array_close(g);
			continue;
		}
		gen_str(g, k);
		enum node_role sub = R_PLAIN;
		if (role == R_CHOICE0 && strcmp(k, "message") == 0)
			sub = R_MESSAGE;
		if (role == R_TOP && strcmp(k, "choices") == 0 && YAJL_IS_ARRAY(c)) {
			yajl_gen_array_open(g);
			for (size_t j = 0; j < c->u.array.len; j++)
				gen_value(g, c->u.array.values[j], j == 0 ? R_CHOICE0 : R_PLAIN, t);
			yajl_gen_array_close(g);
			continue;
		}
		gen_value(g, c, sub, t);
	}
	if (role == R_TOP && !has_usage && t->usage) {
		int64_t p = t->usage->prompt_tokens < 0 ? 0 : t->usage->prompt_tokens;
		int64_t q = t->usage->completion_tokens < 0 ? 0 : t->usage->completion_tokens;
		gen_str(g, "usage");
		yajl_gen_map_open(g);
		gen_str(g, "prompt_tokens");
		gen_number(g, p);
		gen_str(g, "completion_tokens");
		gen_number(g, q);
		gen_str(g, "total_tokens");
		gen_number(g, p + q);
		yajl_gen_map_close(g);
	}
	if (role == R_TOP) {
		gen_str(g, "loopwarden");
		yajl_gen_map_open(g);
		gen_str(g, "guard");
		gen_str(g, trip->guard);
		gen_str(g, "detail");
		gen_str(g, trip->detail);
		if (!has_usage && t->usage && t->usage->note) {
			gen_str(g, "usage");
			gen_str(g, t->usage->note);
		}
		yajl_gen_map_close(g);
	}
	yajl_gen_map_close(g);
}

static void gen_value(yajl_gen g, yajl_val v, enum node_role role, const struct trunc *t)
{
	if (!v) {
		yajl_gen_null(g);
		return;
	}
	switch (v->type) {
	case yajl_t_string:
		gen_str(g, v->u.string);
		break;
	case yajl_t_number:
		yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
		break;
	case yajl_t_object:
		gen_object(g, v, role, t);
		break;
	case yajl_t_array:
		yajl_gen_array_open(g);
		for (size_t j = 0; j < v->u.array.len; j++)
			gen_value(g, v->u.array.values[j], R_PLAIN, t);
		yajl_gen_array_close(g);
		break;
	case yajl_t_true:
		yajl_gen_bool(g, 1);
		break;
	case yajl_t_false:
		yajl_gen_bool(g, 0);
		break;
	default:
		yajl_gen_null(g);
	}
}

int px_emit_truncated_body(struct evbuffer *out, const char *body, size_t len,
                           const struct px_cut *cut, const struct gd_trip *trip)
{
	return px_emit_truncated_body_ex(out, body, len, cut, trip, "length", NULL);
}

int px_emit_truncated_body_ex(struct evbuffer *out, const char *body, size_t len,
                              const struct px_cut *cut, const struct gd_trip *trip,
                              const char *finish, const struct px_usage *usage)
{
	struct trunc t = { cut, trip, finish ? finish : "length", usage };
	(void)len; /* <body> is NUL-terminated by the caller */
	char err[128];
	yajl_val root = yajl_tree_parse(body, err, sizeof(err));
	if (!root || !YAJL_IS_OBJECT(root)) {
		yajl_tree_free(root);
		return -1;
	}
	yajl_gen g = yajl_gen_alloc(NULL);
	if (!g) {
		yajl_tree_free(root);
		return -1;
	}
	gen_value(g, root, R_TOP, &t);
	const unsigned char *buf;
	size_t blen;
	yajl_gen_get_buf(g, &buf, &blen);
	evbuffer_add(out, buf, blen);
	yajl_gen_free(g);
	yajl_tree_free(root);
	return 0;
}

/* ---- answers loopwarden ends or writes itself ---- */

void px_usage_for_cut(struct px_usage *u, int64_t up_prompt, int64_t up_completion,
                      uint64_t relayed)
{
	int64_t done = up_completion > (int64_t)relayed ? up_completion : (int64_t)relayed;

	if (up_prompt >= 0 && done > 0) {
		u->prompt_tokens = up_prompt;
		u->completion_tokens = done;
		u->note = "prompt_tokens as the upstream reported them; completion_tokens: the "
		          "tokens delivered before the cut";
	} else {
		u->prompt_tokens = 0;
		u->completion_tokens = 0;
		u->note = "the upstream reported no usage before the cut: zeros";
	}
}

static void usage_obj(struct evbuffer *out, const struct px_usage *u)
{
	int64_t p = u && u->prompt_tokens > 0 ? u->prompt_tokens : 0;
	int64_t q = u && u->completion_tokens > 0 ? u->completion_tokens : 0;

	evbuffer_add_printf(out, "\"usage\":{\"prompt_tokens\":%" PRId64 ",\"completion_tokens\":%"
	                    PRId64 ",\"total_tokens\":%" PRId64 "}", p, q, p + q);
}

/* "loopwarden":{"guard","detail"[,"usage"]} (<trip> NULL: only the usage note). */
static void loopwarden_obj_usage(struct evbuffer *out, const struct gd_trip *trip,
                                 const struct px_usage *u)
{
	bool first = true;

	evbuffer_add_printf(out, "\"loopwarden\":{");
	if (trip) {
		evbuffer_add_printf(out, "\"guard\":");
		json_cstr(out, trip->guard);
		evbuffer_add_printf(out, ",\"detail\":");
		json_cstr(out, trip->detail);
		first = false;
	}
	if (u && u->note) {
		evbuffer_add_printf(out, "%s\"usage\":", first ? "" : ",");
		json_cstr(out, u->note);
	}
	evbuffer_add(out, "}", 1);
}

/* data: {…,"choices":[],"usage":{…},"loopwarden":{"guard","detail","usage":note}}:
 * every chunk that carries a "loopwarden" object names the guard (a reader
 * that keeps the last such object still finds it). */
static void usage_chunk(struct evbuffer *out, const struct px_answer_id *a,
                        const struct gd_trip *trip, const struct px_usage *u)
{
	evbuffer_add(out, "data: ", 6);
	chunk_head(out, a);
	evbuffer_add_printf(out, ",\"choices\":[],");
	usage_obj(out, u);
	evbuffer_add(out, ",", 1);
	loopwarden_obj_usage(out, trip, u);
	evbuffer_add(out, "}\n\n", 3);
}

/* data: a chunk whose delta holds <role> (may be NULL), <reasoning> and
 * <content> (each left out when NULL). */
static void delta_chunk(struct evbuffer *out, const struct px_answer_id *a, const char *role,
                        const char *reasoning, size_t rlen, const char *content, size_t clen)
{
	const char *sep = "";

	evbuffer_add(out, "data: ", 6);
	chunk_head(out, a);
	evbuffer_add_printf(out, ",\"choices\":[{\"index\":0,\"delta\":{");
	if (role) {
		evbuffer_add_printf(out, "\"role\":\"%s\"", role);
		sep = ",";
	}
	if (reasoning) {
		evbuffer_add_printf(out, "%s\"reasoning_content\":", sep);
		px_json_string(out, reasoning, rlen);
		sep = ",";
	}
	if (content) {
		evbuffer_add_printf(out, "%s\"content\":", sep);
		px_json_string(out, content, clen);
	}
	evbuffer_add_printf(out, "},\"finish_reason\":null,\"logprobs\":null}]}\n\n");
}

static void final_chunk(struct evbuffer *out, const struct px_answer_id *a, const char *finish,
                        const struct gd_trip *trip)
{
	evbuffer_add(out, "data: ", 6);
	chunk_head(out, a);
	evbuffer_add_printf(out, ",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":");
	json_cstr(out, finish);
	evbuffer_add_printf(out, ",\"logprobs\":null}],");
	loopwarden_obj(out, trip);
	evbuffer_add(out, "}\n\n", 3);
}

void px_emit_cut_stream(struct evbuffer *out, const struct px_answer_id *a,
                        const struct gd_trip *trip, const struct px_cut_stream *c)
{
	if (c->text_len || c->reasoning_len)
		delta_chunk(out, a, NULL, c->reasoning_len ? c->reasoning : NULL, c->reasoning_len,
		            c->text_len ? c->text : NULL, c->text_len);
	final_chunk(out, a, c->finish ? c->finish : "length", trip);
	if (c->usage)
		usage_chunk(out, a, trip, c->usage);
}

void px_emit_answer_stream(struct evbuffer *out, const struct px_answer_id *a,
                           const char *content, size_t content_len,
                           const char *reasoning, size_t reasoning_len, const char *finish,
                           const struct gd_trip *trip, const struct px_usage *usage)
{
	/* An empty answer (proxy.history_action: trip) is only its final
	 * chunk, like a cut before any token. */
	if (content_len || reasoning_len)
		delta_chunk(out, a, "assistant", reasoning_len ? reasoning : NULL, reasoning_len,
		            content ? content : "", content ? content_len : 0);
	final_chunk(out, a, finish, trip);
	if (usage)
		usage_chunk(out, a, trip, usage);
	px_emit_done(out);
}

void px_emit_answer_body(struct evbuffer *out, const struct px_answer_id *a,
                         const char *content, size_t content_len,
                         const char *reasoning, size_t reasoning_len, const char *finish,
                         const struct gd_trip *trip, const struct px_usage *usage)
{
	evbuffer_add_printf(out, "{\"id\":");
	json_cstr(out, a->id);
	evbuffer_add_printf(out, ",\"object\":\"chat.completion\",\"created\":%" PRId64 ",\"model\":",
	                    a->created);
	json_cstr(out, a->model);
	evbuffer_add_printf(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
	px_json_string(out, content ? content : "", content ? content_len : 0);
	if (reasoning_len) {
		evbuffer_add_printf(out, ",\"reasoning_content\":");
		px_json_string(out, reasoning, reasoning_len);
	}
	evbuffer_add_printf(out, "},\"finish_reason\":");
	json_cstr(out, finish);
	evbuffer_add_printf(out, ",\"logprobs\":null}],");
	usage_obj(out, usage);
	evbuffer_add(out, ",", 1);
	loopwarden_obj_usage(out, trip, usage);
	evbuffer_add(out, "}", 1);
}
