/*
 * jobs: the /v1/jobs resource.  Creating a job moves the streamed upload
 * into the spool and hands a job to jobq; everything else reads job state
 * through jobq's accessors.  The result is served from its file with
 * sendfile (never read into memory), with a strong ETag (its SHA-256) and
 * single-range support.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handlers.h"
#include "sha256.h"

#define JOBS_REPLAYED	0x1	/* hflags: Idempotency-Key replay */

static struct reply *
jobs_not_found(const char *id)
{
	return reply_problem(404, "job-not-found", "Job not found",
	    "there is no job %s (it may have expired)", id);
}

/* The job named by the path, as a reference in r->job. */
static struct reply *
jobs_lookup(struct req *r)
{
	const char *id = r->match.params[0];

	if (r->job != NULL)
		return NULL;
	if (!spool_valid_id(id) ||
	    (r->job = jobq_get(r->srv->jobq, id)) == NULL)
		return jobs_not_found(id);
	return NULL;
}

/* Parse ?wait= (seconds, capped); -1 if malformed. */
static long
jobs_wait_secs(struct req *r)
{
	const char *w = http_req_query(r, "wait");
	char *end;
	long v;

	if (w == NULL || *w == '\0')
		return 0;
	errno = 0;
	v = strtol(w, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0)
		return -1;
	if ((unsigned long)v > r->srv->cfg->max_wait)
		v = (long)r->srv->cfg->max_wait;
	return v;
}

static struct reply *
jobs_resource(struct req *r, unsigned status)
{
	struct reply *rp;
	char loc[64];
	enum job_state st = jobq_job_state(r->srv->jobq, r->job);

	rp = reply_json(status, jobq_job_json(r->srv->jobq, r->job));
	snprintf(loc, sizeof(loc), "/v1/jobs/%s", jobq_job_id(r->job));
	if (status == 201 || status == 202)
		reply_header(rp, "Location", loc);
	if (!job_state_final(st))
		reply_header(rp, "Retry-After", "1");
	if (r->hflags & JOBS_REPLAYED)
		reply_header(rp, "Idempotent-Replayed", "true");
	return rp;
}

void
jobs_filename_stem(const char *upload, char *out, size_t len)
{
	const char *base = strrchr(upload, '/');
	size_t n = 0, i;

	base = base != NULL ? base + 1 : upload;
	if (strrchr(base, '\\') != NULL)
		base = strrchr(base, '\\') + 1;
	/* Keep a conservative set so the name is safe in any header. */
	for (i = 0; base[i] != '\0' && n + 1 < len && n < JOBQ_FILENAME_MAX - 1;
	    i++) {
		unsigned char ch = (unsigned char)base[i];

		if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.')
			out[n++] = (char)ch;
		else
			out[n++] = '_';
	}
	out[n] = '\0';
	if (n > 4 && strcmp(out + n - 4, ".npz") == 0)
		out[n - 4] = '\0';
	if (out[0] == '\0' || out[0] == '.')
		snprintf(out, len, "weights");
}

