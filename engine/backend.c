/* What every backend instance has in common (engine/backend_impl.h). */
#include <stdlib.h>

#include "engine/backend_impl.h"

void eng_backend_free(struct eng_backend *b)
{
	if (!b)
		return;
	b->iface->free(b->ctx);
	free(b);
}

const char *eng_backend_name(const struct eng_backend *b)
{
	return b->name;
}
