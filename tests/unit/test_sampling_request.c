/* A request's sampling fields: values in range fill the sampler params,
 * anything else is refused with the field, the allowed range and the value
 * named (the 400 the client sees); absent fields keep the server's
 * defaults. And the frequency / presence penalties they set. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/sampler.h"

#define S(lit) ((struct eng_str){ (lit), sizeof(lit) - 1 })
#define NUM(x) ((struct eng_opt_num){ true, (x) })
#define INT(x) ((struct eng_opt_int){ true, (x) })

static void refused(const struct eng_sampling_request *req, enum eng_status st, const char *msg)
{
	struct eng_gen_params out;
	char err[256] = "";

	assert_int_equal(eng_sampling_from_request(req, NULL, &out, err, sizeof(err)), st);
	assert_string_equal(err, msg);
}

static void test_defaults(void **state)
{
	struct eng_sampling_request req = { 0 };
	struct eng_sampler_params def = eng_sampler_defaults();
	struct eng_gen_params out;
	char err[128];

	(void)state;
	def.temp = 0.8f;
	def.top_k = 40;
	def.seed = 1234;
	assert_int_equal(eng_sampling_from_request(&req, &def, &out, err, sizeof(err)), ENG_OK);
	assert_memory_equal(&out.sampler, &def, sizeof(def));
	assert_int_equal(out.max_tokens, 0);
	assert_int_equal(out.n_stop, 0);
}

static void test_values(void **state)
{
	const struct eng_str stops[] = { S("\n\n"), S("END") };
	struct eng_sampling_request req = {
		.temperature = NUM(0.7), .top_p = NUM(0.9), .min_p = NUM(0.05), .top_k = INT(20),
		.seed = INT(-1), .max_tokens = INT(100), .max_completion_tokens = INT(64),
		.frequency_penalty = NUM(-2), .presence_penalty = NUM(2), .repeat_penalty = NUM(1.1),
		.stop = stops, .n_stop = 2,
	};
	struct eng_gen_params out;
	char err[128];

	(void)state;
	assert_int_equal(eng_sampling_from_request(&req, NULL, &out, err, sizeof(err)), ENG_OK);
	assert_float_equal(out.sampler.temp, 0.7f, 1e-6);
	assert_float_equal(out.sampler.top_p, 0.9f, 1e-6);
	assert_float_equal(out.sampler.min_p, 0.05f, 1e-6);
	assert_int_equal(out.sampler.top_k, 20);
	assert_true(out.sampler.seed == UINT64_MAX);
	assert_float_equal(out.sampler.frequency_penalty, -2.0f, 0);
	assert_float_equal(out.sampler.presence_penalty, 2.0f, 0);
	assert_float_equal(out.sampler.repeat_penalty, 1.1f, 1e-6);
	assert_int_equal(out.max_tokens, 64); /* max_completion_tokens wins */
	assert_int_equal(out.n_stop, 2);
	assert_ptr_equal(out.stop[1].ptr, stops[1].ptr);
	/* The edges of each range are allowed. */
	req = (struct eng_sampling_request){ .temperature = NUM(0), .top_p = NUM(1), .min_p = NUM(1),
	                                     .top_k = INT(0), .max_tokens = INT(1),
	                                     .repeat_penalty = NUM(10) };
	assert_int_equal(eng_sampling_from_request(&req, NULL, &out, err, sizeof(err)), ENG_OK);
	assert_int_equal(out.max_tokens, 1);
	req.temperature = NUM(2);
	req.max_tokens = INT(ENG_SAMPLING_MAX_TOKENS);
	assert_int_equal(eng_sampling_from_request(&req, NULL, &out, err, sizeof(err)), ENG_OK);
}

