/*
 * status.h - the one error space of the runtime (SQLite's model: primary
 * codes, extended codes per part, one string function).
 *
 * Every function in runtime/ that can fail returns an int: 0 on success, a
 * negative status code otherwise. Every code is listed here, once, and no
 * two codes share a value, so a code means the same thing whichever part
 * returned it and status_str() can say what it is.
 *
 * Primary codes say what kind of failure it was. The first ten are the
 * SDK's EVS_E* codes with the same values (the plugin ABI is frozen: a host
 * function hands them to plugins as they are); the others are the kinds
 * the runtime needs besides (I/O, syntax, conflict, ...).
 *
 * Extended codes say exactly what went wrong, in the words of the part that
 * owns them (a loader refusal, a store conflict, a bad signature). Each part
 * owns a block of numbers below; a code's row names its primary, which
 * status_primary() gives. A caller that only cares about the kind asks for
 * the primary; one that cares about the reason compares the extended code.
 * A part adds a code by adding a row at the end of its block (renumbering
 * is allowed: no code is stored or sent outside one build, except the SDK's
 * ten, which never change).
 *
 * Layout of a code: -(number | errno << 8). The low 8 bits are the code's
 * number (1..STATUS_MAX); the bits above are zero, except for
 * STATUS_ESYS, which carries the errno of a failed system call:
 * status_from_errno(e) makes such a code and status_str() gives strerror(e)
 * for it. -errno values are converted once, where the system call is made:
 * no function of the runtime returns -errno, the helpers of runtime/common
 * that wrap system calls (util_read_file(), util_write_file_atomic())
 * included.
 *
 * The codes of a part form one run of numbers without holes, and the
 * primaries come first, so a test can walk a range of codes. -100 and -1000
 * are not codes (tests ask for the text of an unknown code with them).
 */
#ifndef EVS_COMMON_STATUS_H
#define EVS_COMMON_STATUS_H

#include <stdbool.h>
#include <stddef.h>

