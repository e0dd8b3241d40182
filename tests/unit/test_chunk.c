/* Chunk JSON -> guard events: llama.cpp, vLLM and Ollama stream styles, the
 * usage chunk, reasoning, upstream errors, bad input, non-stream bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guards/utf8.h"
#include "proxy/wire/chunk.h"

struct rec {
	char log[8192];
	size_t len;
};

static int on_event(const struct gd_event *ev, void *ctx)
{
	struct rec *r = ctx;
	int n = 0;
	size_t room = sizeof(r->log) - r->len;

	switch (ev->type) {
	case GD_EV_TEXT:
		n = snprintf(r->log + r->len, room, "T(%.*s)", (int)ev->len, ev->data);
		break;
	case GD_EV_REASONING:
		n = snprintf(r->log + r->len, room, "R(%.*s)", (int)ev->len, ev->data);
		break;
	case GD_EV_TOOL_BEGIN:
		n = snprintf(r->log + r->len, room, "B(%u,%.*s,%.*s)", ev->index, (int)ev->id_len,
		             ev->id, (int)ev->name_len, ev->name);
		break;
	case GD_EV_TOOL_ARGS:
		n = snprintf(r->log + r->len, room, "A(%u,%.*s:%.*s)", ev->index, (int)ev->id_len,
		             ev->id, (int)ev->len, ev->data);
		break;
	case GD_EV_TOOL_END:
		n = snprintf(r->log + r->len, room, "E(%u,%.*s)", ev->index, (int)ev->id_len, ev->id);
		break;
	case GD_EV_FINISH:
		n = snprintf(r->log + r->len, room, "F(%.*s)", (int)ev->len, ev->data);
		break;
	case GD_EV_USAGE:
		n = snprintf(r->log + r->len, room, "U(%lld,%lld)", (long long)ev->prompt_tokens,
		             (long long)ev->completion_tokens);
		break;
	default:
		fail();
	}
	assert_true(n > 0 && (size_t)n < room);
	r->len += (size_t)n;
	return 0;
}

/* Feeds each chunk of <chunks> (NULL-terminated) and returns the event log. */
static void run(struct px_chunk *c, const char *const *chunks, struct rec *r)
{
	char err[256];

	memset(r, 0, sizeof(*r));
	for (size_t i = 0; chunks[i]; i++) {
		enum px_chunk_status st = px_chunk_feed(c, chunks[i], strlen(chunks[i]), on_event, r,
		                                        err, sizeof(err));
		if (st != PX_CHUNK_OK)
			fail_msg("chunk %zu: %s: %s", i, px_chunk_strerror(st), err);
	}
	assert_int_equal(px_chunk_end(c, on_event, r), PX_CHUNK_OK);
}

static void test_llamacpp_stream(void **state)
{
	static const char *const chunks[] = {
		"{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}],"
		"\"created\":1,\"id\":\"chatcmpl-x\",\"model\":\"qwen\",\"object\":\"chat.completion.chunk\"}",
		"{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\"Let me \\\"look\\\"\\n\"}}],\"id\":\"chatcmpl-x\"}",
		"{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"read_file\",\"arguments\":\"\"}}]}}]}",
		"{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"pa\"}}]}}]}",
		"{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"th\\\":\\\"a.c\\\"}\"}}]}}]}",
		"{\"choices\":[{\"finish_reason\":\"tool_calls\",\"index\":0,\"delta\":{}}],\"timings\":{\"predicted_n\":9}}",
		NULL,
	};
	struct px_chunk *c = px_chunk_new(4096);
	struct px_chunk_info info;
	struct rec r;

	(void)state;
	run(c, chunks, &r);
	assert_string_equal(r.log, "T(Let me \"look\"\n)B(0,call_a,read_file)A(0,call_a:{\"pa)"
	                           "A(0,call_a:th\":\"a.c\"})E(0,call_a)F(tool_calls)");
	px_chunk_info(c, &info);
	assert_int_equal(info.chunks, 6);
	assert_int_equal(info.tool_calls, 1);
	assert_true(info.finished);
	assert_string_equal(info.finish_reason, "tool_calls");
	assert_string_equal(info.id, "chatcmpl-x");
	assert_string_equal(info.model, "qwen");
	px_chunk_free(c);
}

