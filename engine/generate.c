#include <stdio.h>

#include "engine/generate.h"

int eng_generate_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "loopwarden generate: the engine is not built yet\n");
	return 2;
}
