/* loopwarden's entry point: `loopwarden generate …` runs the engine's
 * generation command; anything else will start the proxy. */
#include <stdio.h>
#include <string.h>

#include "engine/generate.h"

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "generate") == 0)
		return eng_generate_main(argc - 1, argv + 1);
	fprintf(stderr, "loopwarden: the proxy is not built yet\n");
	return 2;
}
