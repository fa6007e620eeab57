/*
 * wire.c - framing of the messages between the daemon, the zygote and the
 * executors (see wire.h).
 */
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int wire_send_msg(int fd, const char *buf, size_t len, const int *fds, int nfds)
{
	uint32_t hdr = (uint32_t)len;
	struct iovec iov[2] = {{&hdr, sizeof(hdr)}, {(void *)buf, len}};
	union {
		char b[CMSG_SPACE(sizeof(int) * WIRE_FDS_MAX)];
		struct cmsghdr align;
	} u;
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
	size_t left = sizeof(hdr) + len;

	if (len > WIRE_MSG_MAX || nfds > WIRE_FDS_MAX)
		return status_from_errno(EMSGSIZE);
	if (nfds > 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		m.msg_control = u.b;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	while (left > 0) {
		ssize_t r = sendmsg(fd, &m, MSG_NOSIGNAL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return status_from_errno(errno);
		}
		left -= (size_t)r;
		m.msg_control = NULL;
		m.msg_controllen = 0;
		while (r > 0 && m.msg_iovlen > 0) {
			if ((size_t)r >= m.msg_iov[0].iov_len) {
				r -= (ssize_t)m.msg_iov[0].iov_len;
				m.msg_iov++;
				m.msg_iovlen--;
			} else {
				m.msg_iov[0].iov_base = (char *)m.msg_iov[0].iov_base + r;
				m.msg_iov[0].iov_len -= (size_t)r;
				r = 0;
			}
		}
	}
	return 0;
}

/* The descriptors that came with m (SCM_RIGHTS): into fds while *n < max,
 * the others closed. */
static void take_fds(struct msghdr *m, int *fds, int max, int *n)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int got_fds[WIRE_FDS_MAX * 2];

		if (k > WIRE_FDS_MAX * 2)
			k = WIRE_FDS_MAX * 2;
		memcpy(got_fds, CMSG_DATA(c), k * sizeof(int));
		for (size_t i = 0; i < k; i++) {
			if (*n < max)
				fds[(*n)++] = got_fds[i];
			else
				close(got_fds[i]);
		}
	}
}

int wire_recv_msg(int fd, char **buf, size_t *len, int *fds, int *nfds)
{
	uint32_t hdr = 0;
	size_t got = 0;
	int max = nfds ? *nfds : 0, n = 0, ret;
	char *p = NULL;

	*buf = NULL;
	if (len)
		*len = 0;
	if (nfds)
		*nfds = 0;
	while (got < sizeof(hdr)) {
		struct iovec iov = {(char *)&hdr + got, sizeof(hdr) - got};
		union {
			char b[CMSG_SPACE(sizeof(int) * WIRE_FDS_MAX)];
			struct cmsghdr align;
		} u;
		struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
				   .msg_controllen = sizeof(u.b)};
		ssize_t r = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			ret = status_from_errno(errno);
			goto fail;
		}
		take_fds(&m, fds, max, &n);
		if (r == 0) {
			ret = got ? STATUS_EPROTO : STATUS_ECLOSED;
			goto fail;
		}
		got += (size_t)r;
	}
	if (hdr > WIRE_MSG_MAX) {
		ret = STATUS_ETOOBIG;
		goto fail;
	}
	p = malloc((size_t)hdr + 1);
	if (!p) {
		ret = STATUS_ENOMEM;
		goto fail;
	}
	got = 0;
	while (got < hdr) {
		ssize_t r = read(fd, p + got, hdr - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = r < 0 ? status_from_errno(errno) : STATUS_EPROTO;
			goto fail;
		}
		got += (size_t)r;
	}
	p[hdr] = '\0';
	*buf = p;
	if (len)
		*len = hdr;
	if (nfds)
		*nfds = n;
	return 0;
fail:
	free(p);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	return ret;
}

int wire_send_json(int fd, struct json_object *o, const int *fds, int nfds)
{
	size_t len = 0;
	const char *s;

	if (!o)
		return STATUS_ENOMEM;
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
					      &len);
	if (!s)
		return STATUS_ENOMEM;
	return wire_send_msg(fd, s, len, fds, nfds);
}

int wire_recv_json(int fd, struct json_object **o, int *fds, int *nfds)
{
	char *buf;
	int r = wire_recv_msg(fd, &buf, NULL, fds, nfds);

	*o = NULL;
	if (r < 0)
		return r;
	*o = json_tokener_parse(buf);
	free(buf);
	if (!*o || !json_object_is_type(*o, json_type_object)) {
		json_object_put(*o);
		*o = NULL;
		if (nfds)
			for (int i = 0; i < *nfds; i++)
				close(fds[i]);
		return STATUS_EPROTO;
	}
	return 0;
}

struct json_object *wire_msg(const char *op)
{
	struct json_object *m = json_object_new_object();

	if (m && json_object_object_add(m, "op", json_object_new_string(op)) < 0) {
		json_object_put(m);
		m = NULL;
	}
	return m;
}

void wire_msg_int(struct json_object *m, const char *k, int64_t v)
{
	if (m)
		json_object_object_add(m, k, json_object_new_int64(v));
}

void wire_msg_str(struct json_object *m, const char *k, const char *v)
{
	if (m)
		json_object_object_add(m, k, v ? json_object_new_string(v) : NULL);
}

const char *wire_jstr(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int64_t wire_jint(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v))
		return 0;
	return json_object_get_int64(v);
}

bool wire_op_is(struct json_object *o, const char *op)
{
	const char *s = wire_jstr(o, "op");

	return s && strcmp(s, op) == 0;
}
