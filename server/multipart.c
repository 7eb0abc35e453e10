/*
 * multipart: the state machine behind mp_feed.  See multipart.h.
 *
 * The delimiter is "\r\n--" boundary.  Because a boundary cannot contain
 * CR, a partial match that fails can only restart at the failing byte, so
 * matching needs no look-back buffer: bytes of a broken partial match are
 * re-emitted from the delimiter itself.  The body's first delimiter has no
 * leading CRLF; we start the match as if it had been seen.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "multipart.h"

enum mp_state {
	MP_PREAMBLE,	/* before the first delimiter; data ignored */
	MP_AFTER_DELIM,	/* "--" ends the body, CRLF starts a part */
	MP_AFTER_DASH,	/* saw one '-' after a delimiter */
	MP_AFTER_CR,	/* saw CR after a delimiter */
	MP_HEADERS,
	MP_BODY,
	MP_EPILOGUE,
	MP_ERROR
};

struct mp {
	enum mp_state	 state;
	char		 delim[MP_BOUNDARY_MAX + 5];
	size_t		 dlen;
	size_t		 m;		/* bytes of delim matched so far */
	char		 hdr[MP_HEADER_MAX + 1];
	size_t		 hlen;
	struct mp_part	 part;
	struct mp_callbacks cb;
	void		*arg;
	const char	*error;
};

/*
 * Find parameter key in a header value like `form-data; name="x"`.
 * Copies its (unquoted) value into out; returns 1 if found.
 */
static int
mp_param(const char *v, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key), n;
	const char *p = v;

	while ((p = strchr(p, ';')) != NULL) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, key, klen) != 0 || p[klen] != '=')
			continue;
		p += klen + 1;
		n = 0;
		if (*p == '"') {
			p++;
			while (*p != '\0' && *p != '"') {
				if (*p == '\\' && p[1] != '\0')
					p++;
				if (n + 1 < outlen)
					out[n++] = *p;
				p++;
			}
		} else {
			while (*p != '\0' && *p != ';' && *p != ' ')
				if (n + 1 < outlen)
					out[n++] = *p++;
				else
					p++;
		}
		out[n] = '\0';
		return 1;
	}
	return 0;
}

struct mp *
mp_new(const char *ctype, const struct mp_callbacks *cb, void *arg, int *bad)
{
	struct mp *p;
	char boundary[MP_BOUNDARY_MAX + 2];
	size_t blen, i;

	*bad = 1;
	if (ctype == NULL || strncasecmp(ctype, "multipart/form-data", 19) != 0)
		return NULL;
	if (!mp_param(ctype + 19, "boundary", boundary, sizeof(boundary)))
		return NULL;
	blen = strlen(boundary);
	if (blen == 0 || blen > MP_BOUNDARY_MAX)
		return NULL;
	for (i = 0; i < blen; i++)
		if (boundary[i] == '\r' || boundary[i] == '\n')
			return NULL;
	*bad = 0;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	memcpy(p->delim, "\r\n--", 4);
	memcpy(p->delim + 4, boundary, blen);
	p->dlen = 4 + blen;
	p->m = 2;		/* the first delimiter may open the body */
	p->state = MP_PREAMBLE;
	p->cb = *cb;
	p->arg = arg;
	return p;
}

void
mp_free(struct mp *p)
{
	free(p);
}

int
mp_done(const struct mp *p)
{
	return p->state == MP_EPILOGUE;
}

const char *
mp_error(const struct mp *p)
{
	return p->error != NULL ? p->error : "malformed multipart body";
}

static int
mp_fail(struct mp *p, const char *why)
{
	if (p->error == NULL)
		p->error = why;
	p->state = MP_ERROR;
	return -1;
}

/* Parse the collected part headers and announce the part. */
static int
mp_headers_done(struct mp *p)
{
	char *line, *save = NULL, *colon, *v;
	int have_cd = 0;

	memset(&p->part, 0, sizeof(p->part));
	p->hdr[p->hlen] = '\0';
	for (line = strtok_r(p->hdr, "\r\n", &save); line != NULL;
	    line = strtok_r(NULL, "\r\n", &save)) {
		if ((colon = strchr(line, ':')) == NULL)
			return mp_fail(p, "part header without ':'");
		*colon = '\0';
		v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		if (strcasecmp(line, "Content-Disposition") != 0)
			continue;
		if (strncasecmp(v, "form-data", 9) != 0)
			return mp_fail(p, "part is not form-data");
		if (!mp_param(v, "name", p->part.name, sizeof(p->part.name)))
			return mp_fail(p, "part without a name");
		(void)mp_param(v, "filename", p->part.filename,
		    sizeof(p->part.filename));
		have_cd = 1;
	}
	if (!have_cd)
		return mp_fail(p, "part without Content-Disposition");
	if (p->cb.begin != NULL && p->cb.begin(p->arg, &p->part) != 0)
		return mp_fail(p, "part refused");
	return 0;
}

