/*
 * test_config.c - the host file, nango.yaml, providers.yaml, the loader and
 * templates. Error tests check the exact "FILE:LINE:COLUMN: ..." prefix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#ifndef EVS_SOURCE_DIR
#error EVS_SOURCE_DIR must be defined
#endif

static char err[CONFIG_ERR_MAX];

static struct config_host *host_ok(const char *yaml)
{
	struct config_host *h = NULL;
	int ret = config_parse_host(yaml, strlen(yaml), "evscript.yaml", &h, err, sizeof(err));

	if (ret)
		fail_msg("unexpected error %d: %s", ret, err);
	assert_non_null(h);
	return h;
}

/* Parses yaml as a host file, expects code, and a message starting with
 * prefix and containing needle. */
static void host_err(const char *yaml, int code, const char *prefix, const char *needle)
{
	struct config_host *h = (void *)1;
	int ret = config_parse_host(yaml, strlen(yaml), "evscript.yaml", &h, err, sizeof(err));

	if (ret != code)
		fail_msg("expected %d, got %d: %s", code, ret, err);
	assert_null(h);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("expected prefix '%s', got '%s'", prefix, err);
	if (needle && !strstr(err, needle))
		fail_msg("expected '%s' in '%s'", needle, err);
}

static void nango_err(const char *yaml, const char *prefix, const char *needle)
{
	struct config_nango n;
	int ret = config_parse_nango(yaml, strlen(yaml), "nango.yaml", &n, err, sizeof(err));

	if (ret >= 0)
		fail_msg("expected an error for:\n%s", yaml);
	assert_int_equal(n.n_integrations, 0);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("expected prefix '%s', got '%s'", prefix, err);
	if (needle && !strstr(err, needle))
		fail_msg("expected '%s' in '%s'", needle, err);
}

/* ---------------------------------------------------------------- host */

static void test_defaults(void **state)
{
	struct config_host *h;

	(void)state;
	h = host_ok("");
	assert_string_equal(h->listen, "127.0.0.1:3003");
	assert_string_equal(h->listen_host, "127.0.0.1");
	assert_int_equal(h->listen_port, 3003);
	assert_null(h->secret_key);
	assert_string_equal(h->store, "sqlite:./evscript.db");
	assert_int_equal(h->store_kind, CONFIG_STORE_SQLITE);
	assert_string_equal(h->store_path, "./evscript.db");
	assert_null(h->host_id); /* the store takes the machine's host name */
	assert_int_equal(h->host_timeout_s, 30);
	assert_string_equal(h->plugin_dir, "./plugins.d");
	assert_string_equal(h->trusted_keys_dir, "./keys");
	assert_int_equal(h->revoked_keys.n, 0);
	assert_false(h->allow_downgrade);
	assert_string_equal(h->providers, "./providers.yaml");
	assert_int_equal(h->deadline_s, 300);
	assert_int_equal(h->environment.n, 0);
	assert_string_equal(h->webhook_base_url, "http://127.0.0.1:3003/webhook");
	assert_true(h->webhook_base_url_is_default);
	assert_null(h->nango_yaml);
	assert_int_equal(h->execution, CONFIG_EXEC_ISOLATED);
	assert_int_equal(h->max_concurrency, 8);
	assert_int_equal(h->log_lines_max, 1000);
	assert_int_equal(h->log_bytes_max, 1u << 20);
	assert_int_equal(h->memory_limit_mb, 512);
	assert_int_equal(h->cpu_limit_s, 0);
	assert_int_equal(h->drain_deadline_s, 30);
	assert_int_equal(h->log_format, CONFIG_LOG_TEXT);
	assert_string_equal(h->sandbox_user, "nobody");
	assert_int_equal(h->sandbox_user_line, 0);
	assert_int_equal(h->max_processes, 16);
	assert_false(h->core_dumps);
	assert_int_equal(h->n_scripts, 0);
	assert_int_equal(h->nango.n_integrations, 0);
	assert_null(h->catalogue);
	config_host_free(h);

	/* A key with no value keeps its default. */
	h = host_ok("listen:\ndeadline_s: ~\nenvironment:\n");
	assert_string_equal(h->listen, "127.0.0.1:3003");
	assert_int_equal(h->deadline_s, 300);
	config_host_free(h);
}

static const char full_host[] =
	"listen: '[::1]:8080'\n"
	"secret_key: s3cret\n"
	"store: sqlite:/var/lib/evscript/db.sqlite\n"
	"plugin_dir: /opt/plugins\n"
	"trusted_keys_dir: keys.d\n"
	"revoked_keys: [0123456789abcdef, FEDCBA9876543210]\n"
	"allow_downgrade: true\n"
	"providers: cat/providers.yaml\n"
	"deadline_s: 60\n"
	"environment:\n"
	"  REGION: eu\n"
	"  PORT: 8080\n"
	"  EMPTY:\n"
	"webhook_base_url: https://hooks.example.com/in/\n"
	"execution: in-process\n"
	"max_concurrency: 32\n"
	"log_lines_max: 200\n"
	"log_bytes_max: 65536\n"
	"memory_limit_mb: 0\n"
	"cpu_limit_s: 10\n"
	"drain_deadline_s: 5\n"
	"log_format: json\n"
	"scripts:\n"
	"  slow-sync: {deadline_s: 900}\n"
	"  risky:\n"
	"    execution: isolated\n"
	"integrations:\n"
	"  demo:\n"
	"    provider: local-test\n"
	"    execution: isolated\n"
	"    on-events:\n"
	"      post-connection-creation: [hello]\n";

