/*
 * reply: the one module that builds HTTP responses.
 *
 * Handlers return a struct reply (status, headers, and a body that is a
 * JSON value, a byte buffer or a file range); http.c hands it to
 * libmicrohttpd with reply_queue().  Keeping the reply a plain value makes
 * handlers testable without a socket.  Every error is RFC 9457
 * problem+json with a stable type URI built from a short name
 * (wb_err_name() for conversion failures, an HTTP-level name otherwise).
 *
 * Ownership: every constructor returns a reply the caller owns (free with
 * reply_free or give to reply_queue, which frees it).  Constructors never
 * return NULL: on allocation failure they return a static 500 reply that
 * reply_free ignores.
 */
#ifndef REPLY_H
#define REPLY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "wb_err.h"

#define REPLY_PROBLEM_BASE	"https://weightbridge.dev/problems/"
#define REPLY_HEADERS_MAX	12

struct reply;
struct MHD_Connection;

/* JSON body; takes the reference to body. */
struct reply *reply_json(unsigned status, json_t *body);
/* A body copied from buf. */
struct reply *reply_bytes(unsigned status, const char *ctype,
	    const void *buf, size_t len);
/* A body that lives as long as the program (not copied). */
struct reply *reply_static(unsigned status, const char *ctype,
	    const void *buf, size_t len);
/* len bytes of fd from off; the reply owns fd (closed when sent or freed). */
struct reply *reply_fd(unsigned status, const char *ctype, int fd,
	    uint64_t off, uint64_t len);
struct reply *reply_empty(unsigned status);

/*
 * A problem+json reply.  name is the type suffix ("queue-full"), title a
 * fixed sentence, detail a printf format for this occurrence.
 */
struct reply *reply_problem(unsigned status, const char *name,
	    const char *title, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

/* The problem object (caller owns it) for a conversion error. */
json_t	*reply_problem_json(unsigned status, const char *name,
	    const char *title, const char *detail);

/* The status a conversion error maps to (4xx for the client's fault). */
unsigned reply_status_for(enum wb_code code);

/* A problem reply for err, with optional job_id member. */
struct reply *reply_problem_err(const struct wb_err *err, const char *job_id);

/* Add a header (copied).  Silently dropped past REPLY_HEADERS_MAX. */
void	reply_header(struct reply *rp, const char *name, const char *value);
/* Add a member to a problem/JSON object body (takes the reference). */
void	reply_json_set(struct reply *rp, const char *key, json_t *value);

unsigned reply_status(const struct reply *rp);
/* The header value or NULL; for tests. */
const char *reply_get_header(const struct reply *rp, const char *name);
/* The JSON body or NULL (borrowed); for tests. */
json_t	*reply_get_json(const struct reply *rp);

/* Build the MHD response, queue it and free rp.  Returns an MHD_Result. */
int	reply_queue(struct reply *rp, struct MHD_Connection *c);

/*
 * The same, but if libmicrohttpd refuses the answer (it does while a body
 * is being received) rp is kept for a later reply_queue.  Not for
 * reply_fd replies.
 */
int	reply_try_queue(struct reply *rp, struct MHD_Connection *c);

void	reply_free(struct reply *rp);

#endif
