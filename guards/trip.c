#include "guards/trip.h"

const char *gd_verdict_name(enum gd_verdict v)
{
	switch (v) {
	case GD_PASS: return "pass";
	case GD_HOLD: return "hold";
	case GD_TRIP: return "trip";
	case GD_VERDICT_COUNT: break;
	}
	return "unknown";
}
