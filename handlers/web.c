/*
 * web: the upload form, GET / (the page) and GET /web/{file} (its style
 * sheet, scripts and icon).
 *
 * The files under web/ are compiled into the binary by the Makefile's
 * web_files.c rule, so the daemon stays a single file and serves exactly
 * the form it was built with.  The rule also records each file's SHA-256,
 * which is its strong ETag: browsers revalidate (Cache-Control: no-cache)
 * and get a 304 until a new build changes the bytes.
 *
 * Every answer from here carries a Content-Security-Policy that allows
 * only this origin's own files.  The page has no inline script or style
 * and loads nothing from elsewhere, so the policy costs it nothing and
 * takes away what an injected string could do.  The routes are public:
 * the files are no secret, and the page asks for a bearer token itself
 * when /v1/limits says the daemon wants one.
 */
#include <stdio.h>
#include <string.h>

#include "handlers.h"
#include "sha256.h"

#define WEB_CSP	"default-src 'self'; base-uri 'none'; form-action 'self'; " \
		"frame-ancestors 'none'; object-src 'none'"

/* Content types by file name suffix; the first match wins. */
static const struct {
	const char	*suffix;
	const char	*ctype;
} web_types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".svg", "image/svg+xml" },
	{ ".json", "application/json" },
	{ ".txt", "text/plain; charset=utf-8" },
};

static const char *
web_ctype(const char *name)
{
	size_t i, n = strlen(name), s;

	for (i = 0; i < sizeof(web_types) / sizeof(web_types[0]); i++) {
		s = strlen(web_types[i].suffix);
		if (n > s && strcmp(name + n - s, web_types[i].suffix) == 0)
			return web_types[i].ctype;
	}
	return "application/octet-stream";
}

static const struct web_file *
web_find(const char *name)
{
	unsigned long i;

	for (i = 0; i < web_nfiles; i++)
		if (strcmp(web_files[i].name, name) == 0)
			return &web_files[i];
	return NULL;
}

/* The headers every answer from this module carries, errors included. */
static void
web_headers(struct reply *rp)
{
	reply_header(rp, "Content-Security-Policy", WEB_CSP);
	reply_header(rp, "X-Content-Type-Options", "nosniff");
	reply_header(rp, "Referrer-Policy", "no-referrer");
	reply_header(rp, "X-Frame-Options", "DENY");
}

static struct reply *
web_send(struct req *r, const struct web_file *f)
{
	struct reply *rp;
	const char *inm = http_req_header(r, "If-None-Match");
	char etag[SHA256_HEXLEN + 3];

	snprintf(etag, sizeof(etag), "\"%s\"", f->sha256);
	if (inm != NULL && jobs_etag_match(inm, etag))
		rp = reply_empty(304);
	else
		rp = reply_static(200, web_ctype(f->name), f->data,
		    (size_t)f->len);
	reply_header(rp, "ETag", etag);
	reply_header(rp, "Cache-Control", "no-cache");
	web_headers(rp);
	return rp;
}

static struct reply *
web_not_found(struct req *r)
{
	struct reply *rp;

	rp = reply_problem(404, "route-not-found", "Not found",
	    "no resource at %s", r->url);
	web_headers(rp);
	return rp;
}

struct reply *
web_get_index(struct req *r)
{
	const struct web_file *f = web_find(WEB_INDEX);

	return f != NULL ? web_send(r, f) : web_not_found(r);
}

struct reply *
web_get_file(struct req *r)
{
	const struct web_file *f;

	/*
	 * The page is served at / only: its relative links resolve against
	 * /, so a second address would load it with broken links.
	 */
	if (strcmp(r->match.params[0], WEB_INDEX) == 0 ||
	    (f = web_find(r->match.params[0])) == NULL)
		return web_not_found(r);
	return web_send(r, f);
}
