/*
 * reply: response values and their conversion into libmicrohttpd
 * responses.  See reply.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "reply.h"

enum reply_kind {
	REPLY_EMPTY,
	REPLY_JSON,
	REPLY_BYTES,	/* owned copy */
	REPLY_STATIC,
	REPLY_FD
};

struct reply {
	unsigned	 status;
	enum reply_kind	 kind;
	const char	*ctype;		/* static string */
	json_t		*json;
	const void	*buf;
	size_t		 len;
	int		 fd;
	uint64_t	 off, flen;
	size_t		 nhdr;
	char		*hname[REPLY_HEADERS_MAX];
	char		*hval[REPLY_HEADERS_MAX];
	int		 is_static;	/* the out-of-memory reply */
};

static const char reply_oom_body[] =
    "{\"type\":\"" REPLY_PROBLEM_BASE "out-of-memory\",\"title\":"
    "\"Out of memory\",\"status\":500,\"detail\":\"the server ran out of "
    "memory building the response\"}";
static struct reply reply_oom = {
	.status = 500, .kind = REPLY_STATIC,
	.ctype = "application/problem+json", .buf = reply_oom_body,
	.len = sizeof(reply_oom_body) - 1, .fd = -1, .is_static = 1
};

static struct reply *
reply_new(unsigned status, enum reply_kind kind, const char *ctype)
{
	struct reply *rp;

	if ((rp = calloc(1, sizeof(*rp))) == NULL)
		return NULL;
	rp->status = status;
	rp->kind = kind;
	rp->ctype = ctype;
	rp->fd = -1;
	return rp;
}

struct reply *
reply_json(unsigned status, json_t *body)
{
	struct reply *rp;

	if (body == NULL || (rp = reply_new(status, REPLY_JSON,
	    "application/json")) == NULL) {
		json_decref(body);
		return &reply_oom;
	}
	rp->json = body;
	return rp;
}

struct reply *
reply_bytes(unsigned status, const char *ctype, const void *buf, size_t len)
{
	struct reply *rp;
	void *copy;

	if ((copy = malloc(len > 0 ? len : 1)) == NULL)
		return &reply_oom;
	if ((rp = reply_new(status, REPLY_BYTES, ctype)) == NULL) {
		free(copy);
		return &reply_oom;
	}
	if (len > 0)
		memcpy(copy, buf, len);
	rp->buf = copy;
	rp->len = len;
	return rp;
}

struct reply *
reply_static(unsigned status, const char *ctype, const void *buf, size_t len)
{
	struct reply *rp;

	if ((rp = reply_new(status, REPLY_STATIC, ctype)) == NULL)
		return &reply_oom;
	rp->buf = buf;
	rp->len = len;
	return rp;
}

struct reply *
reply_fd(unsigned status, const char *ctype, int fd, uint64_t off,
    uint64_t len)
{
	struct reply *rp;

	if ((rp = reply_new(status, REPLY_FD, ctype)) == NULL) {
		close(fd);
		return &reply_oom;
	}
	rp->fd = fd;
	rp->off = off;
	rp->flen = len;
	return rp;
}

struct reply *
reply_empty(unsigned status)
{
	struct reply *rp;

	if ((rp = reply_new(status, REPLY_EMPTY, NULL)) == NULL)
		return &reply_oom;
	return rp;
}

json_t *
reply_problem_json(unsigned status, const char *name, const char *title,
    const char *detail)
{
	json_t *o;
	char type[256];

	snprintf(type, sizeof(type), "%s%s", REPLY_PROBLEM_BASE, name);
	o = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title", title,
	    "status", (json_int_t)status, "detail", detail);
	return o;
}

struct reply *
reply_problem(unsigned status, const char *name, const char *title,
    const char *fmt, ...)
{
	char detail[1024];
	struct reply *rp;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	rp = reply_json(status, reply_problem_json(status, name, title,
	    detail));
	if (!rp->is_static)
		rp->ctype = "application/problem+json";
	return rp;
}

unsigned
reply_status_for(enum wb_code code)
{
	switch (code) {
	case WB_E_USAGE:
		return 400;
	case WB_E_NOTFOUND:
		return 404;
	case WB_E_ARCHIVE:
	case WB_E_NPY:
	case WB_E_DTYPE:
	case WB_E_LIMIT:
	case WB_E_SPEC:
	case WB_E_MAPPING:
		return 422;
	case WB_E_CANCELLED:
		return 409;
	default:
		return wb_err_is_client(code) ? 400 : 500;
	}
}