static void test_vllm_interleaved_parallel_calls(void **state)
{
	static const char *const chunks[] = {
		"{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c0\",\"type\":\"function\",\"function\":{\"name\":\"grep\"}},"
		"{\"index\":1,\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"list_dir\",\"arguments\":\"{\"}}]},\"finish_reason\":null}]}",
		"{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}",
		"{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"}\"}}]},\"finish_reason\":null}]}",
		"{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":null}",
		"{\"choices\":[],\"usage\":{\"prompt_tokens\":120,\"completion_tokens\":33,\"total_tokens\":153}}",
		NULL,
	};
	struct px_chunk *c = px_chunk_new(4096);
	struct rec r;

	(void)state;
	run(c, chunks, &r);
	assert_string_equal(r.log, "B(0,c0,grep)B(1,c1,list_dir)A(1,c1:{)A(0,c0:{})A(1,c1:})"
	                           "E(0,c0)E(1,c1)F(tool_calls)U(120,33)");
	px_chunk_free(c);
}

static void test_ollama_index_reuse(void **state)
{
	static const char *const chunks[] = {
		"{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"call_x\",\"index\":0,\"type\":\"function\",\"function\":{\"name\":\"edit\",\"arguments\":\"{\\\"f\\\":1}\"}}]},\"finish_reason\":null}]}",
		"{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"call_y\",\"index\":0,\"type\":\"function\",\"function\":{\"name\":\"edit\",\"arguments\":\"{\\\"f\\\":2}\"}}]},\"finish_reason\":null}]}",
		"{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":\"tool_calls\"}]}",
		NULL,
	};
	struct px_chunk *c = px_chunk_new(4096);
	struct rec r;

	(void)state;
	run(c, chunks, &r);
	assert_string_equal(r.log, "B(0,call_x,edit)A(0,call_x:{\"f\":1})E(0,call_x)"
	                           "B(0,call_y,edit)A(0,call_y:{\"f\":2})E(0,call_y)F(tool_calls)");
	px_chunk_free(c);
}

static void test_reasoning_both_spellings(void **state)
{
	static const char *const chunks[] = {
		"{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hmm\"}}]}",
		"{\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"ok\"}}]}",
		/* vLLM in transition sends both with the same text: one event. */
		"{\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"so\",\"reasoning_content\":\"so\"}}]}",
		"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"A\\u00e9\"},\"finish_reason\":\"stop\"}]}",
		"{\"choices\":null,\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}",
		NULL,
	};
	struct px_chunk *c = px_chunk_new(4096);
	struct rec r;

	(void)state;
	run(c, chunks, &r);
	assert_string_equal(r.log, "R(hmm)R(ok)R(so)T(A\xc3\xa9)F(stop)U(3,4)");
	px_chunk_free(c);
}

static void test_other_choices_skipped(void **state)
{
	static const char *const chunks[] = {
		"{\"choices\":[{\"index\":1,\"delta\":{\"content\":\"no\"}},{\"delta\":{\"content\":\"yes\"},\"index\":0}]}",
		NULL,
	};
	struct px_chunk *c = px_chunk_new(4096);
	struct px_chunk_info info;
	struct rec r;

	(void)state;
	run(c, chunks, &r);
	assert_string_equal(r.log, "T(yes)");
	px_chunk_info(c, &info);
	assert_int_equal(info.skipped_choices, 1);
	px_chunk_free(c);
}

static void expect_error(struct px_chunk *c, const char *json, enum px_chunk_status want,
                         const char *needle)
{
	struct rec r;
	char err[256] = "";

	memset(&r, 0, sizeof(r));
	assert_int_equal(px_chunk_feed(c, json, strlen(json), on_event, &r, err, sizeof(err)), want);
	assert_int_equal(r.len, 0); /* nothing of a bad chunk is emitted */
	if (!strstr(err, needle))
		fail_msg("error '%s' lacks '%s'", err, needle);
}