static int
mp_emit(struct mp *p, const char *buf, size_t len)
{
	if (len == 0 || p->state != MP_BODY || p->cb.data == NULL)
		return 0;
	if (p->cb.data(p->arg, buf, len) != 0)
		return mp_fail(p, "part data refused");
	return 0;
}

/*
 * Scan buf for the delimiter.  Returns bytes consumed (up to and including
 * the delimiter's last byte, or all of buf), or -1 on error.  In the
 * preamble the same matching runs with data discarded.
 */
static long
mp_scan(struct mp *p, const char *buf, size_t len)
{
	size_t i = 0, run = 0;
	const char *cr;

	while (i < len) {
		if (p->m == 0) {
			cr = memchr(buf + i, '\r', len - i);
			if (cr == NULL) {
				i = len;
				break;
			}
			i = (size_t)(cr - buf);
		}
		if (buf[i] == p->delim[p->m]) {
			if (p->m == 0 && mp_emit(p, buf + run, i - run) != 0)
				return -1;
			p->m++;
			i++;
			if (p->m == p->dlen) {
				p->m = 0;
				if (p->state == MP_BODY && p->cb.end != NULL &&
				    p->cb.end(p->arg) != 0)
					return mp_fail(p, "part refused");
				p->state = MP_AFTER_DELIM;
				return (long)i;
			}
			continue;
		}
		/* A partial match broke: its bytes were data after all. */
		if (mp_emit(p, p->delim, p->m) != 0)
			return -1;
		p->m = 0;
		run = i;
	}
	/*
	 * Data before an open match was emitted when the match began; the
	 * matched bytes themselves are held in p->m until it completes or breaks.
	 */
	if (p->m == 0 && mp_emit(p, buf + run, len - run) != 0)
		return -1;
	return (long)len;
}

int
mp_feed(struct mp *p, const void *data, size_t len)
{
	const char *buf = data;
	size_t i = 0;
	long n;
	char c;

	while (i < len) {
		switch (p->state) {
		case MP_PREAMBLE:
		case MP_BODY:
			if ((n = mp_scan(p, buf + i, len - i)) < 0)
				return -1;
			i += (size_t)n;
			break;
		case MP_AFTER_DELIM:
			c = buf[i++];
			if (c == '-')
				p->state = MP_AFTER_DASH;
			else if (c == '\r')
				p->state = MP_AFTER_CR;
			else if (c != ' ' && c != '\t')
				return mp_fail(p, "garbage after boundary");
			break;
		case MP_AFTER_DASH:
			if (buf[i++] != '-')
				return mp_fail(p, "garbage after boundary");
			p->state = MP_EPILOGUE;
			break;
		case MP_AFTER_CR:
			if (buf[i++] != '\n')
				return mp_fail(p, "garbage after boundary");
			p->state = MP_HEADERS;
			p->hlen = 0;
			break;
		case MP_HEADERS:
			if (p->hlen >= MP_HEADER_MAX)
				return mp_fail(p, "part headers too long");
			p->hdr[p->hlen++] = buf[i++];
			if (p->hlen >= 2 && p->hdr[p->hlen - 1] == '\n' &&
			    p->hdr[p->hlen - 2] == '\r' &&
			    (p->hlen == 2 || (p->hlen >= 4 &&
			    p->hdr[p->hlen - 3] == '\n' &&
			    p->hdr[p->hlen - 4] == '\r'))) {
				if (p->hlen == 2)
					return mp_fail(p,
					    "part without headers");
				p->hlen -= 4;
				if (mp_headers_done(p) != 0)
					return -1;
				p->state = MP_BODY;
				p->m = 0;
			}
			break;
		case MP_EPILOGUE:
			return 0;	/* ignored, like the preamble */
		case MP_ERROR:
		default:
			return -1;
		}
	}
	return 0;
}
