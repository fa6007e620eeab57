/*
 * load.c - the thin I/O layer over the pure parsers: reads the files,
 * resolves relative paths against the config file's directory, applies the
 * environment, loads nango_yaml and the providers catalogue.
 */
#include "parse_util.h"
#include "util.h"

#include <errno.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_ENV "EVSCRIPT_SECRET_KEY"

/* secret: the file may hold the secret key (util_read_file_secret). */
static int read_file(const char *path, size_t cap, bool secret, char **data, size_t *len, char *err,
		     size_t errlen)
{
	int ret = secret ? util_read_file_secret(path, cap, data, len)
			 : util_read_file(path, cap, data, len);

	if (ret == STATUS_ETOOBIG)
		return yfail(err, errlen, path, NULL, CONFIG_ETOOLARGE, "file larger than %zu bytes", cap);
	if (ret == STATUS_ENOMEM)
		return yfail(err, errlen, path, NULL, CONFIG_ENOMEM, "out of memory");
	if (ret < 0)
		return yfail(err, errlen, path, NULL, CONFIG_EIO, "cannot read: %s", status_str(ret));
	return 0;
}

/* The files config_load() reads, each with its size limit and parser. */
enum file_kind { FILE_HOST, FILE_NANGO, FILE_PROVIDERS };

/* Reads path and parses it as kind into out (the parser's: struct
 * config_host **, struct config_nango *, struct config_providers **). The
 * host file is read as a secret (it may hold the secret key); the bytes
 * read are wiped and freed whatever the kind. 0 or a CONFIG_E* code. */
static int load_file(const char *path, enum file_kind kind, void *out, char *err, size_t errlen)
{
	char *data = NULL;
	size_t len = 0;
	int ret;

	ret = read_file(path, kind == FILE_PROVIDERS ? CONFIG_PROVIDERS_MAX : CONFIG_FILE_MAX, kind == FILE_HOST,
			&data, &len, err, errlen);
	if (ret)
		return ret;
	switch (kind) {
	case FILE_HOST:
		ret = config_parse_host(data, len, path, out, err, errlen);
		break;
	case FILE_NANGO:
		ret = config_parse_nango(data, len, path, out, err, errlen);
		break;
	case FILE_PROVIDERS:
		ret = config_parse_providers(data, len, path, out, err, errlen);
		break;
	}
	sodium_memzero(data, len);
	free(data);
	return ret;
}

