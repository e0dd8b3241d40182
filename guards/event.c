#include "guards/event.h"

const char *gd_event_type_name(enum gd_event_type type)
{
	static const char *const names[GD_EV_COUNT] = {
		[GD_EV_TEXT] = "text",
		[GD_EV_REASONING] = "reasoning",
		[GD_EV_TOOL_BEGIN] = "tool_call_begin",
		[GD_EV_TOOL_ARGS] = "tool_call_args",
		[GD_EV_TOOL_END] = "tool_call_end",
		[GD_EV_FINISH] = "finish",
		[GD_EV_USAGE] = "usage",
	};
	if ((unsigned)type >= GD_EV_COUNT)
		return "unknown";
	return names[type];
}