/* The spec text: the multipart part, the query, or the header. */
static struct reply *
jobs_spec_text(struct req *r, char **text, size_t *len)
{
	const char *src, *p;

	*text = NULL;
	if (r->spec != NULL) {
		*text = r->spec;
		*len = r->spec_len;
		r->spec = NULL;
		return NULL;
	}
	src = http_req_query(r, "spec");
	if (src == NULL)
		src = http_req_header(r, "X-Weightbridge-Spec");
	if (src == NULL)
		return reply_problem(400, "spec-missing", "No mapping spec",
		    "send the spec as a \"spec\" part, a spec query parameter "
		    "or an X-Weightbridge-Spec header (base64url JSON)");
	if (strlen(src) > r->srv->cfg->spec_limit * 2)
		return reply_problem(413, "spec-too-large", "Spec too large",
		    "the spec exceeds the limit of %llu bytes",
		    (unsigned long long)r->srv->cfg->spec_limit);
	p = src + strspn(src, " \t\r\n");
	if (*p == '{' || *p == '[') {
		/* Plain JSON, URL-encoded in the query. */
		if ((*text = strdup(src)) == NULL)
			return reply_problem(500, "out-of-memory",
			    "Out of memory", "no memory for the spec");
		*len = strlen(*text);
	} else if ((*text = http_b64url_decode(src, len)) == NULL)
		return reply_problem(422, "spec-json-invalid",
		    "Malformed mapping spec", "the spec is neither JSON nor "
		    "base64url-encoded JSON");
	if (*len > r->srv->cfg->spec_limit) {
		free(*text);
		*text = NULL;
		return reply_problem(413, "spec-too-large", "Spec too large",
		    "the spec exceeds the limit of %llu bytes",
		    (unsigned long long)r->srv->cfg->spec_limit);
	}
	return NULL;
}

static int
jobs_fingerprint(const struct req *r, const char *spec, size_t speclen,
    const char *format, char out[SHA256_HEXLEN + 1])
{
	struct sha256_ctx *c = NULL;
	uint8_t d[SHA256_LEN];
	int rc = -1;

	if (sha256_new(&c) != 0)
		goto out;
	if (sha256_update(c, r->upload_sha256, strlen(r->upload_sha256)) ||
	    sha256_update(c, "\n", 1) || sha256_update(c, spec, speclen) ||
	    sha256_update(c, "\n", 1) ||
	    sha256_update(c, format, strlen(format)) || sha256_final(c, d))
		goto out;
	sha256_hex(d, out);
	rc = 0;
out:
	sha256_free(c);
	return rc;
}

static int
jobs_idem_ok(const char *k)
{
	size_t i, n = strlen(k);

	if (n == 0 || n > HANDLERS_IDEM_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)k[i] < 0x21 || (unsigned char)k[i] > 0x7e)
			return 0;
	return 1;
}