static void test_all_keys(void **state)
{
	struct config_host *h;
	const struct config_integration *demo;

	(void)state;
	h = host_ok(full_host);
	assert_string_equal(h->listen, "[::1]:8080");
	assert_string_equal(h->listen_host, "::1");
	assert_int_equal(h->listen_port, 8080);
	assert_string_equal(h->secret_key, "s3cret");
	assert_false(h->secret_key_from_env);
	assert_string_equal(h->store_path, "/var/lib/evscript/db.sqlite");
	assert_string_equal(h->plugin_dir, "/opt/plugins");
	assert_string_equal(h->trusted_keys_dir, "keys.d");
	assert_int_equal(h->revoked_keys.n, 2);
	assert_string_equal(h->revoked_keys.items[0], "0123456789ABCDEF");
	assert_string_equal(h->revoked_keys.items[1], "FEDCBA9876543210");
	assert_true(h->allow_downgrade);
	assert_string_equal(h->providers, "cat/providers.yaml");
	assert_int_equal(h->deadline_s, 60);
	assert_int_equal(h->environment.n, 3);
	assert_string_equal(config_map_get(&h->environment, "REGION"), "eu");
	assert_string_equal(config_map_get(&h->environment, "PORT"), "8080");
	assert_string_equal(config_map_get(&h->environment, "EMPTY"), "");
	assert_null(config_map_get(&h->environment, "HOME"));
	assert_string_equal(h->webhook_base_url, "https://hooks.example.com/in");
	assert_false(h->webhook_base_url_is_default);
	assert_int_equal(h->execution, CONFIG_EXEC_IN_PROCESS);
	assert_int_equal(h->max_concurrency, 32);
	assert_int_equal(h->log_lines_max, 200);
	assert_int_equal(h->log_bytes_max, 65536);
	assert_int_equal(h->memory_limit_mb, 0);
	assert_int_equal(h->cpu_limit_s, 10);
	assert_int_equal(h->drain_deadline_s, 5);
	assert_int_equal(h->log_format, CONFIG_LOG_JSON);

	/* Overrides: script, then integration, then global. */
	demo = config_integration_find(h, "demo");
	assert_non_null(demo);
	assert_null(config_integration_find(h, "nope"));
	assert_int_equal(config_script_deadline(h, "slow-sync"), 900);
	assert_int_equal(config_script_deadline(h, "risky"), 60);
	assert_int_equal(config_script_deadline(h, "other"), 60);
	assert_int_equal(config_script_execution(h, NULL, "risky"), CONFIG_EXEC_ISOLATED);
	assert_int_equal(config_script_execution(h, NULL, "hello"), CONFIG_EXEC_IN_PROCESS);
	assert_int_equal(config_script_execution(h, demo, "hello"), CONFIG_EXEC_ISOLATED);
	assert_int_equal(config_script_execution(h, demo, "slow-sync"), CONFIG_EXEC_ISOLATED);
	assert_string_equal(config_execution_name(CONFIG_EXEC_IN_PROCESS), "in-process");
	config_host_free(h);

	h = host_ok("listen: 0.0.0.0:0\n");
	assert_int_equal(h->listen_port, 0);
	assert_string_equal(h->webhook_base_url, "http://0.0.0.0:0/webhook");
	config_host_free(h);
	h = host_ok("listen: localhost:65535\n");
	assert_string_equal(h->listen_host, "localhost");
	assert_int_equal(h->listen_port, 65535);
	config_host_free(h);
}

/* A PostgreSQL URL goes to the store as it is (no path to resolve). */
static void test_store_url(void **state)
{
	const char *urls[] = {"postgresql://evs:pw@db.example:5433/evscript?sslmode=require",
			      "postgres://evs@127.0.0.1/evscript"};
	struct config_host *h;

	(void)state;
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		char yaml[256];

		snprintf(yaml, sizeof(yaml), "store: %s\nhost_id: web-1\nhost_timeout_s: 5\n", urls[i]);
		h = host_ok(yaml);
		assert_int_equal(h->store_kind, CONFIG_STORE_URL);
		assert_string_equal(h->store, urls[i]);
		assert_null(h->store_path);
		assert_string_equal(h->host_id, "web-1");
		assert_int_equal(h->host_timeout_s, 5);
		config_host_free(h);
	}
}

static void test_host_errors(void **state)
{
	(void)state;
	/* libyaml's own syntax error, at its problem mark. */
	host_err("listen: 127.0.0.1:3003\nrevoked_keys: [a, b\n", CONFIG_ESYNTAX, "evscript.yaml:3:1: YAML syntax error:",
		 "flow sequence");
	host_err("a: b\n c: d\n", CONFIG_ESYNTAX, "evscript.yaml:2:3: YAML syntax error:", NULL);
	host_err("listen: \"127.0.0.1\xff\"\n", CONFIG_ESYNTAX, "evscript.yaml:1:19: YAML syntax error:", "UTF-8");
	host_err("listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n", CONFIG_EINVALID, "evscript.yaml:2:1:",
		 "second YAML document");
	/* Unknown keys: a typo is never silent. */
	host_err("listen: 127.0.0.1:3003\nplugins_dir: /x\n", CONFIG_EINVALID, "evscript.yaml:2:1:",
		 "unknown key 'plugins_dir', did you mean 'plugin_dir'?");
	host_err("frobnicate: 1\n", CONFIG_EINVALID, "evscript.yaml:1:1:", "unknown key 'frobnicate'");
	/* Duplicate keys, reported at the second one. */
	host_err("listen: 127.0.0.1:1\nstore: sqlite:x\nlisten: 127.0.0.1:2\n", CONFIG_EINVALID, "evscript.yaml:3:1:",
		 "duplicate key 'listen' (first at line 1)");
	host_err("environment:\n  A: 1\n  B: 2\n  A: 3\n", CONFIG_EINVALID, "evscript.yaml:4:3:", "duplicate key 'A'");
	/* nango_yaml and inline integrations. */
	host_err("nango_yaml: ./nango.yaml\nintegrations:\n  github: {}\n", CONFIG_EINVALID, "evscript.yaml:2:1:",
		 "both nango_yaml and an inline integrations key");
	/* listen. */
	host_err("listen: 127.0.0.1\n", CONFIG_EINVALID, "evscript.yaml:1:9:", "listen: bad address '127.0.0.1'");
	host_err("listen: 127.0.0.1:70000\n", CONFIG_EINVALID, "evscript.yaml:1:9:", "expected IPV4:PORT");
	/* the server binds numeric addresses and localhost only */
	host_err("listen: example.com:3003\n", CONFIG_EINVALID, "evscript.yaml:1:9:", "bad address 'example.com:3003'");
	host_err("listen: 'bad host:80'\n", CONFIG_EINVALID, "evscript.yaml:1:9:", "bad address");
	host_err("listen: '[::1:80'\n", CONFIG_EINVALID, "evscript.yaml:1:9:", "bad address");
	host_err("listen: [a, b]\n", CONFIG_EINVALID, "evscript.yaml:1:9:", "found a list");
	/* revoked keys. */
	host_err("revoked_keys:\n  - 0123456789ABCDEF\n  - 0123456789ABCDEG\n", CONFIG_EINVALID, "evscript.yaml:3:5:",
		 "bad key id '0123456789ABCDEG', expected 16 hexadecimal digits");
	host_err("revoked_keys: 0123456789ABCDEF\n", CONFIG_EINVALID, "evscript.yaml:1:15:", "expected a list of key ids");
	/* deadlines and numbers. */
	host_err("deadline_s: 0\n", CONFIG_EINVALID, "evscript.yaml:1:13:",
		 "deadline_s: expected a whole number from 1 to 86400, found '0'");
	host_err("deadline_s: 5m\n", CONFIG_EINVALID, "evscript.yaml:1:13:", "found '5m'");
	host_err("deadline_s: -1\n", CONFIG_EINVALID, "evscript.yaml:1:13:", "found '-1'");
	host_err("max_concurrency: 99999999999999999999999\n", CONFIG_EINVALID, "evscript.yaml:1:18:", NULL);
	host_err("scripts:\n  slow: {deadline_s: 100000}\n", CONFIG_EINVALID, "evscript.yaml:2:22:",
		 "scripts.slow.deadline_s");
	host_err("scripts:\n  slow: {timeout: 1}\n", CONFIG_EINVALID, "evscript.yaml:2:10:", "unknown key 'timeout'");
	host_err("scripts:\n  'bad name': {}\n", CONFIG_EINVALID, "evscript.yaml:2:3:", "bad script name");
	/* store. */
	host_err("store: mysql://u:pw@db/evscript\n", CONFIG_EINVALID, "evscript.yaml:1:8:",
		 "unsupported store 'mysql', expected sqlite:PATH or postgresql://");
	host_err("store: mysql://u:pw@db/evscript\n", CONFIG_EINVALID, "evscript.yaml:1:8:", NULL);
	assert_null(strstr(err, "pw@")); /* a URL may hold a password: never echoed */
	/* host_id and host_timeout_s. */
	host_err("host_id: 'a b'\n", CONFIG_EINVALID, "evscript.yaml:1:10:", "space or a control");
	host_err("host_id: ''\n", CONFIG_EINVALID, "evscript.yaml:1:10:", "1 to 255");
	host_err("host_timeout_s: 1\n", CONFIG_EINVALID, "evscript.yaml:1:17:", "host_timeout_s");
	host_err("store: 'sqlite:'\n", CONFIG_EINVALID, "evscript.yaml:1:8:", "empty path");
	/* types. */
	host_err("allow_downgrade: maybe\n", CONFIG_EINVALID, "evscript.yaml:1:18:", "expected true or false");
	host_err("plugin_dir: [a]\n", CONFIG_EINVALID, "evscript.yaml:1:13:", "plugin_dir: expected a string, found a list");
	host_err("environment: [A, B]\n", CONFIG_EINVALID, "evscript.yaml:1:14:", "expected a mapping");
	host_err("environment:\n  1BAD: x\n", CONFIG_EINVALID, "evscript.yaml:2:3:", "bad variable name '1BAD'");
	host_err("environment:\n  A: {b: c}\n", CONFIG_EINVALID, "evscript.yaml:2:6:", "environment.A: expected a string");
	host_err("execution: forked\n", CONFIG_EINVALID, "evscript.yaml:1:12:",
		 "unknown execution mode 'forked', expected isolated or in-process");
	host_err("log_format: xml\n", CONFIG_EINVALID, "evscript.yaml:1:13:", "expected text or json");
	host_err("webhook_base_url: ftp://x\n", CONFIG_EINVALID, "evscript.yaml:1:19:", "http:// or https://");
	host_err("- listen\n", CONFIG_EINVALID, "evscript.yaml:1:1:", "expected a mapping of settings");
	host_err("? [a]\n: b\n", CONFIG_EINVALID, "evscript.yaml:1:3:", "mapping key must be a string");
	host_err("listen: *nope\n", CONFIG_EINVALID, "evscript.yaml:1:9:", "alias *nope");
	host_err("listen: \"a\\0b\"\n", CONFIG_EINVALID, "evscript.yaml:1:9:", "NUL");
	/* Inline integrations errors carry positions too. */
	host_err("integrations:\n  demo:\n    on-events:\n      post-connection-creation: hello\n", CONFIG_EINVALID,
		 "evscript.yaml:4:33:", "expected a list of script names, found a string");
}

