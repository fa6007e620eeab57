/*
 * cli_new.c - `evscript new NAME [--event EVENT | --action] [--integration ID]
 *             [--dir DIR]`
 *
 * Writes a plugin project that builds, signs and tests against the
 * installed SDK as it is: NAME.c (an event script or an action, JSON with
 * json-c), CMakeLists.txt (evscript_add_plugin, signing when
 * EVSCRIPT_SIGN_KEY is set, a unit test on <evscript/testing.h> run by
 * ctest), test_NAME.c, a README saying how to build, test, run, sign,
 * deploy and list it in nango.yaml, and a connection.json for `evscript run`. The templates are below; @NAME@, @EVENT@,
 * @INTEGRATION@ and @KIND@ are replaced. Nothing is overwritten: the
 * directory must not exist.
 */
#include "cli_author.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dynbuf.h"
#include "status.h"
#include "util.h"

#define TEMPLATE_MAX (1u << 20)

static const char cmake_template[] =
	"cmake_minimum_required(VERSION 3.25)\n"
	"project(@NAME@ C)\n"
	"\n"
	"# The evscript SDK: configure with -DCMAKE_PREFIX_PATH=<evscript prefix> when it is\n"
	"# not installed in a standard place.\n"
	"find_package(evscript REQUIRED)\n"
	"find_package(PkgConfig REQUIRED)\n"
	"pkg_check_modules(JSONC REQUIRED IMPORTED_TARGET json-c)\n"
	"\n"
	"# -DEVSCRIPT_SIGN_KEY=<secret key> signs @NAME@.so after every build.\n"
	"set(EVSCRIPT_SIGN_KEY \"\" CACHE FILEPATH \"secret key that signs @NAME@.so after each build\")\n"
	"set(sign)\n"
	"if(EVSCRIPT_SIGN_KEY)\n"
	"  set(sign SIGN_KEY ${EVSCRIPT_SIGN_KEY})\n"
	"endif()\n"
	"evscript_add_plugin(@NAME@ VERSION 0.1.0 SOURCES @NAME@.c ${sign})\n"
	"target_link_libraries(@NAME@ PRIVATE PkgConfig::JSONC)\n"
	"\n"
	"# Unit tests with the SDK's fake host: `ctest`, no daemon needed.\n"
	"enable_testing()\n"
	"add_executable(test_@NAME@ test_@NAME@.c @NAME@.c)\n"
	"target_compile_definitions(test_@NAME@ PRIVATE EVS_PLUGIN_NAME=\"@NAME@\" EVS_PLUGIN_VERSION=\"0.1.0\")\n"
	"target_link_libraries(test_@NAME@ PRIVATE evscript::testing PkgConfig::JSONC)\n"
	"add_test(NAME test_@NAME@ COMMAND test_@NAME@)\n";

static const char event_source[] =
	"/*\n"
	" * @NAME@: an evscript event script, run on @EVENT@.\n"
	" * The host functions are described in <evscript/sdk.h>.\n"
	" */\n"
	"#include <evscript/sdk.h>\n"
	"\n"
	"#include <json-c/json.h>\n"
	"\n"
	"EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION); /* defined by evscript_add_plugin() */\n"
	"\n"
	"int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)\n"
	"{\n"
	"\tstruct json_object *update;\n"
	"\tint ret;\n"
	"\n"
	"\thost->log(ctx, EVS_LOG_INFO, \"%s for connection %s\", event->name, event->connection_id);\n"
	"\tupdate = json_object_new_object();\n"
	"\tjson_object_object_add(update, \"@NAME@_last_event\", json_object_new_string(event->name));\n"
	"\tret = host->update_metadata(ctx, json_object_to_json_string_ext(update, JSON_C_TO_STRING_PLAIN));\n"
	"\tjson_object_put(update);\n"
	"\tif (ret != EVS_OK) {\n"
	"\t\thost->set_error(ctx, \"metadata not updated: %s\", evs_strerror(ret));\n"
	"\t\treturn 1; /* non-zero: the execution failed */\n"
	"\t}\n"
	"\treturn 0;\n"
	"}\n";

