/* The request reader (proxy/wire/request.h): every field it keeps, the
 * nesting limit at and one past its value (issue 11 defect 1: a body nested
 * 300 000 deep crashed the proxy), duplicate keys (defect 6: a second
 * "messages" let the guards read one and the upstream another), type errors
 * naming the field and byte, unicode escapes, invalid UTF-8, content parts,
 * every sampling field, the count caps. Bodies are handed over without a
 * trailing NUL (exact-size copies) so that a read past the end shows under
 * ASan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guards/pipeline.h"
#include "guards/config.h"
#include "guards/history.h"
#include "guards/policy.h"
#include "proxy/wire/request.h"

/* ---- helpers ------------------------------------------------------------ */

/* Reads <len> bytes of <s> from an exact-size copy. */
static enum px_request_status read_n(const char *s, size_t len, struct px_request **q,
                                     char *err, size_t errlen)
{
	char *copy = malloc(len ? len : 1);
	enum px_request_status st;

	assert_non_null(copy);
	memcpy(copy, s, len);
	st = px_request_read(copy, len, q, err, errlen);
	free(copy);
	return st;
}

/* A request that must read; caller frees. */
static struct px_request *ok(const char *s)
{
	struct px_request *q = NULL;
	char err[256];

	/* The result must not point into the body: the copy is freed. */
	if (read_n(s, strlen(s), &q, err, sizeof(err)) != PX_REQUEST_OK)
		fail_msg("px_request_read: %s\nbody: %.300s", err, s);
	assert_non_null(q);
	return q;
}

/* A request that must be refused with <want>, the message holding <needle>
 * and a byte position. */
static void bad_n(const char *s, size_t len, enum px_request_status want, const char *needle)
{
	struct px_request *q = (struct px_request *)1;
	char err[256];
	enum px_request_status st = read_n(s, len, &q, err, sizeof(err));

	if (st != want || !strstr(err, needle))
		fail_msg("body %.200s: got %d '%s', want %d '%s'", s, st, err, want, needle);
	assert_null(q);
	if (!strstr(err, "(at byte "))
		fail_msg("no position in '%s'", err);
}

static void bad(const char *s, enum px_request_status want, const char *needle)
{
	bad_n(s, strlen(s), want, needle);
}

static bool str_is(const struct gd_str *s, const char *want, size_t len)
{
	return s->ptr && s->len == len && memcmp(s->ptr, want, len) == 0 && s->ptr[len] == '\0';
}

#define STR_IS(s, lit) str_is((s), (lit), sizeof(lit) - 1)

/* A growing string built with printf-style pieces. */
struct sb {
	char *s;
	size_t len, cap;
};

