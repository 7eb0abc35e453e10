/*
 * sha256: a thin wrapper over libcrypto's EVP digest interface.  EVP rather
 * than the deprecated SHA256_* calls so that OpenSSL 3 picks the fastest
 * provider implementation; the opaque context keeps OpenSSL out of every
 * other header.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "sha256.h"

struct sha256_ctx {
	EVP_MD_CTX	*md;
};

int
sha256_new(struct sha256_ctx **out)
{
	struct sha256_ctx *c = NULL;
	int rc = 0;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->md = EVP_MD_CTX_new()) == NULL) {
		rc = WB_E_NOMEM;
		goto out;
	}
	if (EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
		rc = WB_E_INTERNAL;
		goto out;
	}
	*out = c;
	c = NULL;
out:
	sha256_free(c);
	return rc;
}

int
sha256_update(struct sha256_ctx *c, const void *buf, size_t len)
{
	if (len == 0)
		return 0;
	if (EVP_DigestUpdate(c->md, buf, len) != 1)
		return WB_E_INTERNAL;
	return 0;
}

int
sha256_final(struct sha256_ctx *c, uint8_t out[SHA256_LEN])
{
	unsigned int n = 0;

	if (EVP_DigestFinal_ex(c->md, out, &n) != 1 || n != SHA256_LEN)
		return WB_E_INTERNAL;
	return 0;
}

void
sha256_free(struct sha256_ctx *c)
{
	if (c == NULL)
		return;
	EVP_MD_CTX_free(c->md);
	free(c);
}

int
sha256_buf(const void *buf, size_t len, uint8_t out[SHA256_LEN])
{
	struct sha256_ctx *c = NULL;
	int rc;

	if ((rc = sha256_new(&c)) != 0)
		goto out;
	if ((rc = sha256_update(c, buf, len)) != 0)
		goto out;
	rc = sha256_final(c, out);
out:
	sha256_free(c);
	return rc;
}

void
sha256_hex(const uint8_t digest[SHA256_LEN], char out[SHA256_HEXLEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < SHA256_LEN; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 0xf];
	}
	out[SHA256_HEXLEN] = '\0';
}

/* ---- whole files -------------------------------------------------------- */

#define SHA256_FILE_BLOCK	((size_t)4 << 20)
#define SHA256_FILE_SLOTS	3

struct sha256_ring {
	int		 fd;		/* through the page cache */
	int		 dfd;		/* O_DIRECT, or -1 */
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	char		*buf[SHA256_FILE_SLOTS];
	ssize_t		 len[SHA256_FILE_SLOTS];	/* bytes, 0 at the end */
	int		 full[SHA256_FILE_SLOTS];
	int		 err;		/* errno of a failed read */
	int		 stop;		/* the hasher gave up */
};

/*
 * Fill one block: from the page cache what is there (preadv2 with
 * RWF_NOWAIT never waits for the disk), the rest with O_DIRECT when the
 * offset allows, else through the cache.
 */
static ssize_t
sha256_read_block(struct sha256_ring *r, char *buf, uint64_t off,
    int *errnum)
{
	size_t got = 0;

	while (got < SHA256_FILE_BLOCK) {
		struct iovec iov = { buf + got, SHA256_FILE_BLOCK - got };
		uint64_t at = off + got;
		ssize_t n = preadv2(r->fd, &iov, 1, (off_t)at, RWF_NOWAIT);
		int fd = r->fd;

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN && r->dfd >= 0 &&
		    at % 4096 == 0 && got % 4096 == 0)
			fd = r->dfd;
		if (n == -1 && (errno == EAGAIN || errno == EOPNOTSUPP))
			n = pread(fd, buf + got, SHA256_FILE_BLOCK - got,
			    (off_t)at);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			*errnum = errno;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static void *
sha256_reader(void *arg)
{
	struct sha256_ring *r = arg;
	uint64_t off = 0;
	int i = 0, errnum = 0;

	for (;;) {
		ssize_t n;

		pthread_mutex_lock(&r->mu);
		while (r->full[i] && !r->stop)
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->stop) {
			pthread_mutex_unlock(&r->mu);
			break;
		}
		pthread_mutex_unlock(&r->mu);
		n = sha256_read_block(r, r->buf[i], off, &errnum);
		pthread_mutex_lock(&r->mu);
		r->len[i] = n < 0 ? 0 : n;
		r->err = n < 0 ? errnum : 0;
		r->full[i] = 1;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
		if (n <= 0)
			break;
		off += (uint64_t)n;
		i = (i + 1) % SHA256_FILE_SLOTS;
	}
	return NULL;
}

int
sha256_file(const char *path, uint8_t out[SHA256_LEN], uint64_t *size,
    int *errnum)
{
	struct sha256_ring r;
	struct sha256_ctx *c = NULL;
	pthread_t tid;
	int i, started = 0, rc = 0;

	memset(&r, 0, sizeof(r));
	*size = 0;
	*errnum = 0;
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	r.dfd = -1;
	if ((r.fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		*errnum = errno;
		rc = WB_E_IO;
		goto out;
	}
	r.dfd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
	for (i = 0; i < SHA256_FILE_SLOTS; i++)
		if (posix_memalign((void **)&r.buf[i], 4096,
		    SHA256_FILE_BLOCK) != 0) {
			r.buf[i] = NULL;
			rc = WB_E_NOMEM;
			goto out;
		}
	if ((rc = sha256_new(&c)) != 0)
		goto out;
	if (pthread_create(&tid, NULL, sha256_reader, &r) != 0) {
		rc = WB_E_NOMEM;
		goto out;
	}
	started = 1;
	for (i = 0;; i = (i + 1) % SHA256_FILE_SLOTS) {
		ssize_t n;

		pthread_mutex_lock(&r.mu);
		while (!r.full[i])
			pthread_cond_wait(&r.cv, &r.mu);
		n = r.len[i];
		if (r.err != 0) {
			*errnum = r.err;
			rc = WB_E_IO;
		}
		pthread_mutex_unlock(&r.mu);
		if (rc != 0 || n == 0)
			break;
		if ((rc = sha256_update(c, r.buf[i], (size_t)n)) != 0)
			break;
		*size += (uint64_t)n;
		pthread_mutex_lock(&r.mu);
		r.full[i] = 0;
		pthread_cond_broadcast(&r.cv);
		pthread_mutex_unlock(&r.mu);
	}
	if (rc == 0)
		rc = sha256_final(c, out);
out:
	if (started) {
		pthread_mutex_lock(&r.mu);
		r.stop = 1;
		pthread_cond_broadcast(&r.cv);
		pthread_mutex_unlock(&r.mu);
		pthread_join(tid, NULL);
	}
	sha256_free(c);
	for (i = 0; i < SHA256_FILE_SLOTS; i++)
		free(r.buf[i]);
	if (r.fd >= 0)
		close(r.fd);
	if (r.dfd >= 0)
		close(r.dfd);
	pthread_mutex_destroy(&r.mu);
	pthread_cond_destroy(&r.cv);
	return rc;
}
