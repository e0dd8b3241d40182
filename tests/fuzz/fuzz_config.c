/* Fuzz target for the YAML loader and --set parser (config/config.h): any
 * input loads or fails with a message; keys handed to the setter are
 * non-empty and within CFG_KEY_MAX. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static int setter(const char *key, const char *value, const char *file, unsigned long line,
                  void *ctx, char *err, size_t errlen)
{
	size_t kl = strlen(key);

	(void)file;
	(void)err;
	(void)errlen;
	if (kl == 0 || kl >= CFG_KEY_MAX || strlen(value) >= CFG_VALUE_MAX || line == 0)
		abort();
	(*(unsigned *)ctx)++;
	/* Refuse one key so the error path runs too. */
	return strcmp(key, "refuse") == 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], key[64], value[64];
	unsigned n = 0;
	char *s;

	err[0] = '\0';
	if (cfg_load_buffer("fuzz.yaml", (const char *)data, size, setter, &n, err, sizeof(err)) != CFG_OK &&
	    err[0] == '\0')
		abort(); /* every failure explains itself */
	s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	if (cfg_parse_kv(s, key, sizeof(key), value, sizeof(value), err, sizeof(err)) == CFG_OK &&
	    (key[0] == '\0' || strchr(key, '=')))
		abort();
	free(s);
	return 0;
}

#include "wire_replay.h"
