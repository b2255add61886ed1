/* config/yaml.h — YAML (and therefore JSON) documents into jansson trees,
 * remembering the line of every node so that later validation can say
 * "line 12: systems[0].nmae: unknown field". libyaml is touched here only.
 *
 * Mapping: mappings -> objects (duplicate keys are an error), sequences ->
 * arrays, plain scalars per the YAML 1.2 core schema (null/~, true/false,
 * integers, floats; everything else a string), quoted scalars -> strings.
 * Anchors and aliases, tags other than the core ones, and multi-document
 * streams are rejected. Input is capped (CONFIG_MAX_BYTES, depth 64,
 * 200000 nodes) so hostile input fails cleanly. */
#pragma once
#include <jansson.h>
#include <stddef.h>

#include "core/err.h"

#define CONFIG_MAX_BYTES (4u << 20)

struct config_doc;

/* Parses `len` bytes. Returns 0 and an owned *ret, or ERR_INVAL with
 * d->msg = "line L, column C: what was wrong", ERR_TOOBIG over the caps, ERR_NOMEM.
 * An empty document yields an empty object. */
int config_doc_parse(const char *text, size_t len, struct config_doc **ret, struct err_detail *d);
/* Reads and parses a file: ERR_NOTFOUND ("PATH: no such file"), ERR_IO (with
 * strerror), ERR_TOOBIG over CONFIG_MAX_BYTES, or any error of config_doc_parse.
 * Every message starts with "PATH: ", so callers need not add the path again. */
int config_doc_load(const char *path, struct config_doc **ret, struct err_detail *d);
/* The root node (borrowed; lives as long as the doc). */
json_t *config_doc_root(const struct config_doc *doc);
/* 1-based line where `node` (any node of this doc's tree; for an object member, its
 * value node, whose line is the key's line) starts, or 0 if unknown. jansson shares one
 * node for every true, false and null, so for those this returns 0: ask
 * config_doc_key_line() (members) instead. */
int config_doc_line(const struct config_doc *doc, const json_t *node);
/* 1-based line of the key `key` of `object` (an object of this doc's tree), or 0 if
 * `object` has no such key in the parsed text. Works for every member, whatever the
 * type of its value, so validation should prefer it for "line L: key: ..." messages.
 * Lookups on a parsed doc are thread-safe. */
int config_doc_key_line(const struct config_doc *doc, const json_t *object, const char *key);
struct config_doc *config_doc_free(struct config_doc *doc); /* NULL-safe */