struct reply *
jobs_create(struct req *r)
{
	struct reply *rp = NULL;
	char *spec = NULL, detail[512], stem[JOBQ_FILENAME_MAX];
	char fp[SHA256_HEXLEN + 1];
	const char *format = NULL, *target, *idem;
	size_t speclen = 0;
	json_t *sj = NULL;
	struct job_new jn;
	struct job *job = NULL;
	struct wb_err err;
	int line, col;
	long wait;

	if (r->resumed)
		return jobs_resource(r, job_state_final(jobq_job_state(
		    r->srv->jobq, r->job)) ? 200 : 202);
	wb_err_clear(&err);
	if ((wait = jobs_wait_secs(r)) < 0) {
		rp = reply_problem(400, "bad-request", "Bad request",
		    "wait must be a whole number of seconds");
		goto out;
	}
	if ((rp = jobs_spec_text(r, &spec, &speclen)) != NULL)
		goto out;
	if ((sj = http_spec_parse(spec, speclen, detail, sizeof(detail),
	    &line, &col)) == NULL) {
		rp = reply_problem(422, "spec-json-invalid",
		    "Malformed mapping spec", "%s", detail);
		reply_json_set(rp, "line", json_integer(line));
		reply_json_set(rp, "column", json_integer(col));
		goto out;
	}
	if (r->have_format)
		format = r->format;
	else
		format = http_req_query(r, "format");
	if (format != NULL && strcmp(format, "keras-h5") != 0 &&
	    strcmp(format, "keras3") != 0) {
		rp = reply_problem(422, "format-invalid", "Unknown format",
		    "format must be \"keras-h5\" or \"keras3\"");
		goto out;
	}
	idem = http_req_header(r, "Idempotency-Key");
	if (idem != NULL && !jobs_idem_ok(idem)) {
		rp = reply_problem(400, "idempotency-key-invalid",
		    "Bad Idempotency-Key", "the key must be 1 to %d printable "
		    "ASCII characters", HANDLERS_IDEM_MAX);
		goto out;
	}
	target = json_string_value(json_object_get(json_object_get(sj,
	    "target"), "format"));
	jobs_filename_stem(r->filename, stem, sizeof(stem));
	if (jobs_fingerprint(r, spec, speclen, format ? format : "", fp) != 0) {
		rp = reply_problem(500, "internal", "Internal error",
		    "hashing the request failed");
		goto out;
	}
	memset(&jn, 0, sizeof(jn));
	jn.format = format;
	jn.keras3 = format != NULL ? strcmp(format, "keras3") == 0 :
	    (target != NULL && strcmp(target, "keras3") == 0);
	jn.filename = stem;
	jn.idem_key = idem;
	jn.fingerprint = fp;
	jn.upload_bytes = r->upload_bytes;
	jn.upload_sha256 = r->upload_sha256;
	switch (jobq_submit(r->srv->jobq, &jn, r->upload_path, spec, speclen,
	    &job, &err)) {
	case JOBQ_ACCEPTED:
		r->upload_path[0] = '\0';	/* now the job's input */
		break;
	case JOBQ_REPLAYED:
		r->hflags |= JOBS_REPLAYED;
		break;
	case JOBQ_FULL:
		rp = reply_problem(429, "queue-full", "Queue full",
		    "the job queue is full; try again later");
		reply_header(rp, "Retry-After", "5");
		goto out;
	case JOBQ_DRAINING:
		rp = reply_problem(503, "draining", "Shutting down",
		    "the server is shutting down and takes no new jobs");
		reply_header(rp, "Retry-After", "30");
		goto out;
	case JOBQ_IDEM_CONFLICT:
		rp = reply_problem(422, "idempotency-key-reused",
		    "Idempotency-Key reused", "the key \"%s\" was used for a "
		    "different request", idem);
		goto out;
	case JOBQ_FAILED:
	default:
		rp = reply_problem_err(&err, NULL);
		goto out;
	}
	r->job = job;
	if (wait > 0 && http_req_wait(r, http_now_mono_ms() + wait * 1000))
		goto out;	/* rp stays NULL: suspended */
	rp = jobs_resource(r, job_state_final(jobq_job_state(r->srv->jobq,
	    r->job)) && wait > 0 ? 200 : 202);
out:
	free(spec);
	json_decref(sj);
	return rp;
}

struct reply *
jobs_get(struct req *r)
{
	struct reply *rp;
	long wait;

	if (r->resumed)
		return jobs_resource(r, 200);
	if ((rp = jobs_lookup(r)) != NULL)
		return rp;
	if ((wait = jobs_wait_secs(r)) < 0)
		return reply_problem(400, "bad-request", "Bad request",
		    "wait must be a whole number of seconds");
	if (wait > 0 && http_req_wait(r, http_now_mono_ms() + wait * 1000))
		return NULL;
	return jobs_resource(r, 200);
}

struct reply *
jobs_delete(struct req *r)
{
	struct reply *rp;
	int gone;

	if (r->resumed)
		return jobs_resource(r, 200);
	if ((rp = jobs_lookup(r)) != NULL)
		return rp;
	jobq_cancel(r->srv->jobq, r->job, &gone);
	if (gone)
		return reply_empty(204);
	/* A running job stops at its next tensor; answer when it has. */
	if (http_req_wait(r, http_now_mono_ms() + HANDLERS_DELETE_WAIT_MS))
		return NULL;
	return jobs_resource(r, 200);
}

