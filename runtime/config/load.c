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
	char *data = NULL;
	size_t len = 0;
	int ret;

	*out = NULL;
	ret = read_file(path, CONFIG_PROVIDERS_MAX, false, &data, &len, err, errlen);
	if (ret)
		return ret;
	ret = config_parse_providers(data, len, path, out, err, errlen);
	free(data);
	return ret;
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

static int load_nango(struct config_host *h, char *err, size_t errlen)
{
	struct config_nango n;
	char *data = NULL;
	size_t len = 0;
	int ret;

	ret = read_file(h->nango_yaml, CONFIG_FILE_MAX, false, &data, &len, err, errlen);
	if (ret)
		return ret;
	ret = config_parse_nango(data, len, h->nango_yaml, &n, err, errlen);
	free(data);
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
static int resolve_sandbox_user(struct config_host *h, char *err, size_t errlen)
{
	struct ynode at = {.line = h->sandbox_user_line, .column = h->sandbox_user_column};
	struct passwd pw, *found = NULL;
	char buf[4096];
	int r = getpwnam_r(h->sandbox_user, &pw, buf, sizeof(buf), &found);

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

int config_load(const char *path, char *const *envp, struct config_host **out, char *err, size_t errlen)
{
	struct config_host *h = NULL;
	const char *secret;
	char *data = NULL;
	size_t len = 0;
	int ret;

	*out = NULL;
	ret = read_file(path, CONFIG_FILE_MAX, true, &data, &len, err, errlen);
	if (ret)
		return ret;
	ret = config_parse_host(data, len, path, &h, err, errlen);
	sodium_memzero(data, len); /* it may hold the secret key */
	free(data);
	if (ret)
		return ret;

	h->dir = dir_of(path);
	if (!h->dir || resolve(h->dir, &h->plugin_dir) || resolve(h->dir, &h->trusted_keys_dir) ||
	    resolve(h->dir, &h->providers) || resolve(h->dir, &h->nango_yaml) || resolve(h->dir, &h->store_path)) {
		ret = yfail(err, errlen, path, NULL, CONFIG_ENOMEM, "out of memory");
		goto fail;
	}

	secret = env_get(envp, SECRET_ENV);
	if (secret && *secret) {
		secret_free(h->secret_key);
		h->secret_key = strdup(secret);
		h->secret_key_from_env = true;
		if (!h->secret_key) {
			ret = yfail(err, errlen, path, NULL, CONFIG_ENOMEM, "out of memory");
			goto fail;
		}
	}

	ret = oauth_clients_resolve(h, envp, err, errlen);
	if (ret)
		goto fail;

	if (h->nango_yaml) {
		ret = load_nango(h, err, errlen);
		if (ret)
			goto fail;
	}
	ret = config_load_providers(h->providers, &h->catalogue, err, errlen);
	if (ret)
		goto fail;
	ret = config_check_providers(&h->nango, h->catalogue, err, errlen);
	if (ret)
		goto fail;
	ret = resolve_sandbox_user(h, err, errlen);
	if (ret)
		goto fail;
	*out = h;
	return 0;
fail:
	config_host_free(h);
	return ret;
}
