/*
 * inspect: POST /v1/inspect and /v1/template.  Both read only the
 * archive's index (member headers), which is cheap and bounded by the
 * npz limits, so they answer synchronously; the upload is removed when
 * the request ends.
 */
#include "convert.h"
#include "handlers.h"

typedef int (*inspect_fn)(const char *, const struct npz_limits *,
    json_t **, struct wb_err *);

static struct reply *
inspect_run(struct req *r, inspect_fn fn)
{
	struct wb_err err;
	json_t *out = NULL;

	wb_err_clear(&err);
	if (fn(r->upload_path, &r->srv->limits, &out, &err) != 0) {
		json_decref(out);
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
