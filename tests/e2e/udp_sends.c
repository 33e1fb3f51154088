/*
 * udp_sends: every way a UDP socket can send, for the e2e tests
 * (test_udp_probe.py). Runs inside the fenced cgroup; one socket, steps run
 * in order, one JSON line on stdout:
 *   {"pid": N, "steps": [{"step": "send", "ok": false, "errno": "EPERM", "bytes": 0}, ...]}
 *
 *   udp_sends inet|inet6 STEP...
 *     connect ADDR PORT   connect()
 *     unspec              connect(AF_UNSPEC): disconnect
 *     sendto ADDR PORT    sendto() with an explicit address
 *     send | write | sendmsg | sendmmsg   no address: to the connected peer
 *     uring-send | uring-sendmsg          the same through io_uring
 *                                          (IORING_OP_SEND / IORING_OP_SENDMSG)
 *     recv                wait up to 1 s for one datagram ("bytes": its size)
 *
 * Each send carries "egd-<step>". io_uring is driven by raw syscalls (no
 * liburing), one submission at a time, so a result is that send's result.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *errname(int e)
{
	switch (e) {
	case 0: return "";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ENETUNREACH: return "ENETUNREACH";
	case EHOSTUNREACH: return "EHOSTUNREACH";
	case ECONNREFUSED: return "ECONNREFUSED";
	case EDESTADDRREQ: return "EDESTADDRREQ";
	case ENOTCONN: return "ENOTCONN";
	case EAGAIN: return "EAGAIN";
	case EINVAL: return "EINVAL";
	case ENOSYS: return "ENOSYS";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case ETIMEDOUT: return "ETIMEDOUT";
	default: return "EOTHER";
	}
}

static int make_addr(int family, const char *addr, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((unsigned short)atoi(port));
		*len = sizeof(*a);
		return inet_pton(AF_INET, addr, &a->sin_addr) == 1 ? 0 : -1;
	}
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
	a->sin6_family = AF_INET6;
	a->sin6_port = htons((unsigned short)atoi(port));
	*len = sizeof(*a);
	return inet_pton(AF_INET6, addr, &a->sin6_addr) == 1 ? 0 : -1;
}

/* One io_uring with one entry: set up, submit one SQE, reap its CQE. */
struct ring {
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static int ring_init(struct ring *r)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	r->fd = (int)syscall(__NR_io_uring_setup, 1, &p);
	if (r->fd < 0)
		return -errno;
	size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	char *sq = mmap(0, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
	char *cq = mmap(0, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED)
		return -errno;
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	return 0;
}

/* Returns the CQE's res (bytes sent or -errno), or -errno of the syscall. */
static int ring_run(struct ring *r, const struct io_uring_sqe *sqe)
{
	unsigned tail = *r->sq_tail, idx = tail & *r->sq_mask;
	r->sqes[idx] = *sqe;
	r->sq_array[idx] = idx;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, 0, 0) < 0)
		return -errno;
	unsigned head = *r->cq_head;
	if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
		return -EAGAIN;
	int res = r->cqes[head & *r->cq_mask].res;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

static int uring_send(int fd, const char *buf, size_t n, int as_msg)
{
	static struct ring r;
	static int ready;
	if (!ready) {
		int err = ring_init(&r);
		if (err)
			return err;
		ready = 1;
	}
	struct iovec iov = {(void *)buf, n};
	struct msghdr msg;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	struct io_uring_sqe sqe;
	memset(&sqe, 0, sizeof(sqe));
	sqe.fd = fd;
	if (as_msg) {
		sqe.opcode = IORING_OP_SENDMSG;
		sqe.addr = (unsigned long)&msg;
		sqe.len = 1;
	} else {
		sqe.opcode = IORING_OP_SEND;
		sqe.addr = (unsigned long)buf;
		sqe.len = (unsigned)n;
	}
	return ring_run(&r, &sqe);
}

