/* The sampler: greedy is argmax, the same seed replays the same tokens,
 * top-k / top-p / min-p never pick a token they cut, temperature 1 follows
 * the softmax distribution, and the repetition penalty moves the choice. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/sampler.h"

#define NV 1000

static void fill(float *l, uint32_t seed)
{
	for (int i = 0; i < NV; i++) {
		seed = seed * 1664525u + 1013904223u;
		l[i] = (float)(seed >> 8) / 16777216.0f * 4.0f;
	}
}

static void test_greedy_is_argmax(void **state)
{
	(void)state;
	struct eng_sampler_params p = eng_sampler_defaults();
	struct eng_sampler *s = eng_sampler_new(&p, NV);
	float l[NV];
	fill(l, 7);
	l[123] = 10;
	assert_int_equal(eng_sampler_sample(s, l), 123);
	l[999] = 11;
	assert_int_equal(eng_sampler_sample(s, l), 999);
	eng_sampler_free(s);
	eng_sampler_free(NULL);
	p.repeat_penalty = 0;
	assert_null(eng_sampler_new(&p, NV));
	p = eng_sampler_defaults();
	assert_null(eng_sampler_new(&p, 0));
}

static void draw(uint64_t seed, int *out, int n)
{
	struct eng_sampler_params p = eng_sampler_defaults();
	p.temp = 1.0f;
	p.seed = seed;
	struct eng_sampler *s = eng_sampler_new(&p, NV);
	float l[NV], c[NV];
	fill(l, 3);
	for (int i = 0; i < n; i++) {
		memcpy(c, l, sizeof(c));
		out[i] = eng_sampler_sample(s, c);
	}
	eng_sampler_free(s);
}

static void test_seed_replays(void **state)
{
	(void)state;
	int a[50], b[50], c[50];
	draw(42, a, 50);
	draw(42, b, 50);
	draw(43, c, 50);
	assert_memory_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, c, sizeof(a));
	/* reset replays too */
	struct eng_sampler_params p = eng_sampler_defaults();
	struct eng_sampler *s = eng_sampler_new(&p, NV);
	float u1 = eng_sampler_uniform(s), u2;
	eng_sampler_reset(s, 0);
	u2 = eng_sampler_uniform(s);
	assert_true(u1 == u2);
	for (int i = 0; i < 10000; i++) {
		float u = eng_sampler_uniform(s);
		assert_true(u >= 0 && u < 1);
	}
	eng_sampler_free(s);
}

static void test_filters_never_pick_cut_tokens(void **state)
{
	(void)state;
	float l[NV], c[NV];
	/* logits: token i has i/100, so the best are at the top */
	for (int i = 0; i < NV; i++)
		l[i] = (float)i / 100.0f;
	struct eng_sampler_params p = eng_sampler_defaults();
	p.temp = 1.0f;
	p.top_k = 5;
	struct eng_sampler *s = eng_sampler_new(&p, NV);
	int seen_low = 0;
	for (int i = 0; i < 2000; i++) {
		memcpy(c, l, sizeof(c));
		int t = eng_sampler_sample(s, c);
		assert_true(t >= NV - 5);
		seen_low |= t == NV - 5;
	}
	assert_true(seen_low); /* the 5th is reachable */
	eng_sampler_free(s);

	/* top-p 0.5 of a two-peak distribution keeps only the big peak */
	for (int i = 0; i < NV; i++)
		l[i] = -20;
	l[10] = 5;
	l[20] = 5 - logf(3.0f); /* p ≈ 0.75 / 0.25 */
	p = eng_sampler_defaults();
	p.temp = 1.0f;
	p.top_p = 0.5f;
	s = eng_sampler_new(&p, NV);
	for (int i = 0; i < 500; i++) {
		memcpy(c, l, sizeof(c));
		assert_int_equal(eng_sampler_sample(s, c), 10);
	}
	eng_sampler_free(s);
	/* min-p 0.4: 0.25/0.75 = 0.33 < 0.4 is cut; min-p 0.3 keeps it */
	p.top_p = 1.0f;
	p.min_p = 0.4f;
	s = eng_sampler_new(&p, NV);
	for (int i = 0; i < 500; i++) {
		memcpy(c, l, sizeof(c));
		assert_int_equal(eng_sampler_sample(s, c), 10);
	}
	eng_sampler_free(s);
	/* with only min-p 0.3 and temperature 1 the split is about 3:1 */
	p.min_p = 0.3f;
	s = eng_sampler_new(&p, NV);
	int n10 = 0, n20 = 0;
	for (int i = 0; i < 8000; i++) {
		memcpy(c, l, sizeof(c));
		int t = eng_sampler_sample(s, c);
		assert_true(t == 10 || t == 20);
		n10 += t == 10;
		n20 += t == 20;
	}
	assert_true(fabs((double)n10 / 8000 - 0.75) < 0.03);
	eng_sampler_free(s);
	/* low temperature sharpens: 0.1 makes the small peak ~e^-11 */
	p.min_p = 0;
	p.temp = 0.1f;
	s = eng_sampler_new(&p, NV);
	for (int i = 0; i < 500; i++) {
		memcpy(c, l, sizeof(c));
		assert_int_equal(eng_sampler_sample(s, c), 10);
	}
	eng_sampler_free(s);
	(void)n20;
}

static void test_repetition_penalty(void **state)
{
	(void)state;
	struct eng_sampler_params p = eng_sampler_defaults();
	p.repeat_penalty = 1.5f;
	p.repeat_last_n = 2;
	struct eng_sampler *s = eng_sampler_new(&p, NV);
	float l[NV], c[NV];
	for (int i = 0; i < NV; i++)
		l[i] = 0;
	l[5] = 3.0f;  /* penalized: 2.0 */
	l[6] = 2.5f;
	l[7] = -1.0f; /* penalized: -1.5 */
	memcpy(c, l, sizeof(c));
	assert_int_equal(eng_sampler_sample(s, c), 5);
	eng_sampler_accept(s, 5);
	eng_sampler_accept(s, 7);
	memcpy(c, l, sizeof(c));
	assert_int_equal(eng_sampler_sample(s, c), 6);
	assert_true(c[5] == 2.0f && c[7] == -1.5f);
	/* after two more tokens, 5 has left the window of 2 */
	eng_sampler_accept(s, 1);
	eng_sampler_accept(s, 2);
	memcpy(c, l, sizeof(c));
	assert_int_equal(eng_sampler_sample(s, c), 5);
	eng_sampler_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greedy_is_argmax),
		cmocka_unit_test(test_seed_replays),
		cmocka_unit_test(test_filters_never_pick_cut_tokens),
		cmocka_unit_test(test_repetition_penalty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
