/*
 * paginate_fields.c - struct config_paginate's names and its free: shared by
 * the providers.yaml parser and the executor's wire format. Depends on
 * nothing (the zygote links it without libyaml).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "status.h"

const struct config_paginate_field config_paginate_fields[CONFIG_PAGINATE_N_FIELDS] = {
	{"cursor_path_in_response", offsetof(struct config_paginate, cursor_path_in_response)},
	{"cursor_name_in_request", offsetof(struct config_paginate, cursor_name_in_request)},
	{"limit_name_in_request", offsetof(struct config_paginate, limit_name_in_request)},
	{"response_path", offsetof(struct config_paginate, response_path)},
	{"link_rel_in_response_header", offsetof(struct config_paginate, link_rel_in_response_header)},
	{"link_path_in_response_body", offsetof(struct config_paginate, link_path_in_response_body)},
	{"offset_name_in_request", offsetof(struct config_paginate, offset_name_in_request)},
	{"offset_start_value", offsetof(struct config_paginate, offset_start_value)},
	{"offset_calculation_method", offsetof(struct config_paginate, offset_calculation_method)},
};

void config_paginate_clear(struct config_paginate *pg)
{
	if (!pg)
		return;
	for (size_t i = 0; i < CONFIG_PAGINATE_N_FIELDS; i++)
		free(*config_paginate_field(pg, i));
	memset(pg, 0, sizeof(*pg));
}

int config_paginate_copy(struct config_paginate *dst, const struct config_paginate *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->type = src->type;
	for (size_t i = 0; i < CONFIG_PAGINATE_N_FIELDS; i++) {
		const char *v = config_paginate_get(src, i);

		if (v && !(*config_paginate_field(dst, i) = strdup(v)))
			return STATUS_ENOMEM;
	}
	return 0;
}

const char *config_paginate_type_name(enum config_paginate_type t)
{
	switch (t) {
	case CONFIG_PAGINATE_CURSOR: return "cursor";
	case CONFIG_PAGINATE_LINK: return "link";
	case CONFIG_PAGINATE_OFFSET: return "offset";
	case CONFIG_PAGINATE_NONE: break;
	}
	return "none";
}

int config_paginate_type_from_name(const char *s, enum config_paginate_type *out)
{
	for (int t = CONFIG_PAGINATE_NONE; t <= CONFIG_PAGINATE_OFFSET; t++) {
		if (strcmp(s, config_paginate_type_name(t)) == 0) {
			*out = (enum config_paginate_type)t;
			return 0;
		}
	}
	return CONFIG_EINVALID;
}