static const char action_source[] =
	"/*\n"
	" * @NAME@: an evscript action. Input {\"name\": \"...\"}; output {\"greeting\": \"hello, NAME\"}.\n"
	" * The host functions are described in <evscript/sdk.h>.\n"
	" */\n"
	"#include <evscript/sdk.h>\n"
	"\n"
	"#include <json-c/json.h>\n"
	"#include <stdio.h>\n"
	"#include <string.h>\n"
	"\n"
	"EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION); /* defined by evscript_add_plugin() */\n"
	"\n"
	"int run_action(const struct evs_host *host, struct evs_ctx *ctx, const char *input_json, char **output_json)\n"
	"{\n"
	"\tstruct json_object *input = json_tokener_parse(input_json), *name = NULL, *out;\n"
	"\tchar greeting[300];\n"
	"\n"
	"\tif (!json_object_object_get_ex(input, \"name\", &name) || !json_object_is_type(name, json_type_string)) {\n"
	"\t\tjson_object_put(input);\n"
	"\t\thost->set_error(ctx, \"the input needs a \\\"name\\\" string\");\n"
	"\t\treturn 1;\n"
	"\t}\n"
	"\tsnprintf(greeting, sizeof(greeting), \"hello, %s\", json_object_get_string(name));\n"
	"\tjson_object_put(input);\n"
	"\tout = json_object_new_object();\n"
	"\tjson_object_object_add(out, \"greeting\", json_object_new_string(greeting));\n"
	"\t*output_json = strdup(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN)); /* the host frees it */\n"
	"\tjson_object_put(out);\n"
	"\thost->log(ctx, EVS_LOG_INFO, \"%s\", greeting);\n"
	"\treturn *output_json ? 0 : 1;\n"
	"}\n";

static const char test_head[] =
	"/* Unit tests for @NAME@ with the SDK's fake host (<evscript/testing.h>). */\n"
	"#include <evscript/testing.h>\n"
	"\n"
	"#include <stdio.h>\n"
	"#include <stdlib.h>\n"
	"#include <string.h>\n"
	"\n"
	"static int failures;\n"
	"#define CHECK(cond) \\\n"
	"\tdo { \\\n"
	"\t\tif (!(cond)) { \\\n"
	"\t\t\tfprintf(stderr, \"%s:%d: failed: %s\\n\", __FILE__, __LINE__, #cond); \\\n"
	"\t\t\tfailures++; \\\n"
	"\t\t} \\\n"
	"\t} while (0)\n"
	"\n";

static const char event_test[] =
	"int main(void)\n"
	"{\n"
	"\tstruct evs_test *t = evs_test_new();\n"
	"\n"
	"\tCHECK(t != NULL);\n"
	"\tCHECK(evs_test_set_connection(t, \"{\\\"connection_id\\\":\\\"conn-1\\\",\\\"provider_config_key\\\":\\\"@INTEGRATION@\\\"}\") == 0);\n"
	"\tCHECK(evs_test_run_event(t, on_event, \"@EVENT@\") == 0);\n"
	"\tCHECK(evs_test_error(t) == NULL);\n"
	"\tCHECK(evs_test_logged(t, \"@EVENT@ for connection conn-1\"));\n"
	"\tCHECK(strcmp(evs_test_metadata(t), \"{\\\"@NAME@_last_event\\\":\\\"@EVENT@\\\"}\") == 0);\n"
	"\tevs_test_free(t);\n"
	"\tprintf(\"%s\\n\", failures ? \"FAILED\" : \"ok\");\n"
	"\treturn failures ? 1 : 0;\n"
	"}\n";

static const char action_test[] =
	"int main(void)\n"
	"{\n"
	"\tstruct evs_test *t = evs_test_new();\n"
	"\tchar *output = NULL;\n"
	"\n"
	"\tCHECK(t != NULL);\n"
	"\tCHECK(evs_test_run_action(t, run_action, \"{\\\"name\\\":\\\"octo\\\"}\", &output) == 0);\n"
	"\tCHECK(output && strcmp(output, \"{\\\"greeting\\\":\\\"hello, octo\\\"}\") == 0);\n"
	"\tCHECK(evs_test_logged(t, \"hello, octo\"));\n"
	"\tfree(output);\n"
	"\toutput = NULL;\n"
	"\tCHECK(evs_test_run_action(t, run_action, \"{}\", &output) == 1);\n"
	"\tCHECK(evs_test_error(t) && strstr(evs_test_error(t), \"name\"));\n"
	"\tfree(output);\n"
	"\tevs_test_free(t);\n"
	"\tprintf(\"%s\\n\", failures ? \"FAILED\" : \"ok\");\n"
	"\treturn failures ? 1 : 0;\n"
	"}\n";