__attribute__((format(printf, 2, 3)))
static void sb_add(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	if (b->len + (size_t)n + 1 > b->cap) {
		b->cap = (b->len + (size_t)n + 1) * 2;
		b->s = realloc(b->s, b->cap);
		assert_non_null(b->s);
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void sb_rep(struct sb *b, const char *piece, size_t times)
{
	for (size_t i = 0; i < times; i++)
		sb_add(b, "%s", piece);
}

/* ---- tests -------------------------------------------------------------- */

static void test_minimal(void **state)
{
	(void)state;
	struct px_request *q = ok("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
	assert_int_equal(q->n_msgs, 1);
	assert_int_equal(q->msgs[0].role, GD_ROLE_USER);
	assert_true(STR_IS(&q->msgs[0].role_name, "user"));
	assert_true(STR_IS(&q->msgs[0].content, "hi"));
	assert_null(q->msgs[0].reasoning.ptr);
	assert_int_equal(q->msgs[0].n_calls, 0);
	assert_null(q->model.ptr);
	assert_false(q->stream);
	assert_false(q->include_usage);
	assert_int_equal(q->n_tools, 0);
	assert_false(q->sampling.temperature.set);
	px_request_free(q);
	px_request_free(NULL);

	/* An empty list reads: whether that is acceptable is the caller's call. */
	q = ok(" {\"messages\" : [ ] } \n");
	assert_int_equal(q->n_msgs, 0);
	px_request_free(q);
}

static void test_all_fields(void **state)
{
	(void)state;
	const char *body =
		"{\"model\":\"qwen3\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
		"\"response_format\":{\"type\":\"json_object\",\"deep\":[[[{\"a\":[1,2,{\"b\":null}]}]]]},"
		"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"read_file\","
		"\"description\":\"Reads a file\",\"parameters\":{\"type\":\"object\","
		"\"properties\":{\"path\":{\"type\":\"string\"}}},\"strict\":true}},"
		"{\"type\":\"web_search\"}],"
		"\"messages\":["
		"{\"role\":\"system\",\"content\":\"You are an agent.\"},"
		"{\"role\":\"user\",\"name\":\"ann\",\"content\":[{\"type\":\"text\",\"text\":\"Fix \"},"
		"{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:x\"}},{\"type\":\"text\",\"text\":\"it\"}]},"
		"{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"think\","
		"\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"read_file\","
		"\"arguments\":\"{\\\"path\\\":\\\"a\\\"}\"}},"
		"{\"id\":\"call_2\",\"function\":{\"name\":\"ls\",\"arguments\":{ \"path\" : [\".\", 1] }}}]},"
		"{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"hello\"},"
		"{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":\"a b\"},"
		"{\"role\":\"assistant\",\"reasoning\":\"alt\",\"content\":\"done\"},"
		"{\"role\":\"developer\",\"content\":\"d\"},{\"role\":\"critic\",\"content\":\"c\"}]}";
	struct px_request *q = ok(body);

	assert_true(STR_IS(&q->model, "qwen3"));
	assert_true(q->stream);
	assert_true(q->include_usage);
	assert_int_equal(q->n_tools, 2);
	assert_true(STR_IS(&q->tools[0].type, "function"));
	assert_true(STR_IS(&q->tools[0].name, "read_file"));
	assert_true(STR_IS(&q->tools[0].description, "Reads a file"));
	assert_true(STR_IS(&q->tools[0].parameters,
	                   "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"}}}"));
	assert_true(STR_IS(&q->tools[1].type, "web_search"));
	assert_null(q->tools[1].name.ptr);

	assert_int_equal(q->n_msgs, 8);
	assert_int_equal(q->msgs[0].role, GD_ROLE_SYSTEM);
	assert_int_equal(q->msgs[1].role, GD_ROLE_USER);
	assert_true(STR_IS(&q->msgs[1].name, "ann"));
	assert_true(STR_IS(&q->msgs[1].content, "Fix it"));
	const struct gd_conv_msg *a = &q->msgs[2];
	assert_int_equal(a->role, GD_ROLE_ASSISTANT);
	assert_null(a->content.ptr);
	assert_true(STR_IS(&a->reasoning, "think"));
	assert_int_equal(a->n_calls, 2);
	assert_true(STR_IS(&a->calls[0].id, "call_1"));
	assert_true(STR_IS(&a->calls[0].type, "function"));
	assert_true(STR_IS(&a->calls[0].name, "read_file"));
	assert_true(STR_IS(&a->calls[0].args, "{\"path\":\"a\"}"));
	assert_false(a->calls[0].args_json);
	assert_true(STR_IS(&a->calls[1].name, "ls"));
	assert_null(a->calls[1].type.ptr);
	/* An object's arguments are kept as written. */
	assert_true(STR_IS(&a->calls[1].args, "{ \"path\" : [\".\", 1] }"));
	assert_true(a->calls[1].args_json);
	assert_int_equal(q->msgs[3].role, GD_ROLE_TOOL);
	assert_true(STR_IS(&q->msgs[3].tool_call_id, "call_1"));
	assert_true(STR_IS(&q->msgs[3].content, "hello"));
	assert_true(STR_IS(&q->msgs[5].reasoning, "alt"));
	assert_int_equal(q->msgs[5].n_calls, 0);
	assert_null(q->msgs[5].calls);
	assert_int_equal(q->msgs[6].role, GD_ROLE_DEVELOPER);
	assert_int_equal(q->msgs[7].role, GD_ROLE_OTHER);
	assert_true(STR_IS(&q->msgs[7].role_name, "critic"));
	px_request_free(q);

	/* reasoning_content wins over reasoning, in either order. */
	q = ok("{\"messages\":[{\"role\":\"assistant\",\"reasoning_content\":\"a\",\"reasoning\":\"b\"},"
	       "{\"role\":\"assistant\",\"reasoning\":\"b\",\"reasoning_content\":\"a\"}]}");
	assert_true(STR_IS(&q->msgs[0].reasoning, "a"));
	assert_true(STR_IS(&q->msgs[1].reasoning, "a"));
	px_request_free(q);
}

/* Issue 11 defect 1: nesting is refused while parsing, at the limit's
 * first level past it, with the byte where it happened. */
static void test_depth_limit(void **state)
{
	(void)state;
	static const char head[] = "{\"messages\":[],\"x\":";
	struct sb b = {0};
	struct px_request *q;
	char needle[96];

	/* The request object is level 1: 63 more arrays make 64. */
	sb_add(&b, "%s", head);
	sb_rep(&b, "[", PX_REQUEST_MAX_DEPTH - 1);
	sb_rep(&b, "]", PX_REQUEST_MAX_DEPTH - 1);
	sb_add(&b, "}");
	q = ok(b.s);
	px_request_free(q);

	/* One more: refused at the 64th '[' (the byte after it). */
	b.len = 0;
	sb_add(&b, "%s", head);
	sb_rep(&b, "[", PX_REQUEST_MAX_DEPTH);
	sb_rep(&b, "]", PX_REQUEST_MAX_DEPTH);
	sb_add(&b, "}");
	snprintf(needle, sizeof(needle), "request is nested deeper than %d levels (at byte %zu)",
	         PX_REQUEST_MAX_DEPTH, sizeof(head) - 1 + PX_REQUEST_MAX_DEPTH);
	bad(b.s, PX_REQUEST_ELIMIT, needle);

	/* The same limit inside the fields we read: the function object is
	 * level 6 (request, messages, [0], tool_calls, [0], function). */
	b.len = 0;
	sb_add(&b, "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":"
	       "{\"name\":\"f\",\"arguments\":");
	sb_rep(&b, "[", PX_REQUEST_MAX_DEPTH - 6);
	sb_rep(&b, "]", PX_REQUEST_MAX_DEPTH - 6);
	sb_add(&b, "}}]}]}");
	q = ok(b.s);
	assert_true(q->msgs[0].calls[0].args_json);
	assert_int_equal(q->msgs[0].calls[0].args.len, 2 * (PX_REQUEST_MAX_DEPTH - 6));
	px_request_free(q);
	b.len = 0;
	sb_add(&b, "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":"
	       "{\"name\":\"f\",\"arguments\":");
	sb_rep(&b, "[", PX_REQUEST_MAX_DEPTH - 5);
	sb_rep(&b, "]", PX_REQUEST_MAX_DEPTH - 5);
	sb_add(&b, "}}]}]}");
	bad(b.s, PX_REQUEST_ELIMIT, "nested deeper than");

	/* The body of the crash: 300 000 levels (objects and arrays), never
	 * closed; refused at the limit, no recursion anywhere. */
	b.len = 0;
	sb_add(&b, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"x\":");
	for (int i = 0; i < 150000; i++)
		sb_add(&b, "[{\"k\":");
	bad(b.s, PX_REQUEST_ELIMIT, "nested deeper than 64 levels");
	free(b.s);
}

/* Issue 11 defect 6: a key given twice is refused where it would be
 * ambiguous, so the guards and the upstream always read the same thing. */
static void test_duplicate_keys(void **state)
{
	(void)state;
	struct px_request *q;

	bad("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"model\":\"m\","
	    "\"messages\":[{\"role\":\"user\",\"content\":\"b\"}]}",
	    PX_REQUEST_ESHAPE, "duplicate key 'messages' in the request");
	/* An escape spells the same key. */
	bad("{\"model\":\"a\",\"\\u006dodel\":\"b\",\"messages\":[]}", PX_REQUEST_ESHAPE,
	    "duplicate key 'model' in the request");
	/* Keys the reader skips are still the request's: no two alike. */
	bad("{\"messages\":[],\"response_format\":{},\"response_format\":1}", PX_REQUEST_ESHAPE,
	    "duplicate key 'response_format' in the request");
	bad("{\"messages\":[],\"\\u00e9\":1,\"\xc3\xa9\":2}", PX_REQUEST_ESHAPE,
	    "duplicate key '\xc3\xa9' in the request");
	bad("{\"messages\":[],\"stream\":true,\"stream\":false}", PX_REQUEST_ESHAPE,
	    "duplicate key 'stream' in the request");
	bad("{\"messages\":[{\"role\":\"user\",\"role\":\"system\"}]}", PX_REQUEST_ESHAPE,
	    "duplicate key 'role' in messages[0]");
	bad("{\"messages\":[{\"role\":\"user\"},{\"role\":\"tool\",\"content\":\"a\",\"content\":[]}]}",
	    PX_REQUEST_ESHAPE, "duplicate key 'content' in messages[1]");
	bad("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[],\"tool_calls\":null}]}",
	    PX_REQUEST_ESHAPE, "duplicate key 'tool_calls' in messages[0]");
	bad("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"a\"},"
	    "\"function\":{\"name\":\"b\"}}]}]}",
	    PX_REQUEST_ESHAPE, "duplicate key 'function' in messages[0].tool_calls[0]");
	bad("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"a\","
	    "\"arguments\":\"{}\",\"name\":\"b\"}}]}]}",
	    PX_REQUEST_ESHAPE, "duplicate key 'name' in messages[0].tool_calls[0].function");
	bad("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"a\","
	    "\"arguments\":\"{}\",\"arguments\":{}}}]}]}",
	    PX_REQUEST_ESHAPE, "duplicate key 'arguments' in messages[0].tool_calls[0].function");
	bad("{\"messages\":[],\"stream_options\":{\"include_usage\":true,\"include_usage\":false}}",
	    PX_REQUEST_ESHAPE, "duplicate key 'include_usage' in stream_options");
	bad("{\"messages\":[],\"tools\":[{\"function\":{\"name\":\"a\",\"parameters\":{},"
	    "\"parameters\":{}}}]}",
	    PX_REQUEST_ESHAPE, "duplicate key 'parameters' in tools[0].function");

	/* Not duplicates: the same key in different objects, repeated keys in
	 * values nobody reads, reasoning beside reasoning_content. */
	q = ok("{\"messages\":[{\"role\":\"user\",\"content\":\"a\",\"x\":1,\"x\":2},"
	       "{\"role\":\"user\",\"content\":\"b\",\"reasoning\":\"r\",\"reasoning_content\":\"s\"}],"
	       "\"metadata\":{\"k\":1,\"k\":2},\"tools\":[{\"function\":{\"name\":\"f\","
	       "\"parameters\":{\"a\":1,\"a\":2}}}]}");
	assert_int_equal(q->n_msgs, 2);
	assert_true(STR_IS(&q->tools[0].parameters, "{\"a\":1,\"a\":2}"));
	px_request_free(q);
}

static void test_type_errors(void **state)
{
	(void)state;
	static const struct {
		const char *body;
		enum px_request_status st;
		const char *needle;
	} cases[] = {
		{ "[1,2]", PX_REQUEST_ESHAPE, "request body must be a JSON object" },
		{ "\"x\"", PX_REQUEST_ESHAPE, "request body must be a JSON object" },
		{ "{\"model\":\"x\"}", PX_REQUEST_ESHAPE, "request body has no \"messages\" array" },
		{ "{\"messages\":{}}", PX_REQUEST_ESHAPE, "messages must be an array" },
		{ "{\"messages\":null}", PX_REQUEST_ESHAPE, "messages must be an array" },
		{ "{\"messages\":[{\"role\":\"user\"},2]}", PX_REQUEST_ESHAPE, "messages[1] must be an object" },
		{ "{\"messages\":[{\"content\":\"a\"}]}", PX_REQUEST_ESHAPE, "messages[0] has no role" },
		{ "{\"messages\":[{\"role\":1}]}", PX_REQUEST_ESHAPE, "messages[0].role must be a string" },
		{ "{\"messages\":[{\"role\":null}]}", PX_REQUEST_ESHAPE, "messages[0].role must be a string" },
		{ "{\"messages\":[{\"role\":\"user\",\"content\":7}]}", PX_REQUEST_ESHAPE,
		  "messages[0].content must be a string, an array of content parts or null" },
		{ "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},\"b\"]}]}",
		  PX_REQUEST_ESHAPE, "messages[0].content[1] must be an object" },
		{ "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":5}]}]}",
		  PX_REQUEST_ESHAPE, "messages[0].content[0].text must be a string or null" },
		{ "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":[],\"text\":\"a\"}]}]}",
		  PX_REQUEST_ESHAPE, "messages[0].content[0].type must be a string or null" },
		{ "{\"messages\":[{\"role\":\"assistant\",\"reasoning_content\":{}}]}", PX_REQUEST_ESHAPE,
		  "messages[0].reasoning_content must be a string or null" },
		{ "{\"messages\":[{\"role\":\"tool\",\"tool_call_id\":3}]}", PX_REQUEST_ESHAPE,
		  "messages[0].tool_call_id must be a string or null" },
		{ "{\"messages\":[{\"role\":\"user\",\"name\":true}]}", PX_REQUEST_ESHAPE,
		  "messages[0].name must be a string or null" },
		{ "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":{}}]}", PX_REQUEST_ESHAPE,
		  "messages[0].tool_calls must be an array or null" },
		{ "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[1]}]}", PX_REQUEST_ESHAPE,
		  "messages[0].tool_calls[0] must be an object" },
		{ "{\"messages\":[{\"role\":\"user\"},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\"}]}]}",
		  PX_REQUEST_ESHAPE, "messages[1].tool_calls[0] has no function" },
		{ "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":\"f\"}]}]}",
		  PX_REQUEST_ESHAPE, "messages[0].tool_calls[0].function must be an object" },
		{ "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{}}]}]}",
		  PX_REQUEST_ESHAPE, "messages[0].tool_calls[0].function has no name" },
		{ "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":2}}]}]}",
		  PX_REQUEST_ESHAPE, "messages[0].tool_calls[0].function.name must be a string" },
		{ "{\"messages\":[{\"role\":\"user\"},{\"role\":\"user\"},{\"role\":\"user\"},"
		  "{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":12}}]}]}",
		  PX_REQUEST_ESHAPE, "messages[3].tool_calls[0].function.arguments must be a string" },
		{ "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":5,\"function\":{\"name\":\"f\"}}]}]}",
		  PX_REQUEST_ESHAPE, "messages[0].tool_calls[0].id must be a string or null" },
		{ "{\"messages\":[],\"model\":5}", PX_REQUEST_ESHAPE, "model must be a string" },
		{ "{\"messages\":[],\"stream\":\"yes\"}", PX_REQUEST_ESHAPE, "stream must be a boolean" },
		{ "{\"messages\":[],\"stream\":1}", PX_REQUEST_ESHAPE, "stream must be a boolean" },
		{ "{\"messages\":[],\"stream_options\":[]}", PX_REQUEST_ESHAPE,
		  "stream_options must be an object or null" },
		{ "{\"messages\":[],\"stream_options\":{\"include_usage\":\"y\"}}", PX_REQUEST_ESHAPE,
		  "stream_options.include_usage must be a boolean" },
		{ "{\"messages\":[],\"temperature\":\"0.7\"}", PX_REQUEST_ESHAPE, "temperature must be a number" },
		{ "{\"messages\":[],\"top_p\":true}", PX_REQUEST_ESHAPE, "top_p must be a number" },
		{ "{\"messages\":[],\"min_p\":[]}", PX_REQUEST_ESHAPE, "min_p must be a number" },
		{ "{\"messages\":[],\"temperature\":1e999}", PX_REQUEST_ESHAPE, "temperature must be a finite number" },
		{ "{\"messages\":[],\"frequency_penalty\":{}}", PX_REQUEST_ESHAPE, "frequency_penalty must be a number" },
		{ "{\"messages\":[],\"presence_penalty\":\"1\"}", PX_REQUEST_ESHAPE, "presence_penalty must be a number" },
		{ "{\"messages\":[],\"repeat_penalty\":false}", PX_REQUEST_ESHAPE, "repeat_penalty must be a number" },
		{ "{\"messages\":[],\"top_k\":1.5}", PX_REQUEST_ESHAPE, "top_k must be an integer" },
		{ "{\"messages\":[],\"max_tokens\":\"10\"}", PX_REQUEST_ESHAPE, "max_tokens must be an integer" },
		{ "{\"messages\":[],\"max_completion_tokens\":1e30}", PX_REQUEST_ESHAPE,
		  "max_completion_tokens must be an integer" },
		{ "{\"messages\":[],\"seed\":99999999999999999999}", PX_REQUEST_ESHAPE,
		  "seed must be an integer within 64 bits" },
		{ "{\"messages\":[],\"stop\":5}", PX_REQUEST_ESHAPE,
		  "stop must be a string, an array of strings or null" },
		{ "{\"messages\":[],\"stop\":[\"a\",1]}", PX_REQUEST_ESHAPE, "stop[1] must be a string" },
		{ "{\"messages\":[],\"tools\":{}}", PX_REQUEST_ESHAPE, "tools must be an array or null" },
		{ "{\"messages\":[],\"tools\":[1]}", PX_REQUEST_ESHAPE, "tools[0] must be an object" },
		{ "{\"messages\":[],\"tools\":[{\"function\":[]}]}", PX_REQUEST_ESHAPE, "tools[0].function must be an object" },
		{ "{\"messages\":[],\"tools\":[{\"type\":\"function\",\"function\":{\"description\":\"d\"}}]}",
		  PX_REQUEST_ESHAPE, "tools[0].function has no name" },
		{ "{\"messages\":[],\"tools\":[{\"function\":{\"name\":\"f\",\"parameters\":[]}}]}",
		  PX_REQUEST_ESHAPE, "tools[0].function.parameters must be an object or null" },
		{ "{\"messages\":[],\"tools\":[{\"function\":{\"name\":\"f\",\"description\":1}}]}",
		  PX_REQUEST_ESHAPE, "tools[0].function.description must be a string or null" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		bad(cases[i].body, cases[i].st, cases[i].needle);
	/* The position is the byte after the offending value. */
	bad("{\"messages\":[],\"stream\":\"yes\"}", PX_REQUEST_ESHAPE, "stream must be a boolean (at byte 29)");
}