/* Runs one sending step; returns bytes sent or -errno. */
static long send_step(int fd, const char *step, const char *buf, size_t n)
{
	long rc;
	if (!strcmp(step, "send")) {
		rc = send(fd, buf, n, 0);
	} else if (!strcmp(step, "write")) {
		rc = write(fd, buf, n);
	} else if (!strcmp(step, "sendmsg")) {
		struct iovec iov = {(void *)buf, n};
		struct msghdr msg;
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		rc = sendmsg(fd, &msg, 0);
	} else if (!strcmp(step, "sendmmsg")) {
		struct iovec iov = {(void *)buf, n};
		struct mmsghdr mm;
		memset(&mm, 0, sizeof(mm));
		mm.msg_hdr.msg_iov = &iov;
		mm.msg_hdr.msg_iovlen = 1;
		rc = sendmmsg(fd, &mm, 1, 0);
		if (rc == 1)
			rc = mm.msg_len;
	} else if (!strcmp(step, "uring-send") || !strcmp(step, "uring-sendmsg")) {
		int res = uring_send(fd, buf, n, !strcmp(step, "uring-sendmsg"));
		if (res < 0) {
			errno = -res;
			return -1;
		}
		return res;
	} else {
		errno = EINVAL;
		return -1;
	}
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 3 || (strcmp(argv[1], "inet") && strcmp(argv[1], "inet6"))) {
		fprintf(stderr, "usage: udp_sends inet|inet6 STEP...\n");
		return 2;
	}
	int family = !strcmp(argv[1], "inet") ? AF_INET : AF_INET6;
	int fd = socket(family, SOCK_DGRAM, 0);
	if (fd < 0) {
		printf("{\"pid\": %d, \"steps\": [{\"step\": \"socket\", \"ok\": false, \"errno\": \"%s\", \"bytes\": 0}]}\n",
		       getpid(), errname(errno));
		return 0;
	}
	printf("{\"pid\": %d, \"steps\": [", getpid());
	const char *sep = "";
	for (int i = 2; i < argc; i++) {
		const char *step = argv[i];
		long rc = -1;
		int err = 0;
		if (!strcmp(step, "connect") || !strcmp(step, "sendto")) {
			struct sockaddr_storage ss;
			socklen_t len;
			if (i + 2 >= argc || make_addr(family, argv[i + 1], argv[i + 2], &ss, &len)) {
				fprintf(stderr, "udp_sends: %s needs ADDR PORT of the socket's family\n", step);
				return 2;
			}
			i += 2;
			if (!strcmp(step, "connect")) {
				rc = connect(fd, (struct sockaddr *)&ss, len);
			} else {
				char buf[32];
				int n = snprintf(buf, sizeof(buf), "egd-%s", step);
				rc = sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&ss, len);
			}
		} else if (!strcmp(step, "unspec")) {
			struct sockaddr sa;
			memset(&sa, 0, sizeof(sa));
			sa.sa_family = AF_UNSPEC;
			rc = connect(fd, &sa, sizeof(sa));
		} else if (!strcmp(step, "recv")) {
			struct pollfd p = {fd, POLLIN, 0};
			char buf[2048];
			rc = poll(&p, 1, 1000);
			if (rc == 0) {
				rc = -1;
				errno = ETIMEDOUT;
			} else if (rc > 0) {
				rc = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
			}
		} else {
			char buf[32];
			int n = snprintf(buf, sizeof(buf), "egd-%s", step);
			rc = send_step(fd, step, buf, (size_t)n);
		}
		if (rc < 0)
			err = errno;
		printf("%s{\"step\": \"%s\", \"ok\": %s, \"errno\": %s%s%s, \"bytes\": %ld}", sep, step, err ? "false" : "true", err ? "\"" : "", err ? errname(err) : "null", err ? "\"" : "",
		       rc > 0 ? rc : 0);
		sep = ", ";
		fflush(stdout);
	}
	printf("]}\n");
	close(fd);
	return 0;
}
