/*
 * multipart: an incremental multipart/form-data parser (RFC 7578).
 *
 * Fed the body in whatever pieces the network delivers, it calls back at
 * the start of each part (with its name and filename), for each run of the
 * part's data, and at its end.  Memory is fixed: the part headers are
 * capped at MP_HEADER_MAX and data is never buffered, so a gigabyte upload
 * costs the same as a kilobyte one.  We wrote our own rather than use
 * MHD_PostProcessor because that one also buffers urlencoded values and
 * gives no way to cap a part or tell a truncated body from a finished one.
 */
#ifndef MULTIPART_H
#define MULTIPART_H

#include <stddef.h>

#define MP_BOUNDARY_MAX	70	/* RFC 2046 */
#define MP_HEADER_MAX	8192	/* all headers of one part */
#define MP_NAME_MAX	128
#define MP_FILENAME_MAX	256

struct mp_part {
	char	 name[MP_NAME_MAX];
	char	 filename[MP_FILENAME_MAX];	/* "" if none */
};

/* Callbacks return 0 to go on, non-zero to stop the parse (mp_feed fails). */
struct mp_callbacks {
	int	(*begin)(void *arg, const struct mp_part *part);
	int	(*data)(void *arg, const void *buf, size_t len);
	int	(*end)(void *arg);
};

struct mp;

/*
 * A parser for the body of a request whose Content-Type is ctype.  Returns
 * NULL if ctype is not multipart/form-data with a valid boundary (or on
 * allocation failure: *bad says which).  Free with mp_free.
 */
struct mp *mp_new(const char *ctype, const struct mp_callbacks *cb,
	    void *arg, int *bad);
void	 mp_free(struct mp *p);

/* Feed bytes.  Returns 0, or -1 on malformed input or a callback's stop. */
int	 mp_feed(struct mp *p, const void *buf, size_t len);

/* 1 if the closing delimiter was seen (the body is complete). */
int	 mp_done(const struct mp *p);

/* A static description of the first error, for the problem detail. */
const char *mp_error(const struct mp *p);

#endif