static void test_unicode(void **state)
{
	(void)state;
	struct px_request *q = ok(
		"{\"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9 \\ud83d\\ude00 \\u4e2d\"},"
		"{\"role\":\"user\",\"content\":\"a\\u0000b\"},"
		"{\"role\":\"user\",\"content\":\"lone \\ud800 high\"},"
		"{\"role\":\"user\",\"content\":\"lone \\udc00 low\"},"
		"{\"role\":\"user\",\"content\":\"\\ud800\\u0041 not a pair\"},"
		"{\"role\":\"user\",\"content\":\"\\ud800\"},"
		"{\"role\":\"user\",\"content\":\"q\\\"b\\\\s\\/n\\nt\\tr\\rb\\bf\\f\"},"
		"{\"role\":\"user\",\"content\":\"raw \xe2\x82\xac \xf0\x9f\x98\x80\"},"
		"{\"role\":\"user\",\"content\":\"\\\\\\\"\"},"
		"{\"role\":\"user\",\"content\":\"\\uDBFF\\uDFFF\"}]}");

	assert_true(STR_IS(&q->msgs[0].content, "caf\xc3\xa9 \xf0\x9f\x98\x80 \xe4\xb8\xad"));
	/* \u0000 is a byte of the value: lengths, not C strings. */
	assert_true(str_is(&q->msgs[1].content, "a\0b", 3));
	/* Lone surrogates become U+FFFD (yajl alone would write '?' or CESU). */
	assert_true(STR_IS(&q->msgs[2].content, "lone \xef\xbf\xbd high"));
	assert_true(STR_IS(&q->msgs[3].content, "lone \xef\xbf\xbd low"));
	assert_true(STR_IS(&q->msgs[4].content, "\xef\xbf\xbd" "A not a pair"));
	assert_true(STR_IS(&q->msgs[5].content, "\xef\xbf\xbd"));
	assert_true(STR_IS(&q->msgs[6].content, "q\"b\\s/n\nt\tr\rb\bf\f"));
	assert_true(STR_IS(&q->msgs[7].content, "raw \xe2\x82\xac \xf0\x9f\x98\x80"));
	assert_true(STR_IS(&q->msgs[8].content, "\\\""));
	assert_true(STR_IS(&q->msgs[9].content, "\xf4\x8f\xbf\xbf"));
	px_request_free(q);

	/* Escaped keys are the keys they spell. */
	q = ok("{\"\\u006de\\u0073sages\":[{\"r\\u006fle\":\"\\u0075ser\"}]}");
	assert_int_equal(q->n_msgs, 1);
	assert_int_equal(q->msgs[0].role, GD_ROLE_USER);
	px_request_free(q);
}

