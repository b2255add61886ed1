/* logs/scim.h — the filter language of the system log: SCIM filters
 * (RFC 7644 §3.4.2.2) over the attributes of store/query.h.
 *
 *   filter  = or
 *   or      = and *("or" and)
 *   and     = unary *("and" unary)
 *   unary   = "not" "(" filter ")" | "(" filter ")" | attr "pr" | attr compop value
 *   compop  = "eq" / "ne" / "co" / "sw" / "ew" / "gt" / "ge" / "lt" / "le"
 *   value   = string (JSON string syntax, double quotes) / number / "true" / "false" / "null"
 *
 * Operators, keywords and attribute names are case-insensitive (RFC 7644 §3.4.2.2;
 * names as in store_attr_names). Bounded: at most SCIM_MAX_LEN bytes, SCIM_MAX_DEPTH nesting
 * and SCIM_MAX_NODES nodes. `seq` compares with numbers, every other attribute with
 * strings; co/sw/ew/gt/ge/lt/le need a string (or, for seq, a number); pr takes no
 * value. Errors name the 1-based column and what was expected there:
 * "column 12: expected a comparison operator (eq, ne, co, sw, ew, pr, gt, ge, lt, le),
 * found 'equals'". */
#pragma once
#include <stddef.h>

#include "core/err.h"
#include "store/query.h"

#define SCIM_MAX_LEN 4096
#define SCIM_MAX_DEPTH 32
#define SCIM_MAX_NODES 256

/* Parses `len` bytes. Returns 0 and an owned tree in *ret (store_filter_free), or
 * ERR_INVAL with d->msg as above, or ERR_TOOBIG over the caps. An empty or all-blank
 * filter is ERR_INVAL ("column 1: expected an attribute"). */
int scim_parse(const char *text, size_t len, struct store_filter **ret, struct err_detail *d);
