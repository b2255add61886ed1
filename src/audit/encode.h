/* audit/encode.h — the encodings of one audit event (spec/audit-event.md,
 * "Encodings"), shared by downloads (/api/v1/logs/export, `mcpauth logs`) and
 * the SIEM exporters: JSON, CSV (RFC 4180), CEF, OCSF 1.x (3003 Authorize
 * Session for token requests, 6003 API Activity for admin changes) and RFC 5424
 * syslog. Each encoder writes exactly one record, with no line terminator: the
 * caller frames it (a download joins records with audit_format_terminator()).
 * Encoders never fail on hostile content: every value is escaped per its
 * standard. Thread-safe (no state). */
#pragma once
#include <jansson.h>

#include "core/buf.h"
#include "core/err.h"

enum audit_format { AUDIT_FMT_JSON, AUDIT_FMT_CSV, AUDIT_FMT_CEF, AUDIT_FMT_OCSF, AUDIT_FMT_RFC5424 };

/* "jsonl" or "json", "csv", "cef", "ocsf", "rfc5424". ERR_INVAL for anything else. */
int audit_format_parse(const char *name, enum audit_format *ret);
const char *audit_format_name(enum audit_format f);         /* "jsonl", "csv", ... */
const char *audit_format_content_type(enum audit_format f); /* "application/x-ndjson", "text/csv; charset=utf-8", ... */
const char *audit_format_extension(enum audit_format f);    /* "jsonl", "csv", "cef", "ocsf.jsonl", "log" */
const char *audit_format_terminator(enum audit_format f);   /* "\r\n" for CSV, "\n" otherwise */

/* Appends the header a download starts with (CSV: the column row plus "\r\n"; other
 * formats: nothing). */
int audit_encode_header(enum audit_format f, struct buf *out);
/* Appends one record for `ev` (an event as stored: every common field present, "hash"
 * included). 0, or ERR_TOOBIG/ERR_NOMEM from the buffer. */
int audit_encode(enum audit_format f, const json_t *ev, struct buf *out);
