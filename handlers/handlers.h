/*
 * handlers: one function per route, grouped one file per resource.
 *
 * Each takes the request http.c prepared (route parameters, streamed
 * upload, spec text) and returns a reply built by reply.c, or NULL after
 * suspending the request (see http_req_wait).  The route table below is
 * the single list of what the daemon serves; --print-routes prints it and
 * a test compares it with docs/openapi.json.
 */
#ifndef HANDLERS_H
#define HANDLERS_H

#include <stddef.h>

#include "http.h"
#include "reply.h"
#include "route.h"

#define HANDLERS_LIST_DEFAULT	20
#define HANDLERS_LIST_MAX	100
#define HANDLERS_DELETE_WAIT_MS	30000	/* DELETE waits this long for a running job */
#define HANDLERS_IDEM_MAX	JOBQ_IDEM_MAX

extern const struct route handlers_routes[];
extern const size_t handlers_nroutes;
/* The route patterns, in table order, for metrics labels. */
extern const char *const handlers_route_names[];

/* jobs.c */
struct reply *jobs_create(struct req *r);
struct reply *jobs_list(struct req *r);
struct reply *jobs_get(struct req *r);
struct reply *jobs_result(struct req *r);
struct reply *jobs_report(struct req *r);
struct reply *jobs_delete(struct req *r);

/*
 * Parse a Range header value against a file of size bytes.  Returns 0 and
 * sets [*first, *last] for one satisfiable range, 1 to ignore the header
 * (absent, not bytes, several ranges), -1 if unsatisfiable (416).
 */
int	jobs_parse_range(const char *h, uint64_t size, uint64_t *first,
	    uint64_t *last);
/* 1 if an If-None-Match value matches the strong tag etag ("\"hex\""). */
int	jobs_etag_match(const char *inm, const char *etag);
/* A download name stem from an upload's file name ("model.npz" -> "model"). */
void	jobs_filename_stem(const char *upload, char *out, size_t len);

/* inspect.c */
struct reply *inspect_inspect(struct req *r);
struct reply *inspect_template(struct req *r);

/* health.c */
struct reply *health_livez(struct req *r);
struct reply *health_readyz(struct req *r);
struct reply *health_limits(struct req *r);

/* scrape.c */
struct reply *scrape_metrics(struct req *r);

/* openapi.c */
struct reply *openapi_get(struct req *r);

/* web.c: the upload form, from the files under web/ */
#define WEB_INDEX	"index.html"	/* served at / */

/* One file of web/, compiled in by the Makefile (gen/web_files.c). */
struct web_file {
	const char	*name;		/* "app.js": the file name in web/ */
	const unsigned char *data;
	unsigned long	 len;
	const char	*sha256;	/* hex digest of data, the ETag */
};
extern const struct web_file web_files[];
extern const unsigned long web_nfiles;

struct reply *web_get_index(struct req *r);
struct reply *web_get_file(struct req *r);

#endif