/* X(name, value, primary, text): the list every table is made from. */
#define STATUS_CODES(X)                                                                            \
	/* Primaries: the SDK's EVS_E* (same values, same texts) */                                \
	X(STATUS_EINVAL, -1, STATUS_EINVAL, "invalid argument")                                    \
	X(STATUS_ENOMEM, -2, STATUS_ENOMEM, "out of memory or size limit reached")                 \
	X(STATUS_ENOTFOUND, -3, STATUS_ENOTFOUND, "not found")                                     \
	X(STATUS_ENETWORK, -4, STATUS_ENETWORK, "network error")                                   \
	X(STATUS_ETIMEDOUT, -5, STATUS_ETIMEDOUT, "timed out")                                     \
	X(STATUS_EDEPTH, -6, STATUS_EDEPTH, "actions nested too deeply")                           \
	X(STATUS_EFAILED, -7, STATUS_EFAILED, "action failed")                                     \
	X(STATUS_EDENIED, -8, STATUS_EDENIED, "not allowed")                                       \
	X(STATUS_EUNSUPPORTED, -9, STATUS_EUNSUPPORTED, "not supported by this host")              \
	X(STATUS_EHOST, -10, STATUS_EHOST, "internal host error")                                  \
	/* Primaries the runtime adds */                                                           \
	X(STATUS_EIO, -11, STATUS_EIO, "input/output error")                                       \
	X(STATUS_ESYNTAX, -12, STATUS_ESYNTAX, "syntax error")                                     \
	X(STATUS_ECONFLICT, -13, STATUS_ECONFLICT, "conflict")                                     \
	X(STATUS_ESTATE, -14, STATUS_ESTATE, "wrong state")                                        \
	X(STATUS_EBUSY, -15, STATUS_EBUSY, "busy")                                                 \
	X(STATUS_ETOOBIG, -16, STATUS_ETOOBIG, "too big")                                          \
	X(STATUS_EREFUSED, -17, STATUS_EREFUSED, "refused: verification failed")                   \
	X(STATUS_EPROTO, -18, STATUS_EPROTO, "protocol error")                                     \
	X(STATUS_ECLOSED, -19, STATUS_ECLOSED, "closed by the other end")                          \
	X(STATUS_EAGAIN, -20, STATUS_EAGAIN, "none available, try again")                          \
	X(STATUS_ESYS, -21, STATUS_ESYS, "system error")                                           \
	/* loader: refusals of a plugin file (loader.h) */                                         \
	X(LOADER_ENOSIG, -22, STATUS_EREFUSED, "no signature")                                     \
	X(LOADER_EMALFORMED, -23, STATUS_EREFUSED, "malformed signature file")                     \
	X(LOADER_EUNKNOWNKEY, -24, STATUS_EREFUSED, "unknown key")                                 \
	X(LOADER_EREVOKED, -25, STATUS_EREFUSED, "revoked key")                                    \
	X(LOADER_EBADSIG, -26, STATUS_EREFUSED, "bad signature (file tampered)")                   \
	X(LOADER_EBADGLOBALSIG, -27, STATUS_EREFUSED, "bad global signature (trusted comment tampered)") \
	X(LOADER_ENAME, -28, STATUS_EREFUSED, "name mismatch")                                     \
	X(LOADER_EABI, -29, STATUS_EREFUSED, "ABI mismatch")                                       \
	X(LOADER_EDOWNGRADE, -30, STATUS_EREFUSED, "downgrade refused")                            \
	X(LOADER_ENOTELF, -31, STATUS_EREFUSED, "not an ELF shared object for this machine")       \
	X(LOADER_ENOENTRY, -32, STATUS_EREFUSED, "no entry point")                                 \
	X(LOADER_ETOOBIG, -33, STATUS_ETOOBIG, "file too large")                                   \
	X(LOADER_ELEGACY, -34, STATUS_EREFUSED, "legacy signature refused")                        \
	X(LOADER_ECOMMENT, -35, STATUS_EREFUSED, "malformed trusted comment")                      \
	X(LOADER_EIO, -36, STATUS_EIO, "cannot read plugin")                                       \
	X(LOADER_EDLOPEN, -37, STATUS_EREFUSED, "dlopen failed")                                   \
	X(LOADER_ENOMEM, -38, STATUS_ENOMEM, "out of memory")                                      \
	X(LOADER_EVERSION, -39, STATUS_EREFUSED, "version mismatch")                               \
	X(LOADER_ETOOMANY, -40, STATUS_ETOOBIG, "too many plugin files")                           \
	X(LOADER_ESUBSCRIPTION, -41, STATUS_EREFUSED, "bad event subscription")                   \
	/* sign: minisign keys and signatures (sign.h) */                                          \
	X(SIGN_EMALFORMED, -42, STATUS_ESYNTAX, "malformed minisign file")                         \
	X(SIGN_ELEGACY, -43, STATUS_EREFUSED, "legacy (non-prehashed) signature refused")          \
	X(SIGN_EUNKNOWNKEY, -44, STATUS_EREFUSED, "signed with an unknown key")                    \
	X(SIGN_EREVOKED, -45, STATUS_EREFUSED, "signed with a revoked key")                        \
	X(SIGN_EBADSIG, -46, STATUS_EREFUSED,                                                      \
	  "signature verification failed (the file does not match its signature)")                 \
	X(SIGN_EBADGLOBALSIG, -47, STATUS_EREFUSED,                                                \
	  "comment signature verification failed (the trusted comment was altered)")              \
	X(SIGN_EKEYID, -48, STATUS_EREFUSED, "the signature's key id does not match the public key") \
	X(SIGN_EENCRYPTED, -49, STATUS_EUNSUPPORTED,                                               \
	  "encrypted secret keys are not supported (make one with minisign -G -W or evscript keygen)") \
	X(SIGN_ECHECKSUM, -50, STATUS_EREFUSED, "secret key checksum mismatch (corrupted key)")    \
	X(SIGN_ECOMMENT, -51, STATUS_ESYNTAX,                                                      \
	  "malformed trusted comment (needs plugin:NAME version:X.Y.Z abi:N)")                     \
	X(SIGN_ENOMEM, -52, STATUS_ENOMEM, "out of memory")                                        \
	X(SIGN_EIO, -53, STATUS_EIO, "I/O error")                                                  \
	X(SIGN_EINIT, -54, STATUS_EHOST, "libsodium could not be initialized")                     \
	/* config: the host file and the script files (config.h) */                                \
	X(CONFIG_ESYNTAX, -55, STATUS_ESYNTAX, "YAML syntax error")                                \
	X(CONFIG_EINVALID, -56, STATUS_EINVAL, "invalid configuration")                            \
	X(CONFIG_ENOMEM, -57, STATUS_ENOMEM, "out of memory")                                      \
	X(CONFIG_EIO, -58, STATUS_EIO, "cannot read a configuration file")                         \
	X(CONFIG_ETOOLARGE, -59, STATUS_ETOOBIG, "too large")                                      \
	X(CONFIG_EUNDEFINED, -60, STATUS_ENOTFOUND, "template variable has no value")              \
	X(CONFIG_ETEMPLATE, -61, STATUS_ESYNTAX, "malformed template")                             \
	/* http: the HTTP server (http.h) */                                                       \
	X(HTTP_EINVAL, -62, STATUS_EINVAL, "invalid argument or configuration")                    \
	X(HTTP_ENOMEM, -63, STATUS_ENOMEM, "out of memory")                                        \
	X(HTTP_ELISTEN, -64, STATUS_EIO, "cannot listen on the address")                           \
	X(HTTP_ESTATE, -65, STATUS_ESTATE, "not allowed in this state")                            \
	X(HTTP_ETIMEDOUT, -66, STATUS_ETIMEDOUT, "requests still in flight")                       \
	X(HTTP_EBADBODY, -67, STATUS_EINVAL, "request body rejected (400 answered)")               \
	X(HTTP_ERESPONDED, -68, STATUS_ESTATE, "a response was already set")                       \
	/* store: the database (store.h) */                                                        \
	X(STORE_EINVAL, -69, STATUS_EINVAL, "invalid argument")                                    \
	X(STORE_ENOMEM, -70, STATUS_ENOMEM, "out of memory")                                       \
	X(STORE_EIO, -71, STATUS_EIO, "the database failed")                                       \
	X(STORE_ENOTFOUND, -72, STATUS_ENOTFOUND, "not found")                                     \
	X(STORE_EDELETING, -73, STATUS_ESTATE, "the connection is being deleted")                  \
	X(STORE_ECONFLICT, -74, STATUS_ECONFLICT, "the idempotency key is already recorded")       \
	X(STORE_ESCHEMA, -75, STATUS_EUNSUPPORTED, "the database was written by a newer evscript") \
	X(STORE_ENOKEY, -76, STATUS_EDENIED,                                                       \
	  "the credentials are encrypted and no encryption key is set")                            \
	X(STORE_EDECRYPT, -77, STATUS_EREFUSED,                                                    \
	  "the credentials do not decrypt (wrong key, tampered, or moved to another row)")         \
	X(STORE_EKEY, -78, STATUS_EREFUSED,                                                        \
	  "the encryption key is not the one this database was written with")                      \
	X(STORE_EURL, -79, STATUS_EUNSUPPORTED, "unsupported store URL (expected sqlite:PATH)")    \
	X(STORE_ESTATE, -80, STATUS_ESTATE, "the row is not in a state that allows this")          \
	X(STORE_EBUSY, -81, STATUS_EBUSY, "the database stayed locked")                            \
	X(STORE_ETOOBIG, -82, STATUS_ETOOBIG, "a value is over its size limit")                    \
	X(STORE_ECALLBACK, -83, STATUS_EFAILED, "the caller's callback failed")                   \
	/* credentials: token refresh and client credentials (hostapi/credentials.h) */            \
	X(CRED_EREFRESH, -120, STATUS_EFAILED, "the token refresh failed")                         \
	X(CRED_ENOCLIENT, -121, STATUS_EUNSUPPORTED, "no OAuth client to refresh the token with")  \
	X(CRED_EEXPIRED, -122, STATUS_EDENIED, "the access token expired and cannot be refreshed")