struct reply *
reply_problem_err(const struct wb_err *err, const char *job_id)
{
	unsigned status = reply_status_for(err->code);
	struct reply *rp;

	rp = reply_problem(status, wb_err_name(err->code),
	    wb_err_title(err->code), "%s", err->msg);
	if (job_id != NULL)
		reply_json_set(rp, "job_id", json_string(job_id));
	return rp;
}

void
reply_header(struct reply *rp, const char *name, const char *value)
{
	char *n, *v;

	if (rp->is_static || rp->nhdr >= REPLY_HEADERS_MAX)
		return;
	n = strdup(name);
	v = strdup(value);
	if (n == NULL || v == NULL) {
		free(n);
		free(v);
		return;
	}
	rp->hname[rp->nhdr] = n;
	rp->hval[rp->nhdr] = v;
	rp->nhdr++;
}

void
reply_json_set(struct reply *rp, const char *key, json_t *value)
{
	if (rp->is_static || rp->json == NULL || !json_is_object(rp->json)) {
		json_decref(value);
		return;
	}
	json_object_set_new(rp->json, key, value);
}

unsigned
reply_status(const struct reply *rp)
{
	return rp->status;
}

const char *
reply_get_header(const struct reply *rp, const char *name)
{
	size_t i;

	if (strcasecmp(name, "Content-Type") == 0)
		return rp->ctype;
	for (i = 0; i < rp->nhdr; i++)
		if (strcasecmp(rp->hname[i], name) == 0)
			return rp->hval[i];
	return NULL;
}

json_t *
reply_get_json(const struct reply *rp)
{
	return rp->json;
}

void
reply_free(struct reply *rp)
{
	size_t i;

	if (rp == NULL || rp->is_static)
		return;
	json_decref(rp->json);
	if (rp->kind == REPLY_BYTES)
		free((void *)rp->buf);
	if (rp->fd != -1)
		close(rp->fd);
	for (i = 0; i < rp->nhdr; i++) {
		free(rp->hname[i]);
		free(rp->hval[i]);
	}
	free(rp);
}

/*
 * Build and queue; rp is freed if queued, or if keep is 0.  Queuing can
 * fail when libmicrohttpd is not ready for an answer (mid-body).
 */
static int
reply_queue_keep(struct reply *rp, struct MHD_Connection *c, int keep)
{
	struct MHD_Response *resp = NULL;
	char *text = NULL;
	size_t i;
	enum MHD_Result ret = MHD_NO;

	switch (rp->kind) {
	case REPLY_JSON:
		if ((text = json_dumps(rp->json, JSON_COMPACT)) == NULL)
			break;
		resp = MHD_create_response_from_buffer(strlen(text), text,
		    MHD_RESPMEM_MUST_FREE);
		if (resp != NULL)
			text = NULL;
		break;
	case REPLY_BYTES:
		resp = MHD_create_response_from_buffer(rp->len,
		    (void *)rp->buf, MHD_RESPMEM_MUST_COPY);
		break;
	case REPLY_STATIC:
		resp = MHD_create_response_from_buffer(rp->len,
		    (void *)rp->buf, MHD_RESPMEM_PERSISTENT);
		break;
	case REPLY_FD:
		/* MHD owns the fd from here; it sends with sendfile. */
		resp = MHD_create_response_from_fd_at_offset64(rp->flen,
		    rp->fd, rp->off);
		if (resp != NULL)
			rp->fd = -1;
		break;
	case REPLY_EMPTY:
		resp = MHD_create_response_from_buffer(0, NULL,
		    MHD_RESPMEM_PERSISTENT);
		break;
	}
	free(text);
	if (resp == NULL) {
		reply_free(rp);
		rp = &reply_oom;
		resp = MHD_create_response_from_buffer(rp->len,
		    (void *)rp->buf, MHD_RESPMEM_PERSISTENT);
		if (resp == NULL)
			return MHD_NO;
	}
	if (rp->ctype != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
		    rp->ctype);
	for (i = 0; i < rp->nhdr; i++)
		MHD_add_response_header(resp, rp->hname[i], rp->hval[i]);
	ret = MHD_queue_response(c, rp->status, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES || !keep)
		reply_free(rp);
	return ret;
}

int
reply_queue(struct reply *rp, struct MHD_Connection *c)
{
	return reply_queue_keep(rp, c, 0);
}

int
reply_try_queue(struct reply *rp, struct MHD_Connection *c)
{
	return reply_queue_keep(rp, c, 1);
}
