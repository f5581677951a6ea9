// Param lives in core (adapters below this layer create them); this header keeps train/ code short.
#pragma once
#include "lathe/core/param.h"
