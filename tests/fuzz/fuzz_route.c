/*
 * fuzz_route: the router, and the parsers of request-line and header
 * values that run before any handler logic.
 *
 * The first input byte picks the target, the rest is its input:
 *   0  route_match over the daemon's real route table: a method (one of
 *      the usual ones, or the input up to the first space) and a path;
 *   1  jobs_parse_range (Range) against a file size taken from the input;
 *   2  jobs_etag_match (If-None-Match);
 *   3  jobs_filename_stem (the upload's file name, later a header value);
 *   4  http_b64url_decode and http_spec_parse (the spec in a header or
 *      query, then the daemon's depth-capped JSON parse);
 *   5  spool_valid_id (the only gate between a path segment and the
 *      spool).
 *
 * Each target has its contract checked: a matched route rebuilds the path
 * exactly from its pattern and parameters, and no parameter holds a '/';
 * a range lies inside the file; a download name stays within a safe
 * alphabet; a valid id is 32 lower-case hex digits.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "http.h"
#include "route.h"
#include "spool.h"

#define FUZZ_ROUTE_IN_MAX	8192

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_methods[] = {
	"GET", "HEAD", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"
};

/* Rebuild the path of a match from its pattern; it must be the input. */
static void
fuzz_route_rebuild(const struct route_match *m, const char *path)
{
	char out[ROUTE_PATH_MAX + ROUTE_PARAMS_MAX * ROUTE_SEG_MAX];
	const char *p = m->route->pattern, *close;
	size_t o = 0, np = 0, n;

	while (*p != '\0') {
		if (*p == '{') {
			if ((close = strchr(p, '}')) == NULL ||
			    np >= m->nparams)
				abort();
			n = strlen(m->params[np]);
			if (n == 0 || n >= ROUTE_SEG_MAX ||
			    strchr(m->params[np], '/') != NULL)
				abort();
			memcpy(out + o, m->params[np], n);
			o += n;
			np++;
			p = close + 1;
		} else
			out[o++] = *p++;
	}
	out[o] = '\0';
	if (np != m->nparams || strcmp(out, path) != 0)
		abort();
}

static void
fuzz_route(const char *in)
{
	struct route_match m, m2;
	enum route_result rr;
	const char *method, *path, *sp;
	char mbuf[64];
	size_t i, nm = sizeof(fuzz_methods) / sizeof(fuzz_methods[0]);

	if (in[0] != '\0' && (unsigned char)in[0] % 8 < nm) {
		method = fuzz_methods[(unsigned char)in[0] % 8];
		path = in + 1;
	} else if ((sp = strchr(in, ' ')) != NULL &&
	    (size_t)(sp - in) < sizeof(mbuf)) {
		memcpy(mbuf, in, (size_t)(sp - in));
		mbuf[sp - in] = '\0';
		method = mbuf;
		path = sp + 1;
	} else
		return;
	rr = route_match(handlers_routes, handlers_nroutes, method, path, &m);
	switch (rr) {
	case ROUTE_FOUND:
		if (m.route == NULL || m.index >= handlers_nroutes ||
		    m.route != &handlers_routes[m.index])
			abort();
		if (strcmp(m.route->method, strcmp(method, "HEAD") == 0 ?
		    "GET" : method) != 0)
			abort();
		fuzz_route_rebuild(&m, path);
		break;
	case ROUTE_NO_METHOD:
		/* Some route has this path, and Allow names only those. */
		if (m.route != NULL || m.allow[0] == '\0' || m.nparams != 0)
			abort();
		for (i = 0; i < handlers_nroutes; i++)
			if (route_match(handlers_routes, handlers_nroutes,
			    handlers_routes[i].method, path, &m2) ==
			    ROUTE_FOUND && strstr(m.allow,
			    handlers_routes[i].method) == NULL)
				abort();
		break;
	case ROUTE_NO_PATH:
		/* No method at all makes the path exist. */
		if (m.route != NULL)
			abort();
		for (i = 0; i < handlers_nroutes; i++)
			if (route_match(handlers_routes, handlers_nroutes,
			    handlers_routes[i].method, path, &m2) !=
			    ROUTE_NO_PATH)
				abort();
		break;
	default:
		abort();
	}
}

static void
fuzz_range(const char *in, size_t len)
{
	uint64_t size = 0, first = 7, last = 3;
	size_t i;
	int rc;

	/* The first eight bytes (as text digits would be) give the size. */
	for (i = 0; i < len && i < 8; i++)
		size = size << 8 | (uint8_t)in[i];
	size >>= (size & 63);
	in += i;
	rc = jobs_parse_range(in, size, &first, &last);
	if (rc < -1 || rc > 1)
		abort();
	if (rc == 0 && (first > last || last >= size))
		abort();
}

static void
fuzz_stem(const char *in)
{
	char out[JOBQ_FILENAME_MAX];
	size_t i, n;

	jobs_filename_stem(in, out, sizeof(out));
	n = strlen(out);
	if (n == 0 || n >= JOBQ_FILENAME_MAX || out[0] == '.')
		abort();
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)out[i]) && out[i] != '-' &&
		    out[i] != '_' && out[i] != '.')
			abort();
}

static void
fuzz_spec_text(const char *in)
{
	char detail[512], *dec;
	size_t dlen = 0;
	int line, col;
	json_t *j;

	if ((dec = http_b64url_decode(in, &dlen)) != NULL) {
		if (dlen > strlen(in) / 4 * 3 + 2 || dec[dlen] != '\0')
			abort();
		free(dec);
	}
	detail[0] = '\0';
	j = http_spec_parse(in, strlen(in), detail, sizeof(detail), &line,
	    &col);
	if (j != NULL) {
		if (!json_is_object(j))
			abort();
		json_decref(j);
	} else if (detail[0] == '\0' || line < 0 || col < 0)
		abort();
}

static void
fuzz_id(const char *in)
{
	size_t i;

	if (!spool_valid_id(in))
		return;
	if (strlen(in) != SPOOL_ID_LEN)
		abort();
	for (i = 0; i < SPOOL_ID_LEN; i++)
		if (!isxdigit((unsigned char)in[i]) ||
		    isupper((unsigned char)in[i]))
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in;
	size_t len;

	if (size < 1 || size > FUZZ_ROUTE_IN_MAX)
		return 0;
	len = size - 1;
	/* Headers and paths are C strings by the time we see them. */
	if ((in = malloc(len + 1)) == NULL)
		abort();
	memcpy(in, data + 1, len);
	in[len] = '\0';
	switch (data[0] % 6) {
	case 0:
		fuzz_route(in);
		break;
	case 1:
		fuzz_range(in, strlen(in));
		break;
	case 2:
		(void)jobs_etag_match(in, "\"0123abcd\"");
		break;
	case 3:
		fuzz_stem(in);
		break;
	case 4:
		fuzz_spec_text(in);
		break;
	default:
		fuzz_id(in);
		break;
	}
	free(in);
	return 0;
}