struct reply *
jobs_list(struct req *r)
{
	const char *ls = http_req_query(r, "limit");
	const char *cursor = http_req_query(r, "cursor");
	char next[SPOOL_ID_LEN + 1], link[128];
	json_t *jobs, *o;
	char *end;
	long limit = HANDLERS_LIST_DEFAULT;

	if (ls != NULL) {
		errno = 0;
		limit = strtol(ls, &end, 10);
		if (errno != 0 || *end != '\0' || limit < 1 ||
		    limit > HANDLERS_LIST_MAX)
			return reply_problem(400, "bad-request", "Bad request",
			    "limit must be 1..%d", HANDLERS_LIST_MAX);
	}
	if (cursor != NULL && !spool_valid_id(cursor))
		return reply_problem(400, "bad-request", "Bad request",
		    "cursor must be a job id from a next link");
	if ((jobs = jobq_list(r->srv->jobq, (size_t)limit, cursor, next)) ==
	    NULL)
		return reply_problem(500, "out-of-memory", "Out of memory",
		    "listing jobs failed");
	o = json_pack("{s:o, s:{}}", "jobs", jobs, "links");
	if (o == NULL)
		return reply_problem(500, "out-of-memory", "Out of memory",
		    "listing jobs failed");
	snprintf(link, sizeof(link), "/v1/jobs?limit=%ld%s%s", limit,
	    cursor != NULL ? "&cursor=" : "", cursor != NULL ? cursor : "");
	json_object_set_new(json_object_get(o, "links"), "self",
	    json_string(link));
	if (next[0] != '\0') {
		snprintf(link, sizeof(link), "/v1/jobs?limit=%ld&cursor=%s",
		    limit, next);
		json_object_set_new(json_object_get(o, "links"), "next",
		    json_string(link));
	}
	return reply_json(200, o);
}

int
jobs_etag_match(const char *inm, const char *etag)
{
	const char *p = inm;
	size_t n = strlen(etag);

	while (*p != '\0') {
		p += strspn(p, " \t,");
		if (*p == '*')
			return 1;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;	/* weak comparison for If-None-Match */
		if (strncmp(p, etag, n) == 0 && (p[n] == '\0' || p[n] == ',' ||
		    p[n] == ' ' || p[n] == '\t'))
			return 1;
		p += strcspn(p, ",");
	}
	return 0;
}

int
jobs_parse_range(const char *h, uint64_t size, uint64_t *first,
    uint64_t *last)
{
	const char *p;
	char *end;
	unsigned long long a, b;

	if (h == NULL || strncmp(h, "bytes=", 6) != 0)
		return 1;
	p = h + 6;
	if (strchr(p, ',') != NULL)
		return 1;	/* several ranges: serve the whole file */
	while (*p == ' ')
		p++;
	if (*p == '-') {
		/* Suffix: the last N bytes. */
		errno = 0;
		b = strtoull(p + 1, &end, 10);
		if (errno != 0 || end == p + 1 || *end != '\0')
			return 1;
		if (b == 0 || size == 0)
			return -1;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return 0;
	}
	if (*p < '0' || *p > '9')
		return 1;
	errno = 0;
	a = strtoull(p, &end, 10);
	if (errno != 0 || *end != '-')
		return 1;
	p = end + 1;
	if (*p == '\0')
		b = size > 0 ? size - 1 : 0;
	else {
		if (*p < '0' || *p > '9')
			return 1;
		b = strtoull(p, &end, 10);
		if (errno != 0 || *end != '\0')
			return 1;
		if (b < a)
			return 1;	/* invalid: ignore the header */
		if (b >= size)
			b = size - 1;
	}
	if (a >= size)
		return -1;
	*first = a;
	*last = b;
	return 0;
}