/* dir/path for a relative path ("./x" loses its "./"); a copy otherwise. */
static int resolve(const char *dir, char **path)
{
	const char *p = *path;
	char *joined;

	if (!p || p[0] == '/')
		return 0;
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	if (p[0] == '\0')
		p = ".";
	joined = util_path_join(dir, p);
	if (!joined)
		return CONFIG_ENOMEM;
	free(*path);
	*path = joined;
	return 0;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static const char *env_get(char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

int config_load_providers(const char *path, struct config_providers **out, char *err, size_t errlen)
{
	*out = NULL;
	return load_file(path, FILE_PROVIDERS, out, err, errlen);
}

int config_check_providers(const struct config_nango *nango, const struct config_providers *catalogue,
			   char *err, size_t errlen)
{
	for (size_t i = 0; nango && i < nango->n_integrations; i++) {
		const struct config_integration *in = &nango->integrations[i];
		struct ynode at = {.line = in->provider_line, .column = in->provider_column};

		if (!config_provider_find(catalogue, in->provider))
			return yfail(err, errlen, nango->file, &at, CONFIG_EINVALID,
				     "integration '%s': provider '%s' is not in the providers catalogue %s, "
				     "expected one of its names (set `provider:`)",
				     in->id, in->provider, catalogue && catalogue->file ? catalogue->file : "(none)");
	}
	return 0;
}

/* nango_yaml, when the host file names one. */
static int load_nango(struct config_host *h, char *const *envp, char *err, size_t errlen)
{
	struct config_nango n;
	int ret;

	(void)envp;
	if (!h->nango_yaml)
		return 0;
	ret = load_file(h->nango_yaml, FILE_NANGO, &n, err, errlen);
	if (ret)
		return ret;
	/* Notes from the host file (a top-level `models:`) stay. */
	for (size_t i = 0; i < h->nango.ignored.n; i++) {
		if (strlist_push(&n.ignored, h->nango.ignored.items[i])) {
			config_nango_clear(&n);
			return yfail(err, errlen, h->file, NULL, CONFIG_ENOMEM, "out of memory");
		}
	}
	config_nango_clear(&h->nango);
	h->nango = n;
	return 0;
}

/* sandbox_user's uid and gid (from the passwd database, so this is I/O);
 * plugins never run as root. */
static int resolve_sandbox_user(struct config_host *h, char *const *envp, char *err, size_t errlen)
{
	struct ynode at = {.line = h->sandbox_user_line, .column = h->sandbox_user_column};
	struct passwd pw, *found = NULL;
	char buf[4096];
	int r = getpwnam_r(h->sandbox_user, &pw, buf, sizeof(buf), &found);

	(void)envp;
	if (r != 0 || !found)
		return yfail(err, errlen, h->file, at.line ? &at : NULL, CONFIG_EINVALID,
			     "sandbox_user: no such user '%s'%s%s, expected the user that runs plugins "
			     "when the daemon is root", h->sandbox_user, r ? ": " : "", r ? strerror(r) : "");
	if (found->pw_uid == 0 || found->pw_gid == 0)
		return yfail(err, errlen, h->file, at.line ? &at : NULL, CONFIG_EINVALID,
			     "sandbox_user: '%s' has uid or gid 0, expected an unprivileged user "
			     "(plugins never run as root)", h->sandbox_user);
	h->sandbox_uid = (uint32_t)found->pw_uid;
	h->sandbox_gid = (uint32_t)found->pw_gid;
	return 0;
}

/* The host file's relative paths, against its directory. */
static int resolve_paths(struct config_host *h, char *const *envp, char *err, size_t errlen)
{
	(void)envp;
	h->dir = dir_of(h->file);
	if (!h->dir || resolve(h->dir, &h->plugin_dir) || resolve(h->dir, &h->trusted_keys_dir) ||
	    resolve(h->dir, &h->providers) || resolve(h->dir, &h->nango_yaml) || resolve(h->dir, &h->store_path))
		return yfail(err, errlen, h->file, NULL, CONFIG_ENOMEM, "out of memory");
	return 0;
}

/* EVSCRIPT_SECRET_KEY, when set, over the file's secret_key. */
static int secret_from_env(struct config_host *h, char *const *envp, char *err, size_t errlen)
{
	const char *secret = env_get(envp, SECRET_ENV);

	if (!secret || !*secret)
		return 0;
	secret_free(h->secret_key);
	h->secret_key = strdup(secret);
	h->secret_key_from_env = true;
	if (!h->secret_key)
		return yfail(err, errlen, h->file, NULL, CONFIG_ENOMEM, "out of memory");
	return 0;
}

/* The providers catalogue, which must name every integration's provider. */
static int load_providers(struct config_host *h, char *const *envp, char *err, size_t errlen)
{
	int ret;

	(void)envp;
	ret = config_load_providers(h->providers, &h->catalogue, err, errlen);
	return ret ? ret : config_check_providers(&h->nango, h->catalogue, err, errlen);
}

/* What config_load() does once the host file is parsed, in order; the
 * first to fail ends it. */
typedef int (*load_step_fn)(struct config_host *h, char *const *envp, char *err, size_t errlen);
static const load_step_fn load_steps[] = {
	resolve_paths, secret_from_env, oauth_clients_resolve, load_nango, load_providers, resolve_sandbox_user,
};

int config_load(const char *path, char *const *envp, struct config_host **out, char *err, size_t errlen)
{
	struct config_host *h = NULL;
	int ret;

	*out = NULL;
	ret = load_file(path, FILE_HOST, &h, err, errlen);
	for (size_t i = 0; !ret && i < sizeof(load_steps) / sizeof(load_steps[0]); i++)
		ret = load_steps[i](h, envp, err, errlen);
	if (ret) {
		config_host_free(h);
		return ret;
	}
	*out = h;
	return 0;
}