static void test_invalid_json_and_utf8(void **state)
{
	(void)state;
	/* Raw bytes that are not UTF-8, inside a string and out. */
	bad("{\"messages\":[{\"role\":\"user\",\"content\":\"a\xff\"}]}", PX_REQUEST_EJSON,
	    "not valid UTF-8 (at byte 40)");
	bad("{\"messages\":[{\"role\":\"user\",\"content\":\"\xc0\xaf\"}]}", PX_REQUEST_EJSON,
	    "not valid UTF-8"); /* overlong '/' */
	bad("{\"messages\":[{\"role\":\"user\",\"content\":\"\xed\xa0\x80\"}]}", PX_REQUEST_EJSON,
	    "not valid UTF-8"); /* an encoded surrogate */
	bad("{\"messages\":[{\"role\":\"user\",\"content\":\"\xf4\x90\x80\x80\"}]}", PX_REQUEST_EJSON,
	    "not valid UTF-8"); /* past U+10FFFF */
	bad("{\"messages\":[],\"x\":\"\xe2\x82", PX_REQUEST_EJSON, "not valid UTF-8"); /* cut short */
	bad("{\"messages\":[],\"\xfe\":1}", PX_REQUEST_EJSON, "not valid UTF-8");
	/* Not JSON. */
	bad("", PX_REQUEST_EJSON, "not valid JSON (at byte 0)");
	bad("{\"messages\":[}", PX_REQUEST_EJSON, "not valid JSON (at byte 14)");
	bad("{\"messages\":[]", PX_REQUEST_EJSON, "not valid JSON (at byte 14)");
	bad("{\"messages\":[]} x", PX_REQUEST_EJSON, "not valid JSON");
	bad("{\"messages\":[]}{}", PX_REQUEST_EJSON, "not valid JSON");
	bad("{\"messages\":[],\"s\":\"a\nb\"}", PX_REQUEST_EJSON, "not valid JSON");
	bad("{\"messages\":[],\"s\":\"\\x\"}", PX_REQUEST_EJSON, "not valid JSON");
	bad("{\"messages\":[],\"s\":\"\\u12\"}", PX_REQUEST_EJSON, "not valid JSON");
	bad("{\"messages\":[], /* c */ \"s\":1}", PX_REQUEST_EJSON, "not valid JSON");
	bad("{\"messages\":[],\"n\":01}", PX_REQUEST_EJSON, "not valid JSON");
	bad_n("{\"messages\":[],\"s\":\"a\0b\"}", 24, PX_REQUEST_EJSON, "not valid JSON");
	bad_n("{\"messages\":[]}\0", 16, PX_REQUEST_EJSON, "not valid JSON");
}

