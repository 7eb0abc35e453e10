/*
 * fuzz_multipart: the streaming multipart/form-data parser behind uploads.
 *
 * The input is a Content-Type value, a newline, and a body; without a
 * newline in its first 256 bytes the whole input is the body under a fixed
 * Content-Type.  The body is fed three ways: in one piece, in pieces of
 * pseudo-random sizes (seeded from the input, so runs repeat), and, when
 * short, one byte at a time, the way a slow client delivers it.
 *
 * The oracle is that the network's split must not matter: every way of
 * feeding yields the same verdict, the same parts (name, filename) and the
 * same bytes per part, and the same "done" state.  A part named "stop" is
 * refused by the callback, which must fail the parse in every mode.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"

#define FUZZ_MP_CTYPE_MAX	256
#define FUZZ_MP_BYTEWISE_MAX	4096

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the callbacks saw: a flat log of events. */
struct fuzz_log {
	uint8_t	*buf;
	size_t	 len, cap;
	int	 in_data;	/* the last event was data: merge into it */
	size_t	 data_len_at;	/* where that event's length lives */
	int	 open;		/* a part has begun and not ended */
};

static void
fuzz_log_put(struct fuzz_log *l, const void *p, size_t n)
{
	uint8_t *nb;
	size_t ncap;

	if (l->len + n > l->cap) {
		ncap = l->cap ? l->cap : 256;
		while (ncap < l->len + n)
			ncap *= 2;
		if ((nb = realloc(l->buf, ncap)) == NULL)
			abort();
		l->buf = nb;
		l->cap = ncap;
	}
	memcpy(l->buf + l->len, p, n);
	l->len += n;
}

static int
fuzz_mp_begin(void *arg, const struct mp_part *part)
{
	struct fuzz_log *l = arg;

	if (l->open)
		abort();	/* a part began inside another */
	if (memchr(part->name, '\0', sizeof(part->name)) == NULL ||
	    memchr(part->filename, '\0', sizeof(part->filename)) == NULL)
		abort();
	l->in_data = 0;
	l->open = 1;
	fuzz_log_put(l, "B", 1);
	fuzz_log_put(l, part->name, strlen(part->name) + 1);
	fuzz_log_put(l, part->filename, strlen(part->filename) + 1);
	return strcmp(part->name, "stop") == 0;
}

static int
fuzz_mp_data(void *arg, const void *buf, size_t len)
{
	struct fuzz_log *l = arg;
	uint64_t n;

	if (!l->open || len == 0)
		abort();	/* data outside a part, or an empty run */
	if (!l->in_data) {
		n = 0;
		fuzz_log_put(l, "D", 1);
		l->data_len_at = l->len;
		fuzz_log_put(l, &n, sizeof(n));
		l->in_data = 1;
	}
	memcpy(&n, l->buf + l->data_len_at, sizeof(n));
	n += len;
	memcpy(l->buf + l->data_len_at, &n, sizeof(n));
	fuzz_log_put(l, buf, len);
	return 0;
}

static int
fuzz_mp_end(void *arg)
{
	struct fuzz_log *l = arg;

	if (!l->open)
		abort();
	l->open = 0;
	l->in_data = 0;
	fuzz_log_put(l, "E", 1);
	return 0;
}

static const struct mp_callbacks fuzz_mp_cb = {
	fuzz_mp_begin, fuzz_mp_data, fuzz_mp_end
};

struct fuzz_run {
	struct fuzz_log	 log;
	int		 failed;
	int		 done;
};

/* Feed body in pieces: step 0 = one piece, 1 = bytewise, else random. */
static void
fuzz_mp_run(const char *ctype, const uint8_t *body, size_t len,
    unsigned step, uint64_t seed, struct fuzz_run *out)
{
	struct mp *p;
	size_t off = 0, n;
	int bad;

	memset(out, 0, sizeof(*out));
	if ((p = mp_new(ctype, &fuzz_mp_cb, &out->log, &bad)) == NULL) {
		if (!bad)
			abort();	/* only allocation failure says bad = 0 */
		out->failed = -1;
		return;
	}
	while (off < len) {
		if (step == 0)
			n = len - off;
		else if (step == 1)
			n = 1;
		else {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			n = 1 + (size_t)(seed % 97);
			if (n > len - off)
				n = len - off;
		}
		if (mp_feed(p, body + off, n) != 0) {
			out->failed = 1;
			if (mp_error(p) == NULL || mp_feed(p, "x", 1) == 0)
				abort();	/* errors stick */
			break;
		}
		off += n;
	}
	out->done = mp_done(p);
	mp_free(p);
}

static void
fuzz_mp_same(const struct fuzz_run *a, const struct fuzz_run *b)
{
	if (a->failed != b->failed || a->done != b->done)
		abort();
	if (!a->failed && (a->log.len != b->log.len || (a->log.len > 0 &&
	    memcmp(a->log.buf, b->log.buf, a->log.len) != 0)))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char ctype[FUZZ_MP_CTYPE_MAX + 1];
	const uint8_t *nl, *body = data;
	struct fuzz_run whole, split, bytes;
	size_t blen = size, i;
	uint64_t seed = 0x9e3779b97f4a7c15ULL;

	snprintf(ctype, sizeof(ctype), "multipart/form-data; boundary=XyZzy");
	if (size == 0)
		return 0;
	nl = memchr(data, '\n', size < FUZZ_MP_CTYPE_MAX ? size :
	    FUZZ_MP_CTYPE_MAX);
	if (nl != NULL) {
		memcpy(ctype, data, (size_t)(nl - data));
		ctype[nl - data] = '\0';
		body = nl + 1;
		blen = size - (size_t)(nl - data) - 1;
	}
	for (i = 0; i < blen && i < 64; i++)
		seed = (seed ^ body[i]) * 1099511628211ULL;
	seed |= 1;

	fuzz_mp_run(ctype, body, blen, 0, seed, &whole);
	fuzz_mp_run(ctype, body, blen, 2, seed, &split);
	fuzz_mp_same(&whole, &split);
	if (blen <= FUZZ_MP_BYTEWISE_MAX) {
		fuzz_mp_run(ctype, body, blen, 1, seed, &bytes);
		fuzz_mp_same(&whole, &bytes);
		free(bytes.log.buf);
	}
	free(whole.log.buf);
	free(split.log.buf);
	return 0;
}
