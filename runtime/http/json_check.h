/*
 * json_check.h - private to runtime/http: what json-c accepts but a JSON API
 * must refuse (RFC 8259; I-JSON, RFC 7493), checked over a request body that
 * json-c has already parsed. Pure: no I/O, no allocation; fuzzed with the
 * body parsers (tests/fuzz/fuzz_api_json.c).
 *
 *   - NaN, Infinity and -Infinity (json-c reads them even in strict mode, and
 *     writes them back: the reply is then not JSON), and numbers out of a
 *     double's range (1e999);
 *   - \u escapes of a lone surrogate (json-c turns them into U+FFFD, so a
 *     client's data would change without a word);
 *   - \u0000 anywhere (json-c's keys are C strings: "a\u0000b" was kept as
 *     "a"; values with a NUL would be cut wherever they are used as strings).
 *   - bytes that are not UTF-8 (RFC 3629: no overlong forms, no encoded
 *     surrogates, nothing past U+10FFFF; json-c's own check lets overlong
 *     forms through);
 *   - single-quoted strings, which json-c's strict mode still reads.
 */
#ifndef EVS_HTTP_JSON_CHECK_H
#define EVS_HTTP_JSON_CHECK_H

#include <stddef.h>

#include <json-c/json.h>

#define JSON_CHECK_SYNTAX (-1)  /* not JSON: answer as a syntax error */
#define JSON_CHECK_VALUE (-2)   /* JSON, but a value a client must not send */

/* Scans the text of a JSON document (already accepted by json-c's strict
 * tokener) for bytes that are not UTF-8, single quotes, \u0000 and lone
 * surrogate escapes. Returns 0, or JSON_CHECK_SYNTAX / JSON_CHECK_VALUE with
 * a sentence in why and the byte offset in *offset. */
int json_check_text(const char *text, size_t len, char *why, size_t whylen, size_t *offset);

/* Walks a parsed document for NaN, infinities and numbers out of range.
 * Returns 0, or -1 with a sentence in why. */
int json_check_tree(struct json_object *o, char *why, size_t whylen);

#endif