static void test_content_parts(void **state)
{
	(void)state;
	struct px_request *q = ok(
		"{\"messages\":[{\"role\":\"user\",\"content\":["
		"{\"type\":\"text\",\"text\":\"a\"},"
		"{\"type\":\"image_url\",\"image_url\":{\"url\":\"u\"},\"text\":\"not text\"},"
		"{\"text\":\"b\",\"type\":\"text\"},"
		"{\"text\":\"c\"},"
		"{\"type\":\"text\"},"
		"{\"type\":\"text\",\"text\":null},"
		"{\"type\":\"input_audio\",\"input_audio\":{\"data\":\"...\"}},"
		"{\"type\":\"text\",\"text\":\"\\u00e9\"}]},"
		"{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"u\"}}]},"
		"{\"role\":\"user\",\"content\":[]},"
		"{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"only\"}]},"
		"{\"role\":\"user\",\"content\":\"\"}]}");

	assert_true(STR_IS(&q->msgs[0].content, "abc\xc3\xa9"));
	/* No text parts: empty, not absent. */
	assert_true(STR_IS(&q->msgs[1].content, ""));
	assert_true(STR_IS(&q->msgs[2].content, ""));
	assert_true(STR_IS(&q->msgs[3].content, "only"));
	assert_true(STR_IS(&q->msgs[4].content, ""));
	px_request_free(q);
}

