/* fuzz_wire.c - libFuzzer harness for the executor's message framing
 * (runtime/executor/wire.c): the input is what a peer wrote on the socket
 * (a 4-byte length and that many bytes, again and again, cut anywhere). It
 * goes through a socketpair to wire_recv_msg() and wire_recv_json() in turn
 * until the stream ends. Checks that every message fits the cap, is
 * NUL-terminated at its length, that a JSON message is an object, and that
 * every failure is one of the codes wire.h lists. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool expected_failure(int rc)
{
	return rc == STATUS_ECLOSED || rc == STATUS_EPROTO || rc == STATUS_ETOOBIG || rc == STATUS_ENOMEM;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	size_t off = 0;

	/* what a socket buffer holds without a reader: no thread needed */
	if (size > 100 * 1024)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return 0;
	while (off < size) {
		ssize_t n = write(sv[1], data + off, size - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(sv[1]);
	for (int i = 0;; i++) {
		int rc;

		if (i % 2 == 0) {
			char *buf = NULL;
			size_t len = 0;
			int nfds = WIRE_FDS_MAX, fds[WIRE_FDS_MAX];

			rc = wire_recv_msg(sv[0], &buf, &len, fds, &nfds);
			if (rc == 0) {
				if (!buf || len > WIRE_MSG_MAX || buf[len] != '\0' || nfds != 0)
					abort();
				free(buf);
				continue;
			}
			if (buf != NULL)
				abort();   /* a failure hands out nothing */
		} else {
			struct json_object *o = NULL;

			rc = wire_recv_json(sv[0], &o, NULL, NULL);
			if (rc == 0) {
				if (!json_object_is_type(o, json_type_object))
					abort();
				(void)wire_jstr(o, "op");
				(void)wire_jint(o, "id");
				json_object_put(o);
				continue;
			}
			if (o != NULL)
				abort();
		}
		if (!expected_failure(rc) && status_errno(rc) == 0)
			abort();
		break;
	}
	close(sv[0]);
	return 0;
}