static const char connection_template[] =
	"{\n"
	"    \"connection_id\": \"test-connection\",\n"
	"    \"provider_config_key\": \"@INTEGRATION@\",\n"
	"    \"provider\": \"@INTEGRATION@\",\n"
	"    \"credentials\": {\"type\": \"NONE\"},\n"
	"    \"connection_config\": {},\n"
	"    \"metadata\": {}\n"
	"}\n";

static const char readme_template[] =
	"# @NAME@\n"
	"\n"
	"An evscript @KIND@, made by `evscript new`. Its code is `@NAME@.c`; the SDK's manual is\n"
	"`<evscript/sdk.h>` and evscript's `docs/plugins.md`.\n"
	"\n"
	"Build and test (the unit test runs the plugin against the SDK's fake host, `<evscript/testing.h>`;\n"
	"no daemon needed):\n"
	"\n"
	"```sh\n"
	"cmake -S . -B build -DCMAKE_PREFIX_PATH=<evscript prefix> -DEVSCRIPT_SIGN_KEY=$PWD/release.key\n"
	"cmake --build build && ctest --test-dir build --output-on-failure\n"
	"```\n"
	"\n"
	"Make the signing key once with `evscript keygen -p release.pub -s release.key` and put `release.pub`\n"
	"in the daemon's `trusted_keys_dir`. The build signs `build/@NAME@.so` after each build (or sign it\n"
	"yourself: `evscript sign -s release.key -m build/@NAME@.so`).\n"
	"\n"
	"Run it once locally, without a daemon, with the real host functions (proxy included), on the\n"
	"connection in `connection.json` (set its `provider` to the name in your providers catalogue and its\n"
	"`credentials` to test ones; `--record DIR` saves the provider's answers, `--mock DIR` replays them):\n"
	"\n"
	"```sh\n"
	"evscript run build/@NAME@.so @RUN_ARGS@--connection connection.json --providers providers.yaml\n"
	"```\n"
	"\n"
	"List it in the daemon's `nango.yaml`:\n"
	"\n"
	"```yaml\n"
	"integrations:\n"
	"    @INTEGRATION@:\n"
	"@NANGO@"
	"```\n"
	"\n"
	"Deploy it (signs, copies both files atomically, reloads, prints the outcome):\n"
	"\n"
	"```sh\n"
	"EVSCRIPT_SECRET_KEY=... evscript deploy build/@NAME@.so --sign release.key \\\n"
	"    --plugin-dir \"$(pkg-config --variable=plugindir evscript-sdk)\" --reload http://127.0.0.1:3003\n"
	"```\n"
	"\n"
	"Raise `VERSION` in `CMakeLists.txt` for every build you deploy: the daemon refuses other bytes\n"
	"under a version it has accepted (`dev_accept_rebuilds: true` relaxes that on a development host).\n";

struct scaffold {
	const char *name, *event, *integration, *dir;
	bool action;
	char nango[256], run_args[128];
};

/* text with every @KEY@ replaced, written to dir/file. 0 or EXIT_FAILURE. */
static int write_file(const struct scaffold *s, const char *file, const char *const *parts, size_t n)
{
	const char *vars[][2] = {
		{"@NAME@", s->name}, {"@EVENT@", s->event}, {"@INTEGRATION@", s->integration},
		{"@KIND@", s->action ? "action" : "event script"}, {"@NANGO@", s->nango},
		{"@RUN_ARGS@", s->run_args},
	};
	struct dynbuf b;
	char *path = NULL;
	int ret = 0;

	dynbuf_init(&b, TEMPLATE_MAX, 0);
	for (size_t i = 0; i < n; i++) {
		for (const char *p = parts[i]; *p && ret == 0;) {
			size_t k, len = 0;

			for (k = 0; k < sizeof(vars) / sizeof(vars[0]); k++)
				if (strncmp(p, vars[k][0], len = strlen(vars[k][0])) == 0)
					break;
			if (k < sizeof(vars) / sizeof(vars[0])) {
				ret = dynbuf_add_str(&b, vars[k][1]);
				p += len;
			} else {
				ret = dynbuf_add(&b, p++, 1);
			}
		}
	}
	if (ret == 0 && asprintf(&path, "%s/%s", s->dir, file) < 0) {
		path = NULL;
		ret = STATUS_ENOMEM;
	}
	if (ret == 0)
		ret = util_write_file_atomic(path, dynbuf_str(&b), dynbuf_len(&b), 0644);
	if (ret)
		fprintf(stderr, "evscript new: %s/%s: %s\n", s->dir, file, status_str(ret));
	free(path);
	dynbuf_free(&b);
	return ret ? EXIT_FAILURE : 0;
}

