/*
 * inspect: POST /v1/inspect and /v1/template.  Both read only the
 * archive's index (member headers), which is cheap and bounded by the
 * npz limits, so they answer synchronously; the upload is removed when
 * the request ends.
 */
#include <stdio.h>
#include <string.h>

#include "convert.h"
#include "handlers.h"

typedef int (*inspect_fn)(const char *, const struct npz_limits *,
    json_t **, struct wb_err *);

/*
 * Messages from the library name the file they read; for a client that is
 * our spool path, which is none of its business: name its upload instead.
 */
static void
inspect_scrub(struct wb_err *err, const char *path, const char *name)
{
	char out[WB_ERR_MSG_MAX];
	const char *p, *m = err->msg;
	size_t plen = strlen(path), o = 0;

	if (plen == 0)
		return;
	while ((p = strstr(m, path)) != NULL && o < sizeof(out)) {
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%.*s%s",
		    (int)(p - m), m, name);
		m = p + plen;
	}
	if (m == err->msg)
		return;
	if (o < sizeof(out))
		snprintf(out + o, sizeof(out) - o, "%s", m);
	memcpy(err->msg, out, sizeof(out));
}

static struct reply *
inspect_run(struct req *r, inspect_fn fn)
{
	struct wb_err err;
	json_t *out = NULL;

	wb_err_clear(&err);
	if (fn(r->upload_path, &r->srv->limits, &out, &err) != 0) {
		json_decref(out);
		inspect_scrub(&err, r->upload_path, r->filename[0] != '\0' ?
		    r->filename : "upload");
		return reply_problem_err(&err, NULL);
	}
	return reply_json(200, out);
}

struct reply *
inspect_inspect(struct req *r)
{
	return inspect_run(r, convert_inspect);
}

struct reply *
inspect_template(struct req *r)
{
	return inspect_run(r, convert_template);
}