static void test_errors(void **state)
{
	struct px_chunk *c = px_chunk_new(256);
	char big[400];

	(void)state;
	expect_error(c, "{\"error\":{\"message\":\"Context size has been exceeded.\",\"type\":\"server_error\",\"code\":500}}",
	             PX_CHUNK_EUPSTREAM, "Context size has been exceeded.");
	expect_error(c, "{\"error\":\"boom\"}", PX_CHUNK_EUPSTREAM, "boom");
	expect_error(c, "{\"object\":\"error\",\"message\":\"max_tokens is too large\",\"type\":\"BadRequestError\",\"code\":400}",
	             PX_CHUNK_EUPSTREAM, "max_tokens is too large");
	expect_error(c, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}", PX_CHUNK_EJSON, "not JSON");
	expect_error(c, "hello", PX_CHUNK_EJSON, "not JSON");
	expect_error(c, "[DONE]", PX_CHUNK_ESHAPE, "not a JSON object");
	expect_error(c, "[1,2]", PX_CHUNK_ESHAPE, "not a JSON object");
	expect_error(c, "\"str\"", PX_CHUNK_ESHAPE, "not a JSON object");
	expect_error(c, "{\"choices\":{\"index\":0}}", PX_CHUNK_ESHAPE, "choices is not an array");
	expect_error(c, "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"x\",\"arguments\":{\"a\":1}}}]}}]}",
	             PX_CHUNK_ESHAPE, "arguments are not a string");
	expect_error(c, "{\"choices\":[{\"index\":\"0\"}]}", PX_CHUNK_ESHAPE, "index");
	expect_error(c, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]} trailing", PX_CHUNK_EJSON, "not JSON");
	memset(big, ' ', sizeof(big));
	memcpy(big, "{}", 2);
	big[sizeof(big) - 1] = '\0';
	expect_error(c, big, PX_CHUNK_ETOOBIG, "exceeds the cap");
	/* After errors the converter still works. */
	expect_error(c, "{\"choices\":[]}", PX_CHUNK_OK, "");
	px_chunk_free(c);
	px_chunk_free(NULL);
}

static void test_nonstream_body(void **state)
{
	const char *body =
		"{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion\",\"model\":\"m\",\"choices\":[{\"index\":0,"
		"\"message\":{\"role\":\"assistant\",\"reasoning_content\":\"think\",\"content\":\"Doing it.\","
		"\"tool_calls\":[{\"id\":\"a\",\"type\":\"function\",\"function\":{\"name\":\"bash\",\"arguments\":\"{\\\"cmd\\\":\\\"ls\\\"}\"}},"
		"{\"id\":\"b\",\"type\":\"function\",\"function\":{\"name\":\"bash\",\"arguments\":\"{\\\"cmd\\\":\\\"pwd\\\"}\"}}]},"
		"\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":20,\"total_tokens\":70}}";
	struct px_chunk *c = px_chunk_new(4096);
	struct rec r;
	char err[256];

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(px_chunk_body(c, body, strlen(body), on_event, &r, err, sizeof(err)), PX_CHUNK_OK);
	assert_string_equal(r.log, "R(think)T(Doing it.)B(0,a,bash)A(0,a:{\"cmd\":\"ls\"})E(0,a)"
	                           "B(1,b,bash)A(1,b:{\"cmd\":\"pwd\"})E(1,b)F(tool_calls)U(50,20)");
	memset(&r, 0, sizeof(r));
	assert_int_equal(px_chunk_body(c, "{\"choices\":[]}", 14, on_event, &r, err, sizeof(err)),
	                 PX_CHUNK_ESHAPE);
	px_chunk_free(c);
}

struct counts {
	int begin, end, args, open, max_open;
	char first_end_before[32]; /* the BEGIN that first followed an END */
	int saw_end;
};

static int count_event(const struct gd_event *ev, void *ctx)
{
	struct counts *n = ctx;

	if (ev->type == GD_EV_TOOL_BEGIN) {
		n->begin++;
		if (++n->open > n->max_open)
			n->max_open = n->open;
		if (n->saw_end == 1) {
			snprintf(n->first_end_before, sizeof(n->first_end_before), "%.*s", (int)ev->id_len, ev->id);
			n->saw_end = 2;
		}
	} else if (ev->type == GD_EV_TOOL_END) {
		n->end++;
		n->open--;
		if (n->saw_end == 0)
			n->saw_end = 1;
	} else if (ev->type == GD_EV_TOOL_ARGS) {
		n->args++;
	}
	return 0;
}

