/*
 * fuzz_npz: the whole .npz reader, both passes, both ways of reading.
 *
 * The input is an archive.  It is written to a memfd (a regular file, so
 * the reader takes its seekable path: our central-directory vetting, then
 * libarchive's seekable zip reader) and, when it fits in a pipe buffer,
 * also to a pipe (the streaming path the CLI takes for a FIFO).  Each time
 * the index is read (npz_index_read), turned into JSON, every key is looked
 * up, and then the second pass (npz_reader_*) reads and decodes every
 * tensor, as the converter does.  Caps are set low so a hostile archive
 * costs at most a few tens of megabytes.
 *
 * A seekable archive is also read through a cursor (npz_cursor_*, the
 * converter's random access), every member whole and then in three pieces.
 *
 * Checked beyond "no crash": errors carry a code and a message, entries
 * come back in index order exactly once, a key finds its own entry, a
 * member read in pieces succeeds or fails as it does whole and gives the
 * same bytes, and when both ways accept an archive, every tensor the
 * seekable way sees the streaming way sees alike.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

#include "npz.h"
#include "wb_err.h"

#define FUZZ_NPZ_PIPE_MAX	65536	/* a pipe's default capacity */
#define FUZZ_NPZ_DECODE_MAX	(1u << 20)

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_npz_limits(struct npz_limits *l)
{
	npz_limits_default(l);
	l->max_members = 4096;
	l->max_tensor_bytes = 16u << 20;
	l->max_total_bytes = 48u << 20;
}

static void
fuzz_npz_err(int rc, const struct wb_err *err)
{
	if (rc == 0 || err->code == WB_OK || err->msg[0] == '\0' ||
	    (int)err->code != rc)
		abort();
}

/*
 * Write all of data to fd: a memfd, or the non-blocking write end of a
 * pipe, which may be smaller than usual (then -1: skip that pass).
 */
static int
fuzz_npz_write(int fd, const uint8_t *data, size_t size)
{
	ssize_t n;

	while (size > 0) {
		n = write(fd, data, size);
		if (n == -1 && errno == EAGAIN)
			return -1;
		if (n <= 0)
			abort();
		data += n;
		size -= (size_t)n;
	}
	return 0;
}

/*
 * A path that opens a fresh copy of the input: a new memfd, or a new pipe
 * already holding the input with its write end closed.  *fd is the
 * descriptor to close afterwards.  Returns -1 if the pipe had no room.
 */
static int
fuzz_npz_source(int seekable, const uint8_t *data, size_t size, int *fd,
    char *path, size_t len)
{
	int p[2], rc;

	if (seekable) {
		if ((*fd = memfd_create("fuzz.npz", MFD_CLOEXEC)) == -1)
			abort();
		(void)fuzz_npz_write(*fd, data, size);
	} else {
		if (pipe2(p, O_CLOEXEC) == -1 ||
		    fcntl(p[1], F_SETFL, O_NONBLOCK) == -1)
			abort();
		rc = fuzz_npz_write(p[1], data, size);
		close(p[1]);
		if (rc != 0) {
			close(p[0]);
			return -1;
		}
		*fd = p[0];
	}
	snprintf(path, len, "/proc/self/fd/%d", *fd);
	return 0;
}

/* The second pass over every member, as convert_stream does it. */
static void
fuzz_npz_read_all(const char *path, const struct npz_index *ix,
    const struct npz_limits *lim)
{
	struct npz_reader *r = NULL;
	struct wb_err err;
	const struct npz_entry *e;
	size_t idx, count = 0;
	void *buf;
	float *dst;
	int rc;

	wb_err_clear(&err);
	if ((rc = npz_reader_open(path, ix, lim, &r, &err)) != 0) {
		fuzz_npz_err(rc, &err);
		return;
	}
	for (;;) {
		wb_err_clear(&err);
		rc = npz_reader_next(r, &idx, &err);
		if (rc == 0) {
			/* The end, after every member, and it stays the end. */
			if (count != ix->n || npz_reader_next(r, &idx,
			    &err) != 0)
				abort();
			break;
		}
		if (rc < 0) {
			if (err.code == WB_OK || err.msg[0] == '\0')
				abort();
			break;
		}
		if (idx != count++ || idx >= ix->n)
			abort();
		e = &ix->e[idx];
		if (e->hdr.nbytes > lim->max_tensor_bytes)
			abort();
		if ((buf = malloc(e->hdr.nbytes > 0 ?
		    (size_t)e->hdr.nbytes : 1)) == NULL)
			abort();
		rc = npz_reader_read(r, buf, (size_t)e->hdr.nbytes, &err);
		if (rc != 0) {
			fuzz_npz_err(rc, &err);
			free(buf);
			break;
		}
		if (e->hdr.nelem > 0 && e->hdr.nelem <= FUZZ_NPZ_DECODE_MAX) {
			if ((dst = malloc((size_t)e->hdr.nelem *
			    sizeof(*dst))) == NULL)
				abort();
			npy_to_f32(&e->hdr, buf, dst);
			free(dst);
		}
		free(buf);
	}
	npz_reader_close(r);
}

