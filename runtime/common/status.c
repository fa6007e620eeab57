/*
 * status.c - the texts and primaries of the status codes (status.h).
 */
#include "status.h"

#include <string.h>

struct row {
	int primary;
	const char *text;
};

#define ROW(name, value, primary, text) [-(value)] = {(primary), (text)},
static const struct row rows[STATUS_MAX + 1] = {STATUS_CODES(ROW)};
#undef ROW

/* The number of every code must fit the low 8 bits and be at most STATUS_MAX. */
#define CHECK(name, value, primary, text)                                                          \
	_Static_assert(-(value) >= 1 && -(value) <= STATUS_MAX, #name " is out of range");
STATUS_CODES(CHECK)
#undef CHECK
_Static_assert(STATUS_MAX <= 0xff, "code numbers live in the low 8 bits");

/* The row of code, or NULL when code is not one (nor 0). */
static const struct row *row_of(int code)
{
	unsigned n;

	if (code >= 0 || code < -0x7fffff)
		return NULL;
	n = (unsigned)-code;
	if (n > 0xff && (int)(n & 0xff) != -STATUS_ESYS)
		return NULL;
	n &= 0xff;
	if (n > STATUS_MAX || !rows[n].text)
		return NULL;
	return &rows[n];
}

const char *status_str(int code)
{
	const struct row *r;
	int e;

	if (code == 0)
		return "success";
	e = status_errno(code);
	if (e)
		return strerror(e);
	r = row_of(code);
	return r ? r->text : "unknown error";
}

int status_primary(int code)
{
	const struct row *r = row_of(code);

	return r ? r->primary : code;
}

bool status_known(int code)
{
	return code == 0 || row_of(code) != NULL;
}

int status_from_errno(int e)
{
	if (e <= 0 || e > 0x7fff)
		return STATUS_ESYS;
	return -(-STATUS_ESYS | e << 8);
}

int status_errno(int code)
{
	unsigned n;

	if (code >= 0 || code < -0x7fffff)
		return 0;
	n = (unsigned)-code;
	if ((int)(n & 0xff) != -STATUS_ESYS)
		return 0;
	return (int)(n >> 8);
}