static void test_sampling(void **state)
{
	(void)state;
	struct px_request *q = ok(
		"{\"messages\":[],\"temperature\":0.7,\"top_p\":0.95,\"top_k\":40,\"min_p\":0.05,"
		"\"seed\":-9223372036854775808,\"max_tokens\":2.0,\"max_completion_tokens\":1e3,"
		"\"stop\":[\"\\n\\n\",\"</s>\",\"\"],\"frequency_penalty\":-0.5,\"presence_penalty\":1E-1,"
		"\"repeat_penalty\":1.1}");
	const struct px_sampling *s = &q->sampling;

	assert_true(s->temperature.set);
	assert_true(s->temperature.v == 0.7);
	assert_true(s->top_p.set && s->top_p.v == 0.95);
	assert_true(s->top_k.set && s->top_k.v == 40);
	assert_true(s->min_p.set && s->min_p.v == 0.05);
	assert_true(s->seed.set && s->seed.v == INT64_MIN);
	assert_true(s->max_tokens.set && s->max_tokens.v == 2);
	assert_true(s->max_completion_tokens.set && s->max_completion_tokens.v == 1000);
	assert_true(s->stop_set);
	assert_int_equal(s->n_stop, 3);
	assert_true(STR_IS(&s->stop[0], "\n\n"));
	assert_true(STR_IS(&s->stop[1], "</s>"));
	assert_true(STR_IS(&s->stop[2], ""));
	assert_true(s->frequency_penalty.set && s->frequency_penalty.v == -0.5);
	assert_true(s->presence_penalty.set && s->presence_penalty.v == 0.1);
	assert_true(s->repeat_penalty.set && s->repeat_penalty.v == 1.1);
	px_request_free(q);

	/* A string stop is a list of one; null leaves a field unset; values out
	 * of any sensible range are the engine's to refuse, not the reader's. */
	q = ok("{\"messages\":[],\"stop\":\"END\",\"temperature\":null,\"top_k\":null,"
	       "\"max_tokens\":-5,\"top_p\":7}");
	assert_true(q->sampling.stop_set);
	assert_int_equal(q->sampling.n_stop, 1);
	assert_true(STR_IS(&q->sampling.stop[0], "END"));
	assert_false(q->sampling.temperature.set);
	assert_false(q->sampling.top_k.set);
	assert_true(q->sampling.max_tokens.set && q->sampling.max_tokens.v == -5);
	assert_true(q->sampling.top_p.v == 7);
	px_request_free(q);

	q = ok("{\"messages\":[],\"stop\":null}");
	assert_false(q->sampling.stop_set);
	px_request_free(q);
}