static void test_refused(void **state)
{
	const struct eng_str five[] = { S("a"), S("b"), S("c"), S("d"), S("e") };
	const struct eng_str empty[] = { S("a"), { "", 0 } };
	static char longs[ENG_STOP_LEN_MAX + 1];
	const struct eng_str toolong[] = { { longs, sizeof(longs) } };

	(void)state;
	refused(&(struct eng_sampling_request){ .top_p = NUM(1.5) }, ENG_ERR_RANGE,
	        "'top_p' must be in (0, 1], got 1.5");
	refused(&(struct eng_sampling_request){ .top_p = NUM(0) }, ENG_ERR_RANGE,
	        "'top_p' must be in (0, 1], got 0");
	refused(&(struct eng_sampling_request){ .temperature = NUM(3) }, ENG_ERR_RANGE,
	        "'temperature' must be in [0, 2], got 3");
	refused(&(struct eng_sampling_request){ .temperature = NUM(-0.5) }, ENG_ERR_RANGE,
	        "'temperature' must be in [0, 2], got -0.5");
	refused(&(struct eng_sampling_request){ .min_p = NUM(NAN) }, ENG_ERR_RANGE,
	        "'min_p' must be a finite number");
	refused(&(struct eng_sampling_request){ .min_p = NUM(INFINITY) }, ENG_ERR_RANGE,
	        "'min_p' must be a finite number");
	refused(&(struct eng_sampling_request){ .top_k = INT(-1) }, ENG_ERR_RANGE,
	        "'top_k' must be in [0, 2147483647], got -1");
	refused(&(struct eng_sampling_request){ .max_tokens = INT(0) }, ENG_ERR_RANGE,
	        "'max_tokens' must be in [1, 2147483647], got 0");
	refused(&(struct eng_sampling_request){ .max_completion_tokens = INT(-5) }, ENG_ERR_RANGE,
	        "'max_completion_tokens' must be in [1, 2147483647], got -5");
	refused(&(struct eng_sampling_request){ .frequency_penalty = NUM(2.5) }, ENG_ERR_RANGE,
	        "'frequency_penalty' must be in [-2, 2], got 2.5");
	refused(&(struct eng_sampling_request){ .presence_penalty = NUM(-3) }, ENG_ERR_RANGE,
	        "'presence_penalty' must be in [-2, 2], got -3");
	refused(&(struct eng_sampling_request){ .repeat_penalty = NUM(0) }, ENG_ERR_RANGE,
	        "'repeat_penalty' must be in (0, 10], got 0");
	refused(&(struct eng_sampling_request){ .stop = five, .n_stop = 5 }, ENG_ERR_LIMIT,
	        "'stop' may hold at most 4 strings, got 5");
	refused(&(struct eng_sampling_request){ .stop = empty, .n_stop = 2 }, ENG_ERR_RANGE,
	        "'stop[1]' must not be empty");
	refused(&(struct eng_sampling_request){ .stop = toolong, .n_stop = 1 }, ENG_ERR_LIMIT,
	        "'stop[0]' is 257 bytes long, at most 256");
	refused(NULL, ENG_ERR_ARG, "missing request");
}

/* Frequency and presence penalties as OpenAI defines them: logit -= count ×
 * frequency_penalty + (count > 0) × presence_penalty, over the window. */
static int greedy_after(float fp, float pp)
{
	struct eng_sampler_params p = eng_sampler_defaults();
	struct eng_sampler *s;
	float l[8] = { 0, 0, 0, 10.0f, 8.5f, 0, 0, 0 };
	int t;

	p.frequency_penalty = fp;
	p.presence_penalty = pp;
	s = eng_sampler_new(&p, 8);
	assert_non_null(s);
	for (int i = 0; i < 3; i++)
		eng_sampler_accept(s, 3); /* token 3 seen three times */
	eng_sampler_accept(s, 4);         /* token 4 once */
	t = eng_sampler_sample(s, l);
	eng_sampler_free(s);
	return t;
}

static void test_penalties(void **state)
{
	struct eng_sampler_params p = eng_sampler_defaults();

	(void)state;
	assert_int_equal(greedy_after(0, 0), 3);
	/* 10 - 3 = 7 < 8.5 - 1 = 7.5 */
	assert_int_equal(greedy_after(1, 0), 4);
	/* 10 - 1 = 9 > 8.5 - 1 = 7.5: presence does not count repeats */
	assert_int_equal(greedy_after(0, 1), 3);
	/* negative values encourage repeats */
	assert_int_equal(greedy_after(-1, 0), 3);
	p.presence_penalty = NAN;
	assert_null(eng_sampler_new(&p, 8));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_penalties),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
