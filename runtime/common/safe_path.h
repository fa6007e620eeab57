/*
 * safe_path.h - sshd's StrictModes for the daemon's trust anchors: a
 * directory or file that decides what code runs (plugin_dir,
 * trusted_keys_dir, a trusted key) must not be writable by anyone but the
 * daemon's user or root, nor sit in a directory that is.
 *
 * The path is resolved (realpath) and every component, from the path itself
 * up to "/", must be owned by root or by the effective user and not be
 * writable by its group or by others. An ancestor directory writable by all
 * with the sticky bit and owned by root (/tmp) passes: nobody else can
 * rename or remove what the daemon's user put in it. The path itself never
 * passes that way.
 */
#ifndef EVS_COMMON_SAFE_PATH_H
#define EVS_COMMON_SAFE_PATH_H

#include <stddef.h>

/* 0 when path is safe as above, else STATUS_EDENIED with the reason in err
 * ("refused: it is writable by others (mode 0777)", "refused: its directory
 * /srv is owned by uid 1000, ..."), or a STATUS_ESYS code when it cannot be
 * resolved or examined. The caller puts the path in front. */
int safe_path_check(const char *path, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* (Callers that report a missing path their own way act on STATUS_EDENIED
 * only.) */

#endif
