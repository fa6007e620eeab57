/* fuzz_api_json.c - libFuzzer harness for the API's pure body parsers
 * (runtime/http/api_parse.c): the input, parsed as JSON, goes through
 * api_parse_connection(), api_parse_metadata(), api_parse_connection_patch()
 * and api_parse_action(), and
 * the credential shapes. Checks that a refusal always has a status, a code
 * and a message, and that an accepted body has what the handlers rely on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_problem(const struct api_problem *p)
{
	if (!p->code || !p->status || !p->message[0])
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_tokener *tok;
	struct json_object *body;
	struct api_connection_req creq;
	struct api_metadata_req mreq;
	struct api_action_req areq;
	struct api_problem p;

	if (size > 256 * 1024)
		return 0;
	tok = json_tokener_new();
	if (!tok)
		return 0;
	body = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	json_tokener_free(tok);
	if (!body)
		return 0;

	if (api_parse_connection(body, &creq, &p) == 0) {
		struct json_object *stored, *view;

		if (!creq.provider_config_key || !creq.credentials || !creq.cred_type)
			abort();
		if (creq.connection_id && !api_valid_connection_id(creq.connection_id))
			abort();
		stored = api_credentials_stored(&creq);
		view = api_credentials_view(stored, false);
		if (stored && view && json_object_object_get_ex(view, "refresh_token", NULL))
			abort();
		json_object_put(view);
		json_object_put(stored);
	} else {
		check_problem(&p);
	}
	api_problem_clear(&p);

	if (api_parse_metadata(body, &mreq, &p) == 0) {
		if (!mreq.provider_config_key || !mreq.metadata || mreq.n_ids < 1 ||
		    mreq.n_ids > API_METADATA_IDS_MAX)
			abort();
		for (size_t i = 0; i < mreq.n_ids; i++) {
			if (!api_valid_connection_id(mreq.ids[i]))
				abort();
		}
	} else {
		check_problem(&p);
	}
	api_problem_clear(&p);

	{
		struct api_connection_patch preq;

		if (api_parse_connection_patch(body, &preq, &p) == 0) {
			if (preq.set_override && preq.webhook_url_override &&
			    strncmp(preq.webhook_url_override, "http", 4) != 0)
				abort();
			json_object_put(preq.tags);
		} else {
			check_problem(&p);
			api_problem_clear(&p);
		}
	}
	if (api_parse_action(body, &areq, &p) == 0) {
		if (!areq.action_name)
			abort();
	} else {
		check_problem(&p);
	}
	api_problem_clear(&p);

	json_object_put(body);
	return 0;
}