/* The sandbox keys: max_processes, sandbox_user (resolved by the loader,
 * below) and core_dumps. */
static void test_sandbox_keys(void **state)
{
	static const struct {
		const char *yaml, *at, *message;
	} refusals[] = {
		{"max_processes: 0\n", "evscript.yaml:1:16: ",
		 "max_processes: expected a whole number from 1 to 4096, found '0'"},
		{"max_processes: 4097\n", "evscript.yaml:1:16: ",
		 "max_processes: expected a whole number from 1 to 4096, found '4097'"},
		{"max_processes: [1]\n", "evscript.yaml:1:16: ",
		 "max_processes: expected a whole number from 1 to 4096, found a list"},
		{"sandbox_user: [a]\n", "evscript.yaml:1:15: ", "sandbox_user: expected a string, found a list"},
		{"core_dumps: maybe\n", "evscript.yaml:1:13: ", "core_dumps: expected true or false, found 'maybe'"},
		{"core_dump: true\n", "evscript.yaml:1:1: ",
		 "unknown key 'core_dump', did you mean 'core_dumps'? (keys: docs/config.md)"},
	};
	struct config_host *h;

	(void)state;
	h = host_ok("max_processes: 1\ncore_dumps: true\nsandbox_user: daemon\n");
	assert_int_equal(h->max_processes, 1);
	assert_true(h->core_dumps);
	assert_string_equal(h->sandbox_user, "daemon");
	assert_int_equal(h->sandbox_user_line, 3);
	assert_int_equal(h->sandbox_user_column, 15);
	config_host_free(h);
	h = host_ok("max_processes: 4096\ncore_dumps: off\n");
	assert_int_equal(h->max_processes, 4096);
	assert_false(h->core_dumps);
	config_host_free(h);
	/* With no value, each keeps its default. */
	h = host_ok("max_processes:\nsandbox_user: ~\ncore_dumps:\n");
	assert_int_equal(h->max_processes, 16);
	assert_string_equal(h->sandbox_user, "nobody");
	assert_int_equal(h->sandbox_user_line, 0);
	assert_false(h->core_dumps);
	config_host_free(h);

	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		char want[CONFIG_ERR_MAX];

		host_err(refusals[i].yaml, CONFIG_EINVALID, refusals[i].at, refusals[i].message);
		snprintf(want, sizeof(want), "%s%s", refusals[i].at, refusals[i].message);
		assert_string_equal(err, want); /* the whole message, to the byte */
	}
}

/* The first n cells of the Markdown table row at row into cells (trimmed,
 * "\|" unescaped); returns how many it found. */
static size_t md_cells(const char *row, char cells[][256], size_t n)
{
	size_t count = 0, len = 0;

	if (*row != '|')
		return 0;
	for (const char *p = row + 1; *p && *p != '\n' && count < n; p++) {
		if (*p == '|') {
			while (len > 0 && cells[count][len - 1] == ' ')
				len--;
			cells[count++][len] = '\0';
			len = 0;
			continue;
		}
		if (*p == '\\' && p[1] == '|')
			p++;
		if ((len > 0 || *p != ' ') && len < 255)
			cells[count][len++] = *p;
	}
	return count;
}

/* For a key whose docs type is "MIN..MAX": both ends are accepted and the
 * numbers just outside them refused, with the bounds in the message. */
static void check_bounds(const char *name, const char *type)
{
	unsigned long long min, max;
	char yaml[128], want[160];
	int end = 0;

	if (sscanf(type, "%llu..%llu%n", &min, &max, &end) != 2 || type[end] != '\0')
		return;
	snprintf(want, sizeof(want), "%s: expected a whole number from %llu to %llu", name, min, max);
	snprintf(yaml, sizeof(yaml), "%s: %llu\n", name, min);
	config_host_free(host_ok(yaml));
	snprintf(yaml, sizeof(yaml), "%s: %llu\n", name, max);
	config_host_free(host_ok(yaml));
	snprintf(yaml, sizeof(yaml), "%s: %llu\n", name, max + 1);
	host_err(yaml, CONFIG_EINVALID, "evscript.yaml:1:", want);
	if (min > 0) {
		snprintf(yaml, sizeof(yaml), "%s: %llu\n", name, min - 1);
		host_err(yaml, CONFIG_EINVALID, "evscript.yaml:1:", want);
	}
}

/* docs/config.md's key table is host.c's table: the same keys in the same
 * order, with the same type and default cells, and the bounds it gives a
 * number are the parser's. A new key needs both; neither can drift. */