static const char usage[] =
	"usage: evscript new NAME [--event EVENT | --action] [--integration ID] [--dir DIR]\n"
	"  writes DIR (default ./NAME): NAME.c, CMakeLists.txt, test_NAME.c, README.md and\n"
	"  connection.json, a plugin project that builds, signs and tests against the\n"
	"  installed SDK.\n"
	"  EVENT: post-connection-creation (default), pre-connection-deletion, validate-connection.\n";

static int parse(int argc, char **argv, struct scaffold *s)
{
	const struct cli_option opts[] = {
		{"event", 'e', true, &s->event, NULL, NULL}, {"action", 'a', false, NULL, &s->action, NULL},
		{"integration", 'i', true, &s->integration, NULL, NULL}, {"dir", 'd', true, &s->dir, NULL, NULL},
	};
	int ret = cli_options(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), s, usage);

	if (ret)
		return ret;
	if (optind + 1 != argc)
		return cli_usage_error("new", usage, NULL);
	s->name = argv[optind];
	if (s->action && s->event)
		return cli_usage_error("new", usage, "give --event or --action, not both");
	return 0;
}

static bool valid_event(const char *e)
{
	return strcmp(e, "post-connection-creation") == 0 || strcmp(e, "pre-connection-deletion") == 0 ||
	       strcmp(e, "validate-connection") == 0;
}

int cmd_new(int argc, char **argv)
{
	struct scaffold s = {.integration = "my-integration"};
	char file[300];
	int status = parse(argc, argv, &s);

	if (status)
		return status < 0 ? 0 : status;
	if (!s.event)
		s.event = s.action ? "" : "post-connection-creation";
	if (!util_valid_name(s.name) || strlen(s.name) > 200 || !util_valid_name(s.integration)) {
		fprintf(stderr, "evscript new: '%s': names are ^[a-zA-Z0-9_-]+$\n",
			util_valid_name(s.name) ? s.integration : s.name);
		return CLI_EXIT_USAGE;
	}
	if (!s.action && !valid_event(s.event)) {
		fprintf(stderr, "evscript new: unknown event '%s' (post-connection-creation, pre-connection-deletion "
			"or validate-connection)\n", s.event);
		return CLI_EXIT_USAGE;
	}
	if (!s.dir)
		s.dir = s.name;
	if (mkdir(s.dir, 0755) != 0) {
		fprintf(stderr, "evscript new: %s: %s\n", s.dir,
			errno == EEXIST ? "already exists: nothing written" : strerror(errno));
		return EXIT_FAILURE;
	}
	if (s.action)
		snprintf(s.nango, sizeof(s.nango), "        actions:\n            %s:\n"
			 "                description: what %s does\n", s.name, s.name);
	else
		snprintf(s.nango, sizeof(s.nango), "        on-events:\n            %s:\n                - %s\n",
			 s.event, s.name);
	if (s.action)
		snprintf(s.run_args, sizeof(s.run_args), "--action --input '{\"name\":\"octo\"}' ");
	else
		snprintf(s.run_args, sizeof(s.run_args), "--event %s ", s.event);
	{
		const char *src[] = {s.action ? action_source : event_source};
		const char *cm[] = {cmake_template};
		const char *test[] = {test_head, s.action ? action_test : event_test};
		const char *readme[] = {readme_template};
		const char *conn[] = {connection_template};

		snprintf(file, sizeof(file), "%s.c", s.name);
		status = write_file(&s, file, src, 1);
		if (status == 0)
			status = write_file(&s, "CMakeLists.txt", cm, 1);
		snprintf(file, sizeof(file), "test_%s.c", s.name);
		if (status == 0)
			status = write_file(&s, file, test, 2);
		if (status == 0)
			status = write_file(&s, "README.md", readme, 1);
		if (status == 0)
			status = write_file(&s, "connection.json", conn, 1);
	}
	if (status == 0)
		printf("wrote %s/: %s.c, CMakeLists.txt, test_%s.c, README.md, connection.json (%s%s)\n", s.dir, s.name, s.name,
		       s.action ? "action" : "event script for ", s.event);
	return status;
}