/* Every member through a cursor, whole and in three pieces: alike. */
static void
fuzz_npz_cursor(const char *path, const struct npz_index *ix,
    const struct npz_limits *lim)
{
	struct npz_cursor *c = NULL;
	struct wb_err err;
	size_t i, n, a, b;
	uint8_t *whole, *part;
	int rw, rp;

	wb_err_clear(&err);
	if (!npz_index_random_access(ix))
		return;
	if ((rw = npz_cursor_open(path, ix, lim, &c, &err)) != 0) {
		fuzz_npz_err(rw, &err);
		return;
	}
	for (i = 0; i < ix->n; i++) {
		n = (size_t)ix->e[i].hdr.nbytes;
		a = n / 3;
		b = n - n / 3;
		if ((whole = malloc(n ? n : 1)) == NULL ||
		    (part = malloc(n ? n : 1)) == NULL)
			abort();
		wb_err_clear(&err);
		if ((rw = npz_cursor_read(c, i, whole, n, &err)) != 0)
			fuzz_npz_err(rw, &err);
		wb_err_clear(&err);
		if ((rp = npz_cursor_begin(c, i, &err)) == 0 &&
		    (rp = npz_cursor_part(c, part, a, &err)) == 0 &&
		    (rp = npz_cursor_part(c, part + a, b - a, &err)) == 0 &&
		    (rp = npz_cursor_part(c, part + b, n - b, &err)) == 0)
			rp = npz_cursor_end(c, &err);
		if (rp != 0)
			fuzz_npz_err(rp, &err);
		if ((rw == 0) != (rp == 0) ||
		    (rw == 0 && memcmp(whole, part, n) != 0))
			abort();
		free(whole);
		free(part);
	}
	npz_cursor_close(c);
}

static struct npz_index *
fuzz_npz_pass(int seekable, const uint8_t *data, size_t size)
{
	struct npz_limits lim;
	struct npz_index *ix = NULL;
	struct wb_err err;
	char path[64];
	json_t *j;
	size_t i;
	int fd, rc;

	fuzz_npz_limits(&lim);
	wb_err_clear(&err);
	if (fuzz_npz_source(seekable, data, size, &fd, path, sizeof(path)))
		return NULL;
	rc = npz_index_read(path, &lim, &ix, &err);
	close(fd);
	if (rc != 0) {
		fuzz_npz_err(rc, &err);
		if (ix != NULL)
			abort();
		return NULL;
	}
	if (ix == NULL || ix->n > lim.max_members ||
	    ix->total_bytes > lim.max_total_bytes)
		abort();
	for (i = 0; i < ix->n; i++) {
		if (ix->e[i].hdr.ndim < 0 ||
		    npz_index_find(ix, ix->e[i].key) != (long)i)
			abort();
	}
	if ((j = npz_index_json(ix)) == NULL)
		abort();
	json_decref(j);

	if (fuzz_npz_source(seekable, data, size, &fd, path,
	    sizeof(path)) == 0) {
		fuzz_npz_read_all(path, ix, &lim);
		close(fd);
	}
	if (seekable && fuzz_npz_source(seekable, data, size, &fd, path,
	    sizeof(path)) == 0) {
		fuzz_npz_cursor(path, ix, &lim);
		close(fd);
	}
	return ix;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct npz_index *a, *b = NULL;
	size_t i;

	a = fuzz_npz_pass(1, data, size);
	if (size <= FUZZ_NPZ_PIPE_MAX)
		b = fuzz_npz_pass(0, data, size);
	/*
	 * Both readers accepted it: every tensor the seekable reader (the
	 * daemon's) lists, the streaming one lists the same way.  Not the
	 * converse: local entries that no central directory names are
	 * invisible to the first and seen by the second (reported; see
	 * corpus/npz/crash-differential-empty-eocd.npz).
	 */
	if (a != NULL && b != NULL) {
		for (i = 0; i < a->n; i++) {
			long k = npz_index_find(b, a->e[i].key);

			if (k < 0 || strcmp(a->e[i].name, b->e[k].name) != 0 ||
			    a->e[i].hdr.nbytes != b->e[k].hdr.nbytes ||
			    a->e[i].hdr.ndim != b->e[k].hdr.ndim ||
			    memcmp(a->e[i].hdr.shape, b->e[k].hdr.shape,
			    sizeof(a->e[i].hdr.shape)) != 0)
				abort();
		}
	}
	npz_index_free(a);
	npz_index_free(b);
	return 0;
}
