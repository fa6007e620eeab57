/* fuzz_config.c - libFuzzer harness for the pure YAML config parsers:
 * config_parse_host(), config_parse_nango(), config_parse_providers(), and
 * config_interpolate() over the input taken as a template. Checks that an
 * error always comes with a "FILE:..." message and a success with a result. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *lookup(void *ud, const char *name)
{
	(void)ud;
	if (strcmp(name, "apiKey") == 0 || strncmp(name, "connectionConfig.", 17) == 0)
		return "v";
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CONFIG_ERR_MAX];
	struct config_host *h = NULL;
	struct config_nango n;
	struct config_providers *p = NULL;
	char *text, *out = NULL;
	int ret;

	if (size > 256 * 1024)
		return 0;
	ret = config_parse_host((const char *)data, size, "f.yaml", &h, err, sizeof(err));
	if ((ret == 0) != (h != NULL) || (ret && strncmp(err, "f.yaml:", 7) != 0))
		abort();
	if (h) {
		(void)config_script_deadline(h, "x");
		(void)config_script_execution(h, h->nango.n_integrations ? &h->nango.integrations[0] : NULL, "x");
	}
	config_host_free(h);

	ret = config_parse_nango((const char *)data, size, "f.yaml", &n, err, sizeof(err));
	if (ret && (n.n_integrations != 0 || strncmp(err, "f.yaml:", 7) != 0))
		abort();
	for (size_t i = 0; i < n.n_integrations; i++)
		if (!n.integrations[i].id || !n.integrations[i].provider)
			abort();
	config_nango_clear(&n);

	ret = config_parse_providers((const char *)data, size, "f.yaml", &p, err, sizeof(err));
	if ((ret == 0) != (p != NULL) || (ret && strncmp(err, "f.yaml:", 7) != 0))
		abort();
	for (size_t i = 0; p && i < p->n; i++)
		if (config_provider_find(p, p->items[i].name) != &p->items[i])
			abort();
	config_providers_free(p);

	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	ret = config_interpolate(text, lookup, NULL, &out, err, sizeof(err));
	if ((ret == 0) != (out != NULL))
		abort();
	free(out);
	free(text);
	return 0;
}
