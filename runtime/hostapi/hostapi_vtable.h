/*
 * hostapi_vtable.h - the one list of the host functions a plugin is given
 * (struct evs_host, sdk.h), for the two vtables the host hands out: the
 * in-process one (hostapi_inproc.c, ip_*) and the executor's, which sends
 * each call to the daemon over its socket (executor/zygote.c, x_*). Both
 * are made from this list, so an entry the ABI appends is added here once
 * and neither vtable builds without it. Header only: the zygote includes
 * it without linking evs_hostapi.
 */
#ifndef EVS_HOSTAPI_VTABLE_H
#define EVS_HOSTAPI_VTABLE_H

#include <evscript/sdk.h>

/* A struct evs_host initializer whose functions are PREFIX##name:
 * static const struct evs_host v = HOSTAPI_VTABLE(ip_); */
#define HOSTAPI_VTABLE(prefix)                                                                     \
	{                                                                                          \
		.size = sizeof(struct evs_host),                                                   \
		.abi_major = EVS_ABI_MAJOR,                                                        \
		.abi_minor = EVS_ABI_MINOR,                                                        \
		.log = prefix##log,                                                                \
		.set_error = prefix##set_error,                                                    \
		.get_connection = prefix##get_connection,                                          \
		.get_metadata = prefix##get_metadata,                                              \
		.set_metadata = prefix##set_metadata,                                              \
		.update_metadata = prefix##update_metadata,                                        \
		.proxy = prefix##proxy,                                                            \
		.free_response = prefix##free_response,                                            \
		.paginate = prefix##paginate,                                                      \
		.get_env = prefix##get_env,                                                        \
		.get_webhook_url = prefix##get_webhook_url,                                        \
		.trigger_action = prefix##trigger_action,                                          \
		.get_token = prefix##get_token,                                                    \
		.get_integration = prefix##get_integration,                                        \
		.get_env_all = prefix##get_env_all,                                                \
		.set_action_error = prefix##set_action_error,                                      \
		.trigger_action_for = prefix##trigger_action_for,                                  \
	}

#endif