static void test_count_caps(void **state)
{
	(void)state;
	struct sb b = {0};
	struct px_request *q;
	char needle[96];

	/* Messages: the cap reads, one more does not. */
	sb_add(&b, "{\"messages\":[");
	for (int i = 0; i < PX_REQUEST_MAX_MESSAGES; i++)
		sb_add(&b, "%s{\"role\":\"user\"}", i ? "," : "");
	sb_add(&b, "]}");
	q = ok(b.s);
	assert_int_equal(q->n_msgs, PX_REQUEST_MAX_MESSAGES);
	px_request_free(q);
	b.len -= 2;
	sb_add(&b, ",{\"role\":\"user\"}]}");
	snprintf(needle, sizeof(needle), "messages has more than %d entries", PX_REQUEST_MAX_MESSAGES);
	bad(b.s, PX_REQUEST_ELIMIT, needle);

	/* Tool calls of one message (the calls of two messages add up fine). */
	b.len = 0;
	sb_add(&b, "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[");
	for (int i = 0; i < PX_REQUEST_MAX_CALLS; i++)
		sb_add(&b, "%s{\"function\":{\"name\":\"f\"}}", i ? "," : "");
	sb_add(&b, "]},{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"g\"}}]}]}");
	q = ok(b.s);
	assert_int_equal(q->msgs[0].n_calls, PX_REQUEST_MAX_CALLS);
	assert_int_equal(q->msgs[1].n_calls, 1);
	assert_true(STR_IS(&q->msgs[1].calls[0].name, "g"));
	assert_true(STR_IS(&q->msgs[0].calls[PX_REQUEST_MAX_CALLS - 1].name, "f"));
	px_request_free(q);
	b.len = 0;
	sb_add(&b, "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[");
	for (int i = 0; i <= PX_REQUEST_MAX_CALLS; i++)
		sb_add(&b, "%s{\"function\":{\"name\":\"f\"}}", i ? "," : "");
	sb_add(&b, "]}]}");
	bad(b.s, PX_REQUEST_ELIMIT, "more than 4096 tool_calls");

	/* Content parts of one message. */
	b.len = 0;
	sb_add(&b, "{\"messages\":[{\"role\":\"user\",\"content\":[");
	for (int i = 0; i <= PX_REQUEST_MAX_PARTS; i++)
		sb_add(&b, "%s{\"type\":\"text\",\"text\":\"x\"}", i ? "," : "");
	sb_add(&b, "]}]}");
	bad(b.s, PX_REQUEST_ELIMIT, "content has more than 4096 parts");

	/* Tools. */
	b.len = 0;
	sb_add(&b, "{\"messages\":[],\"tools\":[");
	for (int i = 0; i <= PX_REQUEST_MAX_TOOLS; i++)
		sb_add(&b, "%s{\"function\":{\"name\":\"t%d\"}}", i ? "," : "", i);
	sb_add(&b, "]}");
	bad(b.s, PX_REQUEST_ELIMIT, "tools has more than 1024 entries");

	/* Stops. */
	b.len = 0;
	sb_add(&b, "{\"messages\":[],\"stop\":[");
	for (int i = 0; i <= PX_REQUEST_MAX_STOP; i++)
		sb_add(&b, "%s\"s\"", i ? "," : "");
	sb_add(&b, "]}");
	bad(b.s, PX_REQUEST_ELIMIT, "stop has more than 16 entries");

	/* Keys of the request object. */
	b.len = 0;
	sb_add(&b, "{\"messages\":[]");
	for (int i = 1; i <= PX_REQUEST_MAX_KEYS; i++)
		sb_add(&b, ",\"k%d\":%d", i, i);
	sb_add(&b, "}");
	bad(b.s, PX_REQUEST_ELIMIT, "the request has more than 256 keys");
	free(b.s);
}