static void test_docs_keys(void **state)
{
	static const char header[] = "| key | type | default | meaning |\n";
	char *data, cells[3][256], want[300];
	const char *p;
	size_t i = 0, line;
	long len;
	FILE *f;

	(void)state;
	f = fopen(EVS_SOURCE_DIR "/docs/config.md", "r");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	rewind(f);
	data = calloc(1, (size_t)len + 1);
	assert_non_null(data);
	assert_int_equal(fread(data, 1, (size_t)len, f), (size_t)len);
	fclose(f);

	p = strstr(data, "\n## The host file\n");
	assert_non_null(p);
	p = strstr(p, header);
	if (!p)
		fail_msg("docs/config.md: no table '%.*s' under '## The host file'", (int)strlen(header) - 1, header);
	p = strchr(p + strlen(header), '\n'); /* the |---| line */
	assert_non_null(p);
	for (p++; p && *p == '|'; i++) {
		struct config_host_key_doc doc = config_host_key_doc(i);

		line = 1;
		for (const char *q = data; q < p; q++)
			line += *q == '\n';
		if (md_cells(p, cells, 3) != 3)
			fail_msg("docs/config.md:%zu: expected | key | type | default | meaning |", line);
		if (!doc.name)
			fail_msg("docs/config.md:%zu: key %s is not in host.c's host_keys[]", line, cells[0]);
		snprintf(want, sizeof(want), "`%s`", doc.name);
		if (strcmp(cells[0], want) != 0)
			fail_msg("docs/config.md:%zu: key %s, host.c's host_keys[] has %s here", line, cells[0], want);
		if (strcmp(cells[1], doc.type) != 0)
			fail_msg("docs/config.md:%zu: %s: type '%s', host.c has '%s'", line, want, cells[1], doc.type);
		if (strcmp(cells[2], doc.default_value) != 0)
			fail_msg("docs/config.md:%zu: %s: default '%s', host.c has '%s'", line, want, cells[2],
				 doc.default_value);
		check_bounds(doc.name, doc.type);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	if (i != config_host_key_count())
		fail_msg("docs/config.md lists %zu host keys, host.c's host_keys[] has %zu (the next: %s)", i,
			 config_host_key_count(), config_host_key_doc(i).name);
	assert_null(config_host_key_doc(config_host_key_count()).name);
	free(data);
}

static void test_anchors(void **state)
{
	struct config_host *h;

	(void)state;
	h = host_ok("environment: &env\n  A: one\nintegrations:\n"
		    "  a:\n    on-events:\n      post-connection-creation: &s [x, y]\n"
		    "  b:\n    on-events:\n      pre-connection-deletion: *s\n");
	assert_int_equal(h->environment.n, 1);
	assert_int_equal(h->nango.n_integrations, 2);
	assert_int_equal(h->nango.integrations[1].events[CONFIG_EVENT_PRE_CONNECTION_DELETION].n, 2);
	assert_string_equal(h->nango.integrations[1].events[CONFIG_EVENT_PRE_CONNECTION_DELETION].items[1], "y");
	config_host_free(h);
	/* An anchor cannot be used inside its own node (no cycles). */
	host_err("scripts: &a {x: *a}\n", CONFIG_EINVALID, "evscript.yaml:1:17:", "alias *a names no anchor");
	/* Nesting is capped. */
	{
		char deep[400];
		size_t i;

		for (i = 0; i < 100; i++)
			deep[i] = '[';
		deep[i] = '\0';
		host_err(deep, CONFIG_ETOOLARGE, "evscript.yaml:1:65:", "nesting deeper than 64");
	}
}

/* --------------------------------------------------------------- nango */

/* A nango.yaml in the shape of a real Nango project: syncs, actions with
 * all their fields, v2 on-events, legacy scripts, top-level models. */
static const char sample_nango[] =
	"integrations:\n"
	"    github:\n"
	"        syncs:\n"
	"            issues:\n"
	"                runs: every hour\n"
	"                description: |\n"
	"                    Fetches the issues of every repository the\n"
	"                    connection can see.\n"
	"                output: GithubIssue\n"
	"                sync_type: incremental\n"
	"                track_deletes: false\n"
	"                auto_start: true\n"
	"                scopes:\n"
	"                    - repo\n"
	"                endpoint:\n"
	"                    method: GET\n"
	"                    path: /issues\n"
	"                    group: Issues\n"
	"                version: 1.2.0\n"
	"        actions:\n"
	"            create-webhook:\n"
	"                description: Creates a repository webhook\n"
	"                input: CreateWebhookInput\n"
	"                output: WebhookResult\n"
	"                endpoint: POST /webhooks\n"
	"                scopes: admin:repo_hook\n"
	"                version: 0.1.0\n"
	"            list-repos:\n"
	"                output: Repo[]\n"
	"                endpoint:\n"
	"                    method: GET\n"
	"                    path: /repos\n"
	"        on-events:\n"
	"            post-connection-creation:\n"
	"                - github-webhooks\n"
	"                - welcome_note\n"
	"            pre-connection-deletion:\n"
	"                - github-webhooks\n"
	"    hubspot:\n"
	"        post-connection-scripts:\n"
	"            - fetch-owner\n"
	"        syncs:\n"
	"            contacts:\n"
	"                runs: every day\n"
	"                output: Contact\n"
	"    acme-crm:\n"
	"        provider: local-test\n"
	"        on-events:\n"
	"            validate-connection: [validate-api-key]\n"
	"            pre-connection-deletion: []\n"
	"    bare:\n"
	"models:\n"
	"    GithubIssue:\n"
	"        id: integer\n"
	"        title: string\n"
	"        labels: string[]\n"
	"    CreateWebhookInput:\n"
	"        owner: string\n"
	"        repo: string\n"
	"    WebhookResult:\n"
	"        id: number\n"
	"    Repo:\n"
	"        name: string\n"
	"    Contact:\n"
	"        __extends: Person\n"
	"        email: string | null\n";

static void test_nango_sample(void **state)
{
	struct config_nango n;
	const struct config_integration *gh, *hs, *acme, *bare;
	int ret;

	(void)state;
	ret = config_parse_nango(sample_nango, strlen(sample_nango), "nango.yaml", &n, err, sizeof(err));
	if (ret)
		fail_msg("%s", err);
	assert_int_equal(n.n_integrations, 4);
	gh = &n.integrations[0];
	hs = &n.integrations[1];
	acme = &n.integrations[2];
	bare = &n.integrations[3];
	assert_string_equal(gh->id, "github");
	assert_string_equal(gh->provider, "github"); /* default: the id */
	assert_int_equal(gh->line, 2);
	assert_int_equal(gh->column, 5);
	assert_int_equal(gh->events[CONFIG_EVENT_POST_CONNECTION_CREATION].n, 2);
	assert_string_equal(gh->events[CONFIG_EVENT_POST_CONNECTION_CREATION].items[0], "github-webhooks");
	assert_string_equal(gh->events[CONFIG_EVENT_POST_CONNECTION_CREATION].items[1], "welcome_note");
	assert_int_equal(gh->events[CONFIG_EVENT_PRE_CONNECTION_DELETION].n, 1);
	assert_int_equal(gh->events[CONFIG_EVENT_VALIDATE_CONNECTION].n, 0);
	assert_int_equal(gh->actions.n, 2);
	assert_string_equal(gh->actions.items[0], "create-webhook");
	assert_string_equal(gh->actions.items[1], "list-repos");
	assert_int_equal(gh->execution, CONFIG_EXEC_INHERIT);

	/* Legacy post-connection-scripts land on post-connection-creation. */
	assert_string_equal(hs->id, "hubspot");
	assert_int_equal(hs->events[CONFIG_EVENT_POST_CONNECTION_CREATION].n, 1);
	assert_string_equal(hs->events[CONFIG_EVENT_POST_CONNECTION_CREATION].items[0], "fetch-owner");

	assert_string_equal(acme->provider, "local-test");
	assert_int_equal(acme->provider_line, 47);
	assert_int_equal(acme->provider_column, 19);
	assert_string_equal(acme->events[CONFIG_EVENT_VALIDATE_CONNECTION].items[0], "validate-api-key");
	assert_int_equal(acme->events[CONFIG_EVENT_PRE_CONNECTION_DELETION].n, 0);

	assert_string_equal(bare->id, "bare");
	assert_string_equal(bare->provider, "bare");

	/* Ignored keys: once each, with their position. */
	assert_int_equal(n.ignored.n, 3);
	assert_string_equal(n.ignored.items[0],
			    "nango.yaml:3:9: ignored: integrations.github.syncs (evscript runs event scripts and actions only)");
	assert_string_equal(n.ignored.items[1],
			    "nango.yaml:42:9: ignored: integrations.hubspot.syncs (evscript runs event scripts and actions only)");
	assert_non_null(strstr(n.ignored.items[2], "nango.yaml:52:1: ignored: models"));
	config_nango_clear(&n);
	config_nango_clear(&n); /* idempotent */
}

static void test_nango_v1(void **state)
{
	/* Nango's older format: scripts directly under the integration. */
	static const char v1[] = "integrations:\n  demo-github-integration:\n    github-issue-example:\n"
				 "      type: sync\n      runs: every half hour\n      returns:\n        - GithubIssue\n"
				 "    github-write-action:\n      type: action\n      returns: boolean\n"
				 "models:\n  GithubIssue:\n    id: integer\n";
	struct config_nango n;

	(void)state;
	assert_int_equal(config_parse_nango(v1, strlen(v1), "nango.yaml", &n, err, sizeof(err)), 0);
	assert_int_equal(n.n_integrations, 1);
	assert_int_equal(n.ignored.n, 3);
	assert_non_null(strstr(n.ignored.items[0], "integrations.demo-github-integration.github-issue-example"));
	config_nango_clear(&n);

	assert_int_equal(config_parse_nango("", 0, "nango.yaml", &n, err, sizeof(err)), 0);
	assert_int_equal(n.n_integrations, 0);
	config_nango_clear(&n);
}

static void test_nango_errors(void **state)
{
	(void)state;
	nango_err("integrations:\n  github:\n    on-events:\n      post-connection-created: [a]\n", "nango.yaml:4:7:",
		  "unknown event 'post-connection-created', expected post-connection-creation, "
		  "pre-connection-deletion or validate-connection");
	nango_err("integrations:\n  github:\n    on-events:\n      post-connection-creation: [ok, 'not ok']\n",
		  "nango.yaml:4:38:", "bad script name 'not ok'");
	nango_err("integrations:\n  github:\n    on-events:\n      post-connection-creation: [a, a]\n",
		  "nango.yaml:4:37:", "listed twice");
	nango_err("integrations:\n  github:\n    on-events:\n      post-connection-creation: [[a]]\n",
		  "nango.yaml:4:34:", "expected a script name, found a list");
	nango_err("integrations:\n  github:\n    on-events:\n      post-connection-creation: {a: b}\n",
		  "nango.yaml:4:33:", "expected a list of script names, found a mapping");
	nango_err("integrations:\n  github:\n    on-events: [a]\n", "nango.yaml:3:16:", "expected a mapping of event names");
	nango_err("integrations:\n  github:\n    on-events:\n      post-connection-creation: [a]\n"
		  "    post-connection-scripts: [b]\n",
		  "nango.yaml:5:5:", "both on-events (line 3) and post-connection-scripts");
	nango_err("integrations:\n  github:\n    post-connection-scripts: [b]\n    on-events: {}\n",
		  "nango.yaml:4:5:", "both on-events and post-connection-scripts (line 3)");
	nango_err("integrations:\n  github:\n    post-connection-scripts: b\n", "nango.yaml:3:30:",
		  "integrations.github.post-connection-scripts: expected a list of script names");
	nango_err("integrations:\n  github:\n    actions: [a]\n", "nango.yaml:3:14:", "expected a mapping of action names");
	nango_err("integrations:\n  github:\n    actions:\n      'bad action': {}\n", "nango.yaml:4:7:", "bad action name");
	nango_err("integrations:\n  'git hub': {}\n", "nango.yaml:2:3:", "bad integration id");
	nango_err("integrations:\n  github:\n    provider: [x]\n", "nango.yaml:3:15:", "expected a string");
	nango_err("integrations:\n  github:\n    provider: 'a b'\n", "nango.yaml:3:15:", "bad provider name");
	nango_err("integrations:\n  github:\n    execution: threads\n", "nango.yaml:3:16:", "unknown execution mode");
	nango_err("integrations:\n  github: [x]\n", "nango.yaml:2:11:", "integrations.github: expected a mapping");
	nango_err("integrations: [github]\n", "nango.yaml:1:15:", "expected a mapping of integration ids");
	nango_err("integrations:\n  github: {}\n  github: {}\n", "nango.yaml:3:3:", "duplicate key 'github'");
	nango_err("integrations:\n  github:\n    syncs: {a: [}\n", "nango.yaml:3:17:", "YAML syntax error");

	/* Lists are capped. */
	{
		char *big = malloc(16384);
		size_t off;
		struct config_nango n;

		off = (size_t)sprintf(big, "integrations:\n  github:\n    on-events:\n      post-connection-creation:\n");
		for (int i = 0; i <= CONFIG_SCRIPTS_MAX; i++)
			off += (size_t)sprintf(big + off, "        - s%d\n", i);
		assert_int_equal(config_parse_nango(big, off, "nango.yaml", &n, err, sizeof(err)), CONFIG_ETOOLARGE);
		assert_non_null(strstr(err, "nango.yaml:261:11: integrations.github.on-events.post-connection-creation: "
					    "more than 256 scripts"));
		free(big);
	}
}

/* ----------------------------------------------------------- providers */

static struct config_providers *providers_ok(const char *yaml)
{
	struct config_providers *p = NULL;
	int ret = config_parse_providers(yaml, strlen(yaml), "providers.yaml", &p, err, sizeof(err));

	if (ret)
		fail_msg("unexpected error %d: %s", ret, err);
	return p;
}

static void providers_err(const char *yaml, const char *prefix, const char *needle)
{
	struct config_providers *p = (void *)1;
	int ret = config_parse_providers(yaml, strlen(yaml), "providers.yaml", &p, err, sizeof(err));

	if (ret >= 0)
		fail_msg("expected an error for:\n%s", yaml);
	assert_null(p);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("expected prefix '%s', got '%s'", prefix, err);
	if (needle && !strstr(err, needle))
		fail_msg("expected '%s' in '%s'", needle, err);
}

static void test_providers_alias(void **state)
{
	static const char yaml[] =
		"base:\n"
		"  display_name: Base\n"
		"  auth_mode: API_KEY\n"
		"  categories: [x]\n"
		"  connection_config:\n"
		"    sub: {type: string, pattern: '^[a-z]+$'}\n"
		"  proxy:\n"
		"    base_url: https://${connectionConfig.sub}.base.test\n"
		"    headers: {authorization: 'Bearer ${apiKey}'}\n"
		"    query: {key: '${apiKey}'}\n"
		"    verification: {method: GET, endpoints: [/me]}\n"
		"    retry: {at: [x-reset], after: retry-after, remaining: x-left, error_code: ['429']}\n"
		"    paginate: {type: offset, offset_name_in_request: skip, offset_start_value: 1}\n"
		"chained:\n"
		"  alias: child\n"
		"child:\n"
		"  alias: base\n"
		"  display_name: Child\n"
		"own-proxy:\n"
		"  alias: base\n"
		"  auth_mode: OAUTH2\n"
		"  proxy:\n"
		"    base_url: https://own.test\n";
	struct config_providers *p = providers_ok(yaml);
	const struct config_provider *base, *child, *chained, *own;

	(void)state;
	base = config_provider_find(p, "base");
	child = config_provider_find(p, "child");
	chained = config_provider_find(p, "chained");
	own = config_provider_find(p, "own-proxy");
	assert_non_null(base);
	assert_non_null(child);
	assert_non_null(chained);
	assert_non_null(own);
	assert_null(config_provider_find(p, "nope"));
	assert_int_equal(p->n, 4);

	assert_int_equal(base->auth_mode, CONFIG_AUTH_API_KEY);
	assert_string_equal(base->base_url, "https://${connectionConfig.sub}.base.test");
	assert_string_equal(config_map_get(&base->headers, "authorization"), "Bearer ${apiKey}");
	assert_string_equal(config_map_get(&base->query, "key"), "${apiKey}");
	assert_int_equal(base->retry.at.n, 1);
	assert_string_equal(base->retry.after.items[0], "retry-after");
	assert_string_equal(base->retry.remaining.items[0], "x-left");
	assert_int_equal(base->paginate.type, CONFIG_PAGINATE_OFFSET);
	assert_string_equal(base->paginate.offset_start_value, "1");

	/* Alias: the target's keys, overridden by the entry's own. */
	assert_string_equal(child->display_name, "Child");
	assert_string_equal(child->alias, "base");
	assert_int_equal(child->auth_mode, CONFIG_AUTH_API_KEY);
	assert_string_equal(child->base_url, base->base_url);
	assert_string_equal(config_map_get(&child->headers, "authorization"), "Bearer ${apiKey}");
	assert_int_equal(child->paginate.type, CONFIG_PAGINATE_OFFSET);
	/* A chain, declared before its target. */
	assert_string_equal(chained->display_name, "Child");
	assert_string_equal(chained->base_url, base->base_url);
	/* Its own proxy replaces the whole block (Nango's shallow merge). */
	assert_int_equal(own->auth_mode, CONFIG_AUTH_OAUTH2);
	assert_string_equal(own->display_name, "Base");
	assert_string_equal(own->base_url, "https://own.test");
	assert_int_equal(own->headers.n, 0);
	assert_int_equal(own->paginate.type, CONFIG_PAGINATE_NONE);
	config_providers_free(p);
	config_providers_free(NULL);
}

static void test_providers_errors(void **state)
{
	(void)state;
	providers_err("a:\n  alias: b\n", "providers.yaml:2:10:", "no provider named 'b'");
	providers_err("a:\n  alias: b\nb:\n  alias: a\n", "providers.yaml:2:10:", "alias loop");
	providers_err("a:\n  proxy:\n    paginate: {type: page}\n", "providers.yaml:3:22:", "expected cursor, link or offset");
	providers_err("a:\n  proxy:\n    paginate: {limit_name_in_request: n}\n", "providers.yaml:3:15:", "no type");
	providers_err("a:\n  proxy:\n    headers: [x]\n", "providers.yaml:3:14:", "a.proxy.headers: expected a mapping");
	providers_err("a:\n  proxy:\n    headers: {x: [y]}\n", "providers.yaml:3:18:", "a.proxy.headers.x: expected a string");
	providers_err("a:\n  proxy:\n    retry: {at: {x: y}}\n", "providers.yaml:3:17:", "a.proxy.retry.at");
	providers_err("a:\n  proxy: https://x\n", "providers.yaml:2:10:", "a.proxy: expected a mapping");
	providers_err("a: 1\n", "providers.yaml:1:4:", "expected a mapping (a provider)");
	providers_err("[a]\n", "providers.yaml:1:1:", "expected a mapping of provider names");
	providers_err("a: {}\na: {}\n", "providers.yaml:2:1:", "duplicate key 'a'");
}

static void test_shipped_catalogue(void **state)
{
	struct config_providers *p = NULL;
	const struct config_provider *lt, *q, *alias, *gh, *pat;
	int ret;

	(void)state;
	ret = config_load_providers(EVS_SOURCE_DIR "/providers/providers.yaml", &p, err, sizeof(err));
	if (ret)
		fail_msg("%s", err);
	for (size_t i = 0; i < p->n; i++) /* every provider of ours has a base URL */
		assert_non_null(p->items[i].base_url);
	gh = config_provider_find(p, "github");
	assert_non_null(gh);
	assert_string_equal(gh->base_url, "https://api.github.com");
	assert_int_equal(gh->paginate.type, CONFIG_PAGINATE_LINK);
	pat = config_provider_find(p, "github-pat");
	assert_int_equal(pat->auth_mode, CONFIG_AUTH_API_KEY);
	assert_string_equal(config_map_get(&pat->headers, "authorization"), "Bearer ${apiKey}");
	assert_non_null(config_provider_find(p, "slack"));
	assert_non_null(config_provider_find(p, "hubspot"));
	assert_non_null(config_provider_find(p, "linear"));
	lt = config_provider_find(p, "local-test");
	assert_non_null(lt);
	assert_int_equal(lt->auth_mode, CONFIG_AUTH_API_KEY);
	assert_string_equal(lt->base_url, "http://127.0.0.1:${connectionConfig.port}");
	assert_string_equal(config_map_get(&lt->headers, "x-api-key"), "${apiKey}");
	assert_int_equal(lt->paginate.type, CONFIG_PAGINATE_CURSOR);
	assert_string_equal(lt->retry.after.items[0], "retry-after");
	q = config_provider_find(p, "local-test-query");
	assert_string_equal(config_map_get(&q->query, "api_key"), "${apiKey}");
	assert_int_equal(q->paginate.type, CONFIG_PAGINATE_OFFSET);
	assert_int_equal(config_provider_find(p, "local-test-basic")->auth_mode, CONFIG_AUTH_BASIC);
	assert_int_equal(config_provider_find(p, "local-test-none")->auth_mode, CONFIG_AUTH_NONE);
	assert_int_equal(config_provider_find(p, "local-test-oauth")->paginate.type, CONFIG_PAGINATE_LINK);
	alias = config_provider_find(p, "local-test-alias");
	assert_string_equal(alias->base_url, lt->base_url);
	assert_string_equal(alias->display_name, "Local test API (alias)");
	config_providers_free(p);
}

/* ----------------------------------------------------------- templates */

static const char *lookup(void *ud, const char *name)
{
	const char *const *kv = ud;

	for (; kv[0]; kv += 2)
		if (strcmp(kv[0], name) == 0)
			return kv[1];
	return NULL;
}

static void test_interpolate(void **state)
{
	const char *vars[] = {"apiKey", "k-123", "connectionConfig.port", "8081", "connectionConfig.empty", "",
			      "username", "u", NULL};
	char *out = NULL;
	char big[CONFIG_INTERPOLATE_MAX + 16];

	(void)state;
	assert_int_equal(config_interpolate("Bearer ${apiKey}", lookup, vars, &out, err, sizeof(err)), 0);
	assert_string_equal(out, "Bearer k-123");
	free(out);
	assert_int_equal(config_interpolate("http://127.0.0.1:${connectionConfig.port}/x$y${username}$", lookup, vars,
					    &out, err, sizeof(err)), 0);
	assert_string_equal(out, "http://127.0.0.1:8081/x$yu$");
	free(out);
	assert_int_equal(config_interpolate("", lookup, vars, &out, err, sizeof(err)), 0);
	assert_string_equal(out, "");
	free(out);
	assert_int_equal(config_interpolate("[${connectionConfig.empty}]", lookup, vars, &out, err, sizeof(err)), 0);
	assert_string_equal(out, "[]");
	free(out);

	/* A missing variable is named. */
	assert_int_equal(config_interpolate("https://${connectionConfig.subdomain}.x.test", lookup, vars, &out, err,
					    sizeof(err)), CONFIG_EUNDEFINED);
	assert_null(out);
	assert_non_null(strstr(err, "variable 'connectionConfig.subdomain' has no value"));

	/* Alternatives: the first that resolves. */
	assert_int_equal(config_interpolate("https://${connectionConfig.host} || http://127.0.0.1:${connectionConfig.port}",
					    lookup, vars, &out, err, sizeof(err)), 0);
	assert_string_equal(out, "http://127.0.0.1:8081");
	free(out);
	assert_int_equal(config_interpolate("https://${connectionConfig.port}.a || https://b", lookup, vars, &out, err,
					    sizeof(err)), 0);
	assert_string_equal(out, "https://8081.a");
	free(out);
	assert_int_equal(config_interpolate("https://${a} || https://${b}", lookup, vars, &out, err, sizeof(err)),
			 CONFIG_EUNDEFINED);
	assert_non_null(strstr(err, "variable 'a' has no value"));

	/* Unsupported and malformed templates. */
	assert_int_equal(config_interpolate("Basic ${base64(${apiKey}:)}", lookup, vars, &out, err, sizeof(err)),
			 CONFIG_ETEMPLATE);
	assert_non_null(strstr(err, "unsupported function or expression at '${base64('"));
	assert_int_equal(config_interpolate("x ${apiKey", lookup, vars, &out, err, sizeof(err)), CONFIG_ETEMPLATE);
	assert_int_equal(config_interpolate("x ${}", lookup, vars, &out, err, sizeof(err)), CONFIG_ETEMPLATE);
	assert_int_equal(config_interpolate("${now:X}", lookup, vars, &out, err, sizeof(err)), CONFIG_ETEMPLATE);

	/* A result that outgrows the buffer several times keeps every byte
	 * (the buffer grows by copy and wipe, not realloc). */
	{
		char tmpl[2048], want[4096];
		size_t tn = 0, wn = 0;

		for (int i = 0; i < 150; i++) {
			tn += (size_t)snprintf(tmpl + tn, sizeof(tmpl) - tn, "%d${apiKey}", i % 10);
			wn += (size_t)snprintf(want + wn, sizeof(want) - wn, "%dk-123", i % 10);
		}
		assert_int_equal(config_interpolate(tmpl, lookup, vars, &out, err, sizeof(err)), 0);
		assert_string_equal(out, want);
		free(out);
	}

	/* The result is capped. */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(config_interpolate(big, lookup, vars, &out, err, sizeof(err)), CONFIG_ETOOLARGE);
	assert_null(out);
}

/* -------------------------------------------------------------- loader */

static char tmpdir[256];

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/evs-config-test-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	return 0;
}