#define STATUS_ENUM_ROW_(name, value, primary, text) name = (value),
enum status {
	STATUS_OK = 0,
	STATUS_CODES(STATUS_ENUM_ROW_)
};
#undef STATUS_ENUM_ROW_

/* The largest code number (the low 8 bits of -code). */
#define STATUS_MAX 122

/* The parts' names for success, kept for the call sites that use them. */
#define SIGN_OK STATUS_OK
#define CONFIG_OK STATUS_OK
#define HTTP_OK STATUS_OK
#define STORE_OK STATUS_OK
#define LOADER_OK STATUS_OK

/* A static English text for any code: the row's text, strerror(e) for a
 * code made by status_from_errno(e), "success" for 0 and "unknown error"
 * for a value that is not a code. Never NULL. */
const char *status_str(int code);

/* The primary code of a code (a primary is its own; 0 for 0). A value that
 * is not a code is returned as it is. */
int status_primary(int code);

/* True when code is 0 or one of the codes above (a status_from_errno()
 * code included). */
bool status_known(int code);

/* The status code for a failed system call's errno e (e > 0): STATUS_ESYS
 * with e in the bits above the low 8, so that status_str() gives
 * strerror(e) and status_errno() gives e back. e <= 0 gives STATUS_ESYS. */
int status_from_errno(int e);

/* The errno a code made by status_from_errno() carries, else 0. */
int status_errno(int code);

#endif