static void test_many_calls(void **state)
{
	struct px_chunk *c = px_chunk_new(1 << 20);
	struct px_chunk_info info;
	struct counts n;
	char err[256] = "";
	char *json = malloc(1 << 20);
	size_t len;
	int i;

	(void)state;
	assert_non_null(json);
	/* 200 calls in one answer, each opened by its own delta: at most
	 * PX_CHUNK_MAX_OPEN stay open, the oldest is ended to make room. */
	memset(&n, 0, sizeof(n));
	for (i = 0; i < 200; i++) {
		len = (size_t)snprintf(json, 1 << 20,
		         "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":%d,\"id\":\"c%d\",\"function\":{\"name\":\"t\",\"arguments\":\"{}\"}}]}}]}",
		         i, i);
		assert_int_equal(px_chunk_feed(c, json, len, count_event, &n, err, sizeof(err)), PX_CHUNK_OK);
	}
	assert_int_equal(n.begin, 200);
	assert_int_equal(n.end, 200 - PX_CHUNK_MAX_OPEN);
	assert_int_equal(n.max_open, PX_CHUNK_MAX_OPEN);
	assert_string_equal(n.first_end_before, "c64"); /* c0 ended just before c64 began */
	assert_int_equal(px_chunk_end(c, count_event, &n), PX_CHUNK_OK);
	assert_int_equal(n.end, 200);
	assert_int_equal(n.open, 0);
	px_chunk_info(c, &info);
	assert_int_equal(info.tool_calls, 200);

	/* One stream chunk with more tool-call deltas than PX_CHUNK_MAX_DELTAS. */
	len = (size_t)snprintf(json, 1 << 20, "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[");
	for (i = 0; i <= PX_CHUNK_MAX_DELTAS; i++)
		len += (size_t)snprintf(json + len, (1 << 20) - len, "%s{\"index\":%d,\"function\":{\"name\":\"t\"}}",
		                        i ? "," : "", i);
	len += (size_t)snprintf(json + len, (1 << 20) - len, "]}}]}");
	memset(&n, 0, sizeof(n));
	assert_int_equal(px_chunk_feed(c, json, len, count_event, &n, err, sizeof(err)), PX_CHUNK_ETOOBIG);
	assert_non_null(strstr(err, "tool-call deltas"));
	assert_int_equal(n.begin, 0);

	/* A non-stream body with 300 calls is fine. */
	len = (size_t)snprintf(json, 1 << 20, "{\"choices\":[{\"index\":0,\"finish_reason\":\"tool_calls\",\"message\":{\"tool_calls\":[");
	for (i = 0; i < 300; i++)
		len += (size_t)snprintf(json + len, (1 << 20) - len,
		                        "%s{\"id\":\"b%d\",\"type\":\"function\",\"function\":{\"name\":\"t\",\"arguments\":\"{\\\"i\\\":%d}\"}}",
		                        i ? "," : "", i, i);
	len += (size_t)snprintf(json + len, (1 << 20) - len, "]}}]}");
	memset(&n, 0, sizeof(n));
	assert_int_equal(px_chunk_body(c, json, len, count_event, &n, err, sizeof(err)), PX_CHUNK_OK);
	assert_int_equal(n.begin, 300);
	assert_int_equal(n.end, 300);
	assert_int_equal(n.args, 300);
	assert_int_equal(n.max_open, 1);
	free(json);
	px_chunk_free(c);
}

static long vm_size_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmSize:", 7) == 0)
			v = strtol(line + 7, NULL, 10);
	fclose(f);
	return v;
}

struct big {
	size_t text, args;
	int events;
};

static int on_big(const struct gd_event *ev, void *ctx)
{
	struct big *b = ctx;

	b->events++;
	if (ev->type == GD_EV_TEXT)
		b->text += ev->len;
	if (ev->type == GD_EV_TOOL_ARGS)
		b->args += ev->len;
	return 0;
}

/* Issue 11 defect 5: a converter costs what its chunks need. 16 converters
 * with a 64 MiB cap used to reserve 4 x 64 MiB each (arena and scratch);
 * now about 60 KiB. A chunk with 600 KB of escaped tool arguments (yajl's
 * buffers spill past the arena, the scratch grows) converts whole, and
 * small chunks and a non-stream body with many calls work after it (what
 * grew is released). */