struct reply *
jobs_result(struct req *r)
{
	struct reply *rp;
	char path[SPOOL_PATH_MAX], sha[65], name[JOBQ_FILENAME_MAX + 16];
	char etag[72], cd[256], cr[96];
	const char *inm;
	struct stat st;
	uint64_t first = 0, last = 0;
	enum job_state s;
	int fd, rg;

	if ((rp = jobs_lookup(r)) != NULL)
		return rp;
	if (jobq_job_result(r->srv->jobq, r->job, path, sizeof(path), sha,
	    name, sizeof(name)) != 0) {
		s = jobq_job_state(r->srv->jobq, r->job);
		rp = reply_problem(409, job_state_final(s) ? "job-failed" :
		    "job-not-finished", job_state_final(s) ?
		    "Job has no result" : "Job not finished",
		    "job %s is %s; a result exists only for succeeded jobs",
		    jobq_job_id(r->job), job_state_name(s));
		reply_json_set(rp, "job_id", json_string(jobq_job_id(r->job)));
		if (!job_state_final(s))
			reply_header(rp, "Retry-After", "1");
		return rp;
	}
	snprintf(etag, sizeof(etag), "\"%s\"", sha);
	inm = http_req_header(r, "If-None-Match");
	if (inm != NULL && jobs_etag_match(inm, etag)) {
		rp = reply_empty(304);
		reply_header(rp, "ETag", etag);
		return rp;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		if (fd != -1)
			close(fd);
		return reply_problem(500, "io-error", "I/O error",
		    "the result file of job %s cannot be read",
		    jobq_job_id(r->job));
	}
	rg = jobs_parse_range(http_req_header(r, "Range"), (uint64_t)st.st_size,
	    &first, &last);
	if (rg < 0) {
		close(fd);
		rp = reply_problem(416, "range-not-satisfiable",
		    "Range not satisfiable", "the result has %lld bytes",
		    (long long)st.st_size);
		snprintf(cr, sizeof(cr), "bytes */%lld", (long long)st.st_size);
		reply_header(rp, "Content-Range", cr);
		return rp;
	}
	if (rg == 0) {
		rp = reply_fd(206, "application/x-hdf5", fd, first,
		    last - first + 1);
		snprintf(cr, sizeof(cr), "bytes %llu-%llu/%lld",
		    (unsigned long long)first, (unsigned long long)last,
		    (long long)st.st_size);
		reply_header(rp, "Content-Range", cr);
	} else
		rp = reply_fd(200, "application/x-hdf5", fd, 0,
		    (uint64_t)st.st_size);
	snprintf(cd, sizeof(cd), "attachment; filename=\"%s\"", name);
	reply_header(rp, "Content-Disposition", cd);
	reply_header(rp, "ETag", etag);
	reply_header(rp, "Accept-Ranges", "bytes");
	reply_header(rp, "Cache-Control", "private, max-age=0");
	return rp;
}

struct reply *
jobs_report(struct req *r)
{
	struct reply *rp;
	char path[SPOOL_PATH_MAX];
	enum job_state s;
	struct stat st;
	int fd;

	if ((rp = jobs_lookup(r)) != NULL)
		return rp;
	s = jobq_job_state(r->srv->jobq, r->job);
	if (!job_state_final(s)) {
		rp = reply_problem(409, "job-not-finished", "Job not finished",
		    "job %s is %s; its report is written when it ends",
		    jobq_job_id(r->job), job_state_name(s));
		reply_json_set(rp, "job_id", json_string(jobq_job_id(r->job)));
		reply_header(rp, "Retry-After", "1");
		return rp;
	}
	if (spool_job_path(r->srv->spool, jobq_job_id(r->job), SPOOL_REPORT,
	    path, sizeof(path)) != 0 ||
	    (fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		rp = reply_problem(404, "report-not-found", "No report",
		    "job %s has no report (the archive or spec could not be "
		    "read, or the job was cancelled)", jobq_job_id(r->job));
		reply_json_set(rp, "job_id", json_string(jobq_job_id(r->job)));
		return rp;
	}
	if (fstat(fd, &st) == -1) {
		close(fd);
		return reply_problem(500, "io-error", "I/O error",
		    "the report of job %s cannot be read", jobq_job_id(r->job));
	}
	return reply_fd(200, "application/json", fd, 0, (uint64_t)st.st_size);
}
