/* fuzz_json_check.c - libFuzzer harness for runtime/http/json_check.c: the
 * input goes through json-c's strict tokener as http_json_body() uses it,
 * then json_check_text() and json_check_tree(). Checks that a refusal says
 * why, and that what both accept serializes into JSON that json-c reads back
 * and both accept again (no NaN, no lone surrogate, no NUL comes out). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "json_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct json_object *parse(const char *text, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;

	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
				    JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, text, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

static int check(struct json_object *o, const char *text, size_t len)
{
	char why[160] = "";
	size_t off = 0;
	int rc = json_check_text(text, len, why, sizeof(why), &off);

	if (rc != 0 && (why[0] == '\0' || off >= len))
		abort();
	if (rc != 0)
		return rc;
	rc = json_check_tree(o, why, sizeof(why));
	if (rc != 0 && why[0] == '\0')
		abort();
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *o, *again;
	char *text;
	const char *out;

	if (size > 64 * 1024)
		return 0;
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	o = parse(text, size + 1);
	if (o && check(o, text, size) == 0) {
		out = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		again = out ? parse(out, strlen(out) + 1) : NULL;
		if (!again || check(again, out, strlen(out)) != 0)
			abort();
		json_object_put(again);
	}
	json_object_put(o);
	free(text);
	return 0;
}
