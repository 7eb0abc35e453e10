/*
 * http: the libmicrohttpd daemon, per-request state, and body streaming.
 *
 * For each request http.c matches the route, applies the checks that need
 * no body (auth, 404/405, 413 from Content-Length, 415, 429, 503) before a
 * byte of the body is read, then streams an upload body (raw or
 * multipart) into a spool file while hashing it, and finally calls the
 * route's handler with a struct req.  Handlers read what they need from
 * the req and return a struct reply; they never see libmicrohttpd.
 *
 * A handler may instead suspend the request until a job ends
 * (http_req_wait); the request is then re-dispatched to the same handler
 * with r->resumed set, on an HTTP thread, when the job ends or the
 * deadline passes.  No thread is tied up meanwhile.
 */
#ifndef HTTP_H
#define HTTP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "jobq.h"
#include "multipart.h"
#include "npz.h"
#include "route.h"
#include "spool.h"
#include "wb_err.h"

#define HTTP_REQ_ID_LEN		16
#define HTTP_DISCARD_MAX	(64ULL << 20)	/* body bytes we drain after an
						   error, if none are declared */
#define HTTP_MULTIPART_SLACK	(64ULL << 10)	/* part headers and small fields */
#define HTTP_FORMAT_MAX		32
#define HTTP_SPEC_DEPTH_MAX	64
#define HTTP_TOKENS_MAX		1024
#define HTTP_TOKEN_LEN_MAX	512

struct http_tokens;
struct MHD_Daemon;
struct MHD_Connection;

/* The daemon's shared state; main owns it, handlers borrow it. */
struct srv {
	const struct config *cfg;
	struct spool	*spool;
	struct jobq	*jobq;
	const struct route *routes;
	size_t		 nroutes;
	struct npz_limits limits;
	atomic_int	 ready;		/* 0 while recovering or draining */
	struct http_tokens *tokens;	/* NULL: no auth */
	struct MHD_Daemon *mhd;
	int		 listen_fd;
	int		 tls;
};

/* The parts of a request a handler reads. */
struct req {
	struct srv	*srv;
	struct MHD_Connection *conn;	/* NULL in unit tests */
	const char	*method;
	const char	*url;
	struct route_match match;
	char		 id[HTTP_REQ_ID_LEN + 1];
	int64_t		 t0_us;
	unsigned	 status;	/* of the queued reply, for the log */
	/* The streamed upload (ROUTE_UPLOAD routes). */
	int		 have_upload;
	char		 upload_path[SPOOL_PATH_MAX];	/* "" once moved */
	struct spool_upload *upload;	/* while it is being received */
	uint64_t	 upload_bytes;
	char		 upload_sha256[65];
	char		 filename[MP_FILENAME_MAX];
	char		*spec;		/* NUL-terminated; NULL if none */
	size_t		 spec_len;
	char		 format[HTTP_FORMAT_MAX];
	int		 have_format;
	/* Suspension. */
	struct jobq_waiter waiter;
	int		 suspended, resumed;
	struct job	*job;		/* a reference, released at the end */
	int		 hflags;	/* the handler's own, kept across a resume */
	/* Body state, private to http.c. */
	int		 body_kind;
	struct mp	*mp;
	int		 part;
	struct sha256_ctx *sha;
	uint64_t	 discarded;
	uint64_t	 body_declared;	/* Content-Length (within limits), or 0 */
	uint64_t	 body_bytes;
	struct reply	*early;
	int		 early_tried;
};

/* A header or query-string value of the request, or NULL. */
const char *http_req_header(const struct req *r, const char *name);
const char *http_req_query(const struct req *r, const char *name);

/*
 * Suspend r until r->job ends or deadline_ms (CLOCK_MONOTONIC) passes.
 * Returns 1 if suspended (the handler returns NULL), 0 if the job has
 * already ended (answer now).
 */
int	http_req_wait(struct req *r, int64_t deadline_ms);

/* CLOCK_MONOTONIC milliseconds, for deadlines. */
int64_t	http_now_mono_ms(void);

/* Parse s ("host:port", "[v6]:port") and bind+listen; returns the fd. */
int	http_listen(const char *addr, int *fd, unsigned *port,
	    struct wb_err *err);

/*
 * Load bearer tokens (one per line; blank lines and '#' comments skipped)
 * and swap them in.  Safe to call while serving (SIGHUP).
 */
int	http_tokens_load(struct srv *s, const char *path, struct wb_err *err);
void	http_tokens_free(struct srv *s);
/* 1 if the Authorization header value carries a known bearer token. */
int	http_tokens_check(struct srv *s, const char *authorization);

/* Start libmicrohttpd on s->listen_fd with the settings in s->cfg. */
int	http_start(struct srv *s, struct wb_err *err);
/* Stop accepting connections (the listen socket is closed). */
void	http_quiesce(struct srv *s);
void	http_stop(struct srv *s);

/*
 * Parse a mapping spec: at most HTTP_SPEC_DEPTH_MAX nested arrays/objects,
 * no duplicate keys, an object at the top.  On failure returns NULL and
 * writes a detail naming line and column, and sets *line and *col (0 if
 * they do not apply).
 */
json_t	*http_spec_parse(const char *buf, size_t len, char *detail,
	    size_t detlen, int *line, int *col);

/* Decode base64url (padding optional) into a new NUL-terminated buffer. */
char	*http_b64url_decode(const char *s, size_t *len);

#endif