static int teardown_dir(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_load(void **state)
{
	char sub[300], path[400];
	struct config_host *h = NULL;
	char *const env_none[] = {"HOME=/root", NULL};
	char *const env_secret[] = {"EVSCRIPT_SECRET_KEYX=no", "EVSCRIPT_SECRET_KEY=from-env", NULL};
	char *const env_empty[] = {"EVSCRIPT_SECRET_KEY=", NULL};
	int ret;

	(void)state;
	snprintf(sub, sizeof(sub), "%s/etc", tmpdir);
	assert_int_equal(mkdir(sub, 0700), 0);
	write_file(sub, "evscript.yaml",
		   "secret_key: from-file\nstore: sqlite:data/evscript.db\nplugin_dir: ./plugins.d\n"
		   "trusted_keys_dir: /abs/keys\nproviders: ./cat/providers.yaml\nnango_yaml: nango.yaml\n");
	write_file(sub, "nango.yaml", sample_nango);
	snprintf(path, sizeof(path), "%s/cat", sub);
	assert_int_equal(mkdir(path, 0700), 0);
	write_file(path, "providers.yaml",
		   "github:\n  auth_mode: OAUTH2\n  proxy: {base_url: https://api.github.com}\n"
		   "hubspot:\n  auth_mode: OAUTH2\n"
		   "local-test:\n  auth_mode: API_KEY\n"
		   "bare:\n  auth_mode: NONE\n");
	snprintf(path, sizeof(path), "%s/evscript.yaml", sub);

	ret = config_load(path, env_none, &h, err, sizeof(err));
	if (ret)
		fail_msg("%s", err);
	assert_string_equal(h->dir, sub);
	{
		char want[512];

		snprintf(want, sizeof(want), "%s/data/evscript.db", sub);
		assert_string_equal(h->store_path, want);
		snprintf(want, sizeof(want), "%s/plugins.d", sub);
		assert_string_equal(h->plugin_dir, want);
		snprintf(want, sizeof(want), "%s/cat/providers.yaml", sub);
		assert_string_equal(h->providers, want);
		snprintf(want, sizeof(want), "%s/nango.yaml", sub);
		assert_string_equal(h->nango_yaml, want);
		assert_string_equal(h->nango.file, want);
	}
	assert_string_equal(h->trusted_keys_dir, "/abs/keys");
	assert_string_equal(h->secret_key, "from-file");
	assert_false(h->secret_key_from_env);
	assert_int_equal(h->nango.n_integrations, 4);
	assert_int_equal(h->nango.ignored.n, 3);
	assert_non_null(h->catalogue);
	assert_non_null(config_provider_find(h->catalogue, "local-test"));
	config_host_free(h);

	/* The environment wins over the file; an empty value does not count. */
	assert_int_equal(config_load(path, env_secret, &h, err, sizeof(err)), 0);
	assert_string_equal(h->secret_key, "from-env");
	assert_true(h->secret_key_from_env);
	config_host_free(h);
	assert_int_equal(config_load(path, env_empty, &h, err, sizeof(err)), 0);
	assert_string_equal(h->secret_key, "from-file");
	config_host_free(h);
	assert_int_equal(config_load(path, NULL, &h, err, sizeof(err)), 0);
	config_host_free(h);

	/* A provider missing from the catalogue: at `provider:` in nango.yaml. */
	snprintf(path, sizeof(path), "%s/cat", sub);
	write_file(path, "providers.yaml", "github: {}\nhubspot: {}\nbare: {}\n");
	snprintf(path, sizeof(path), "%s/evscript.yaml", sub);
	assert_int_equal(config_load(path, NULL, &h, err, sizeof(err)), CONFIG_EINVALID);
	assert_null(h);
	{
		char want[512];

		snprintf(want, sizeof(want), "%s/nango.yaml:47:19: integration 'acme-crm': provider 'local-test' is not in",
			 sub);
		if (strncmp(err, want, strlen(want)) != 0)
			fail_msg("got '%s'", err);
	}

	/* Missing files. */
	write_file(sub, "evscript.yaml", "nango_yaml: missing.yaml\n");
	assert_int_equal(config_load(path, NULL, &h, err, sizeof(err)), CONFIG_EIO);
	assert_non_null(strstr(err, "missing.yaml: cannot read: No such file or directory"));
	snprintf(path, sizeof(path), "%s/nope.yaml", sub);
	assert_int_equal(config_load(path, NULL, &h, err, sizeof(err)), CONFIG_EIO);
	assert_null(h);

	/* A relative config path resolves against its own directory. */
	assert_int_equal(chdir(tmpdir), 0);
	write_file(sub, "evscript.yaml", "providers: cat/providers.yaml\nintegrations:\n  github: {}\n");
	assert_int_equal(config_load("etc/evscript.yaml", NULL, &h, err, sizeof(err)), 0);
	assert_string_equal(h->providers, "etc/cat/providers.yaml");
	assert_string_equal(h->store_path, "etc/evscript.db");
	assert_string_equal(h->nango.file, "etc/evscript.yaml");
	config_host_free(h);
}

/* Loads a host file dir/evscript.yaml made of text (with an empty providers
 * catalogue); returns config_load's code, *out set on success. */
static int load_host(const char *text, struct config_host **out, char *path, size_t pathlen)
{
	write_file(tmpdir, "providers.yaml", "bare: {}\n");
	write_file(tmpdir, "evscript.yaml", text);
	snprintf(path, pathlen, "%s/evscript.yaml", tmpdir);
	return config_load(path, NULL, out, err, sizeof(err));
}

/* Expects config_load to refuse text with a message "PATH:where: want". */
static void load_err(const char *text, const char *where, const char *want)
{
	struct config_host *h = (void *)1;
	char path[400], prefix[1024];

	assert_int_equal(load_host(text, &h, path, sizeof(path)), CONFIG_EINVALID);
	assert_null(h);
	snprintf(prefix, sizeof(prefix), "%s:%s%s", path, where, want);
	if (strcmp(err, prefix) != 0)
		fail_msg("expected '%s', got '%s'", prefix, err);
}

/* sandbox_user is resolved when the config is loaded: an unknown user and a
 * user with uid or gid 0 are refused at the value. */
static void test_load_sandbox_user(void **state)
{
	struct config_host *h = NULL;
	struct passwd *pw;
	char path[400];
	uid_t uid;
	gid_t gid;

	(void)state;
	pw = getpwnam("nobody");
	if (!pw)
		skip();
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (load_host("providers: providers.yaml\n", &h, path, sizeof(path)))
		fail_msg("%s", err);
	assert_string_equal(h->sandbox_user, "nobody");
	assert_int_equal(h->sandbox_uid, uid);
	assert_int_equal(h->sandbox_gid, gid);
	config_host_free(h);

	load_err("providers: providers.yaml\nsandbox_user: evs-no-such-user\n", "2:15: ",
		 "sandbox_user: no such user 'evs-no-such-user', expected the user that runs plugins "
		 "when the daemon is root");
	load_err("providers: providers.yaml\nsandbox_user:   root\n", "2:17: ",
		 "sandbox_user: 'root' has uid or gid 0, expected an unprivileged user (plugins never run as root)");
	/* gid 0 alone is refused too, when this system has such a user. */
	setpwent();
	while ((pw = getpwent()) && !(pw->pw_uid != 0 && pw->pw_gid == 0))
		;
	if (pw) {
		char text[300], want[300];

		snprintf(text, sizeof(text), "providers: providers.yaml\nsandbox_user: '%s'\n", pw->pw_name);
		snprintf(want, sizeof(want), "sandbox_user: '%s' has uid or gid 0, expected an unprivileged user "
			 "(plugins never run as root)", pw->pw_name);
		endpwent();
		load_err(text, "2:15: ", want);
	} else {
		endpwent();
	}
}

static void test_examples(void **state)
{
	struct config_nango n;
	struct config_providers *p = NULL;
	struct config_host *h = NULL;
	char *data = NULL;
	FILE *f;
	long len;
	const struct config_integration *demo;

	(void)state;
	/* The example host file parses (its paths are wired by the run script). */
	f = fopen(EVS_SOURCE_DIR "/examples/evscript.yaml", "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	data = malloc((size_t)len + 1);
	assert_int_equal(fread(data, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	if (config_parse_host(data, (size_t)len, "examples/evscript.yaml", &h, err, sizeof(err)))
		fail_msg("%s", err);
	assert_non_null(h->nango_yaml);
	config_host_free(h);
	free(data);

	f = fopen(EVS_SOURCE_DIR "/examples/nango.yaml", "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	data = malloc((size_t)len + 1);
	assert_int_equal(fread(data, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	if (config_parse_nango(data, (size_t)len, "examples/nango.yaml", &n, err, sizeof(err)))
		fail_msg("%s", err);
	free(data);
	assert_int_equal(config_load_providers(EVS_SOURCE_DIR "/providers/providers.yaml", &p, err, sizeof(err)), 0);
	if (config_check_providers(&n, p, err, sizeof(err)))
		fail_msg("%s", err);
	{
		struct config_host fake = {.nango = n};

		demo = config_integration_find(&fake, "demo");
		assert_non_null(demo);
		assert_string_equal(demo->provider, "local-test");
		assert_string_equal(demo->events[CONFIG_EVENT_POST_CONNECTION_CREATION].items[0], "hello");
	}
	config_providers_free(p);
	config_nango_clear(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_store_url),
		cmocka_unit_test(test_all_keys),
		cmocka_unit_test(test_host_errors),
		cmocka_unit_test(test_sandbox_keys),
		cmocka_unit_test(test_docs_keys),
		cmocka_unit_test(test_anchors),
		cmocka_unit_test(test_nango_sample),
		cmocka_unit_test(test_nango_v1),
		cmocka_unit_test(test_nango_errors),
		cmocka_unit_test(test_providers_alias),
		cmocka_unit_test(test_providers_errors),
		cmocka_unit_test(test_shipped_catalogue),
		cmocka_unit_test(test_interpolate),
		cmocka_unit_test_setup_teardown(test_load, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_load_sandbox_user, setup_dir, teardown_dir),
		cmocka_unit_test(test_examples),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