static void test_buffers_follow_chunks(void **state)
{
	struct px_chunk *c[16];
	long before = vm_size_kib();
	struct big b;
	char err[256];
	const size_t n_esc = 200000; /* \" : 2 bytes of JSON, 1 of arguments */

	(void)state;
	for (int i = 0; i < 16; i++) {
		c[i] = px_chunk_new((size_t)64 << 20);
		assert_non_null(c[i]);
	}
	if (before > 0 && vm_size_kib() - before > 16 * 1024)
		fail_msg("16 converters with a 64 MiB cap grew the address space by %ld KiB",
		         vm_size_kib() - before);
	char *json = malloc(3 * n_esc + 256);
	assert_non_null(json);
	int n = sprintf(json, "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
	                      "\"id\":\"c1\",\"function\":{\"name\":\"t\",\"arguments\":\"");
	size_t len = (size_t)n;
	for (size_t i = 0; i < n_esc; i++) {
		memcpy(json + len, "\\\"x", 3);
		len += 3;
	}
	len += (size_t)sprintf(json + len, "\"}}]}}]}");
	for (int round = 0; round < 3; round++) {
		memset(&b, 0, sizeof(b));
		assert_int_equal(px_chunk_feed(c[0], json, len, on_big, &b, err, sizeof(err)), PX_CHUNK_OK);
		assert_int_equal(b.args, 2 * n_esc);
		const char *small = "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"}}]}";
		memset(&b, 0, sizeof(b));
		assert_int_equal(px_chunk_feed(c[0], small, strlen(small), on_big, &b, err, sizeof(err)),
		                 PX_CHUNK_OK);
		assert_int_equal(b.text, 5);
	}
	/* a body with 1000 calls, then a stream chunk with deltas again */
	len = (size_t)sprintf(json, "{\"choices\":[{\"index\":0,\"message\":{\"tool_calls\":[");
	for (int i = 0; i < 1000; i++)
		len += (size_t)sprintf(json + len, "%s{\"id\":\"b%d\",\"function\":{\"name\":\"t\","
		                                   "\"arguments\":\"{}\"}}", i ? "," : "", i);
	len += (size_t)sprintf(json + len, "]}}]}");
	memset(&b, 0, sizeof(b));
	assert_int_equal(px_chunk_body(c[0], json, len, on_big, &b, err, sizeof(err)), PX_CHUNK_OK);
	assert_int_equal(b.args, 2000);
	px_chunk_reset(c[0]);
	len = (size_t)sprintf(json, "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":["
	                            "{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"t\",\"arguments\":\"{}\"}},"
	                            "{\"index\":1,\"id\":\"b\",\"function\":{\"name\":\"u\",\"arguments\":\"[]\"}}]}}]}");
	memset(&b, 0, sizeof(b));
	assert_int_equal(px_chunk_feed(c[0], json, len, on_big, &b, err, sizeof(err)), PX_CHUNK_OK);
	assert_int_equal(b.args, 4);
	free(json);
	for (int i = 0; i < 16; i++)
		px_chunk_free(c[i]);
}

/* Issue 11 defect 7: what the converter reports (the answer's id and model,
 * an upstream's error message) is cut on a character boundary, never inside
 * one: it ends up in JSON loopwarden writes. */
static void test_reported_text_is_whole_characters(void **state)
{
	struct px_chunk *c = px_chunk_new(1 << 16);
	struct px_chunk_info info;
	char json[2048], err[256];
	char text[302];
	int n;

	(void)state;
	/* "xy" then "é" (2 bytes): a cut at an odd byte count splits one; the
	 * id and model fields keep 127 bytes, the error 255 with its 16-byte
	 * prefix */
	text[0] = 'x';
	text[1] = 'y';
	for (int i = 2; i < 300; i += 2) {
		text[i] = '\xc3';
		text[i + 1] = '\xa9';
	}
	text[300] = '\0';
	n = snprintf(json, sizeof(json), "{\"id\":\"%s\",\"model\":\"%s\",\"choices\":[]}", text, text);
	assert_int_equal(px_chunk_feed(c, json, (size_t)n, NULL, NULL, err, sizeof(err)), PX_CHUNK_OK);
	px_chunk_info(c, &info);
	assert_true(gd_utf8_valid(info.id, strlen(info.id)));
	assert_true(strlen(info.id) >= sizeof(info.id) - 2);
	assert_true(gd_utf8_valid(info.model, strlen(info.model)));
	n = snprintf(json, sizeof(json), "{\"error\":{\"message\":\"%s\"}}", text);
	assert_int_equal(px_chunk_feed(c, json, (size_t)n, NULL, NULL, err, sizeof(err)), PX_CHUNK_EUPSTREAM);
	assert_true(gd_utf8_valid(err, strlen(err)));
	assert_true(strlen(err) >= sizeof(err) - 2);
	px_chunk_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_llamacpp_stream),
		cmocka_unit_test(test_vllm_interleaved_parallel_calls),
		cmocka_unit_test(test_ollama_index_reuse),
		cmocka_unit_test(test_reasoning_both_spellings),
		cmocka_unit_test(test_other_choices_skipped),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_nonstream_body),
		cmocka_unit_test(test_many_calls),
		cmocka_unit_test(test_buffers_follow_chunks),
		cmocka_unit_test(test_reported_text_is_whole_characters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
