/* export/runner.c — placeholder */
#include "export/sink.h"
