/* http/ui_assets.h — the web console's files, embedded at build time by
 * scripts/embed.sh (src/ui/ -> ui_assets.c in the build directory). */
#pragma once
#include <stddef.h>

struct ui_asset {
    const char *path; /* under /ui/, e.g. "app.js" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
};

/* Every file of src/ui/, ended by an entry whose path is NULL. */
extern const struct ui_asset ui_assets[];