/* The history built from what the reader kept: calls, results, the last
 * assistant text, and one identity for a call's two argument forms. */
static void test_history_from_reader(void **state)
{
	(void)state;
	struct gd_config cfg;
	char err[256];
	struct gd_policy *pol;
	struct gd_history *h;

	gd_config_defaults(&cfg);
	pol = gd_policy_new(&cfg, err, sizeof(err));
	assert_non_null(pol);
	h = px_request_history(pol, "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":["
	                       "{\"id\":\"1\",\"function\":{\"name\":\"ls\",\"arguments\":{\"p\":\".\"}}},"
	                       "{\"id\":\"2\",\"function\":{\"name\":\"ls\",\"arguments\":\"{ \\\"p\\\" : \\\".\\\" }\"}}]},"
	                       "{\"role\":\"tool\",\"tool_call_id\":\"1\",\"content\":\"a\"}]}",
	                       SIZE_MAX, err, sizeof(err)); /* SIZE_MAX: over the cap */
	assert_null(h);
	assert_non_null(strstr(err, "exceeds the cap"));

	static const char body[] =
		"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":["
		"{\"id\":\"1\",\"function\":{\"name\":\"ls\",\"arguments\":{\"p\":\".\"}}},"
		"{\"id\":\"2\",\"function\":{\"name\":\"ls\",\"arguments\":\"{ \\\"p\\\" : \\\".\\\" }\"}}]},"
		"{\"role\":\"tool\",\"tool_call_id\":\"1\",\"content\":\"a\"}]}";
	h = px_request_history(pol, body, sizeof(body) - 1, err, sizeof(err));
	if (!h)
		fail_msg("%s", err);
	assert_int_equal(gd_history_calls(h), 2);
	assert_int_equal(gd_history_turns(h), 1);
	gd_history_free(h);

	/* A bad body: the reader's message. */
	h = px_request_history(pol, "{\"messages\":[],\"messages\":[]}", 29, err, sizeof(err));
	assert_null(h);
	assert_non_null(strstr(err, "duplicate key 'messages'"));
	gd_policy_free(pol);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal),
		cmocka_unit_test(test_all_fields),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_type_errors),
		cmocka_unit_test(test_unicode),
		cmocka_unit_test(test_invalid_json_and_utf8),
		cmocka_unit_test(test_content_parts),
		cmocka_unit_test(test_sampling),
		cmocka_unit_test(test_count_caps),
		cmocka_unit_test(test_history_from_reader),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
