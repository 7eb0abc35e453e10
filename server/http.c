/*
 * http: libmicrohttpd glue.  See http.h for the request's life.
 *
 * libmicrohttpd calls the access handler several times per request: once
 * with the headers, once per piece of body, once more at the end, and
 * again after a resume.  struct req carries the state between those calls;
 * it is freed in the completion callback, which also writes the request's
 * log line and metrics.  Uploads never sit in memory: each piece goes to
 * a file in the spool's tmp/ and into a SHA-256 context.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "http.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"
#include "sha256.h"

enum http_body {
	HTTP_BODY_NONE = 0,	/* body (if any) is drained and ignored */
	HTTP_BODY_RAW,
	HTTP_BODY_MULTIPART
};

enum http_part {
	HTTP_PART_IGNORED = 0,
	HTTP_PART_WEIGHTS,
	HTTP_PART_SPEC,
	HTTP_PART_FORMAT
};

struct http_tokens {
	pthread_mutex_t	 lock;
	size_t		 n;
	uint8_t		 (*digest)[SHA256_LEN];
};

int64_t
http_now_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
http_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *
http_req_header(const struct req *r, const char *name)
{
	if (r->conn == NULL)
		return NULL;
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *
http_req_query(const struct req *r, const char *name)
{
	if (r->conn == NULL)
		return NULL;
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
	    name);
}

/* --- bearer tokens --------------------------------------------------- */

int
http_tokens_load(struct srv *s, const char *path, struct wb_err *err)
{
	FILE *fp = NULL;
	char line[HTTP_TOKEN_LEN_MAX + 2], *t, *e;
	uint8_t (*dig)[SHA256_LEN] = NULL, (*old)[SHA256_LEN];
	size_t n = 0;
	int rc = 0;

	if ((fp = fopen(path, "r")) == NULL) {
		rc = wb_err_set(err, WB_E_USAGE, "tokens file %s: %s", path,
		    strerror(errno));
		goto out;
	}
	if ((dig = calloc(HTTP_TOKENS_MAX, sizeof(*dig))) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "tokens: out of memory");
		goto out;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			rc = wb_err_set(err, WB_E_USAGE,
			    "tokens file %s: a token is longer than %d bytes",
			    path, HTTP_TOKEN_LEN_MAX);
			goto out;
		}
		t = line + strspn(line, " \t");
		e = t + strcspn(t, " \t\r\n");
		*e = '\0';
		if (*t == '\0' || *t == '#')
			continue;
		if (n == HTTP_TOKENS_MAX) {
			rc = wb_err_set(err, WB_E_USAGE,
			    "tokens file %s: more than %d tokens", path,
			    HTTP_TOKENS_MAX);
			goto out;
		}
		if (sha256_buf(t, strlen(t), dig[n]) != 0) {
			rc = wb_err_set(err, WB_E_INTERNAL, "sha256 failed");
			goto out;
		}
		n++;
	}
	if (n == 0) {
		rc = wb_err_set(err, WB_E_USAGE, "tokens file %s has no token",
		    path);
		goto out;
	}
	if (s->tokens == NULL) {
		if ((s->tokens = calloc(1, sizeof(*s->tokens))) == NULL) {
			rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
			goto out;
		}
		pthread_mutex_init(&s->tokens->lock, NULL);
	}
	pthread_mutex_lock(&s->tokens->lock);
	old = s->tokens->digest;
	s->tokens->digest = dig;
	s->tokens->n = n;
	pthread_mutex_unlock(&s->tokens->lock);
	dig = old;
out:
	free(dig);
	if (fp != NULL)
		fclose(fp);
	return rc;
}

void
http_tokens_free(struct srv *s)
{
	if (s->tokens == NULL)
		return;
	pthread_mutex_destroy(&s->tokens->lock);
	free(s->tokens->digest);
	free(s->tokens);
	s->tokens = NULL;
}

int
http_tokens_check(struct srv *s, const char *authorization)
{
	uint8_t d[SHA256_LEN];
	const char *t;
	size_t i;
	int ok = 0;

	if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7))
		return 0;
	t = authorization + 7;
	while (*t == ' ')
		t++;
	if (*t == '\0' || strlen(t) > HTTP_TOKEN_LEN_MAX ||
	    sha256_buf(t, strlen(t), d) != 0)
		return 0;
	/*
	 * Comparing digests with CRYPTO_memcmp, and always all of them, keeps
	 * the time independent of how much of a token an attacker guessed.
	 */
	pthread_mutex_lock(&s->tokens->lock);
	for (i = 0; i < s->tokens->n; i++)
		ok |= CRYPTO_memcmp(d, s->tokens->digest[i], SHA256_LEN) == 0;
	pthread_mutex_unlock(&s->tokens->lock);
	return ok;
}

/* --- spec parsing ----------------------------------------------------- */

/* Deepest nesting of [ and { outside strings, stopping past max. */
static int
http_json_depth(const char *buf, size_t len, int max, int *line, int *col)
{
	size_t i;
	int depth = 0, in_str = 0, esc = 0, l = 1, c = 0;

	for (i = 0; i < len; i++) {
		c++;
		if (buf[i] == '\n') {
			l++;
			c = 0;
		}
		if (in_str) {
			if (esc)
				esc = 0;
			else if (buf[i] == '\\')
				esc = 1;
			else if (buf[i] == '"')
				in_str = 0;
			continue;
		}
		if (buf[i] == '"')
			in_str = 1;
		else if (buf[i] == '[' || buf[i] == '{') {
			if (++depth > max) {
				*line = l;
				*col = c;
				return depth;
			}
		} else if (buf[i] == ']' || buf[i] == '}')
			depth--;
	}
	return 0;
}

json_t *
http_spec_parse(const char *buf, size_t len, char *detail, size_t detlen,
    int *line, int *col)
{
	json_error_t jerr;
	json_t *j;

	*line = *col = 0;
	if (http_json_depth(buf, len, HTTP_SPEC_DEPTH_MAX, line, col) != 0) {
		snprintf(detail, detlen, "spec nests deeper than %d levels "
		    "(line %d, column %d)", HTTP_SPEC_DEPTH_MAX, *line, *col);
		return NULL;
	}
	if ((j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		*line = jerr.line;
		*col = jerr.column;
		snprintf(detail, detlen, "spec is not valid JSON: %s "
		    "(line %d, column %d)", jerr.text, jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		*line = 1;
		*col = 1;
		snprintf(detail, detlen, "spec must be a JSON object "
		    "(line 1, column 1)");
		return NULL;
	}
	return j;
}

char *
http_b64url_decode(const char *s, size_t *len)
{
	size_t n = strlen(s), i, o = 0;
	unsigned v = 0;
	int bits = 0, d;
	char *out;

	while (n > 0 && s[n - 1] == '=')
		n--;
	if ((out = malloc(n / 4 * 3 + 4)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		char ch = s[i];

		if (ch >= 'A' && ch <= 'Z')
			d = ch - 'A';
		else if (ch >= 'a' && ch <= 'z')
			d = ch - 'a' + 26;
		else if (ch >= '0' && ch <= '9')
			d = ch - '0' + 52;
		else if (ch == '-' || ch == '+')
			d = 62;
		else if (ch == '_' || ch == '/')
			d = 63;
		else {
			free(out);
			return NULL;
		}
		v = (v << 6) | (unsigned)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((v >> bits) & 0xff);
		}
	}
	if (bits >= 6) {	/* a lone trailing character */
		free(out);
		return NULL;
	}
	out[o] = '\0';
	*len = o;
	return out;
}

/* --- body streaming ---------------------------------------------------- */

static void
http_early(struct req *r, struct reply *rp)
{
	if (r->early == NULL)
		r->early = rp;
	else
		reply_free(rp);
}

static int
http_upload_open(struct req *r)
{
	struct wb_err err;
	int rc;

	wb_err_clear(&err);
	if (r->have_upload) {
		http_early(r, reply_problem(400, "multipart-invalid",
		    "Malformed multipart body",
		    "the body has more than one \"weights\" part"));
		return -1;
	}
	if (spool_upload_start(r->srv->spool, r->upload_path, &r->upload,
	    &err) != 0 || (rc = sha256_new(&r->sha)) != 0) {
		if (err.code == WB_OK)
			wb_err_set(&err, WB_E_NOMEM, "sha256: out of memory");
		log_kv(LOG_L_ERR, "request", err.msg, "req_id", r->id, NULL);
		http_early(r, reply_problem_err(&err, NULL));
		return -1;
	}
	r->have_upload = 1;
	return 0;
}

static int
http_upload_write(struct req *r, const void *buf, size_t len)
{
	struct wb_err err = { 0 };

	if (r->upload_bytes + len > r->srv->cfg->upload_limit) {
		http_early(r, reply_problem(413, "payload-too-large",
		    "Upload too large", "the upload exceeds the limit of %llu "
		    "bytes", (unsigned long long)r->srv->cfg->upload_limit));
		return -1;
	}
	if (spool_upload_write(r->upload, buf, len, &err) != 0) {
		log_kv(LOG_L_ERR, "request", err.msg, "req_id", r->id, "file",
		    r->upload_path, NULL);
		http_early(r, reply_problem(500, "io-error", "I/O error",
		    "writing the upload failed"));
		return -1;
	}
	if (sha256_update(r->sha, buf, len) != 0) {
		http_early(r, reply_problem(500, "internal", "Internal error",
		    "hashing the upload failed"));
		return -1;
	}
	r->upload_bytes += len;
	return 0;
}

static int
http_field_append(struct req *r, const void *buf, size_t len)
{
	char *ns;

	if (r->part == HTTP_PART_FORMAT) {
		size_t have = strlen(r->format);

		if (have + len >= sizeof(r->format)) {
			http_early(r, reply_problem(422, "format-invalid",
			    "Unknown format", "format is longer than %d bytes",
			    HTTP_FORMAT_MAX - 1));
			return -1;
		}
		memcpy(r->format + have, buf, len);
		r->format[have + len] = '\0';
		return 0;
	}
	if (r->spec_len + len > r->srv->cfg->spec_limit) {
		http_early(r, reply_problem(413, "spec-too-large",
		    "Spec too large", "the spec exceeds the limit of %llu bytes",
		    (unsigned long long)r->srv->cfg->spec_limit));
		return -1;
	}
	if ((ns = realloc(r->spec, r->spec_len + len + 1)) == NULL) {
		http_early(r, reply_problem(500, "out-of-memory",
		    "Out of memory", "no memory for the spec"));
		return -1;
	}
	r->spec = ns;
	memcpy(r->spec + r->spec_len, buf, len);
	r->spec_len += len;
	r->spec[r->spec_len] = '\0';
	return 0;
}

static int
http_mp_begin(void *arg, const struct mp_part *part)
{
	struct req *r = arg;

	r->part = HTTP_PART_IGNORED;
	if (strcmp(part->name, "weights") == 0) {
		if (http_upload_open(r) != 0)
			return -1;
		snprintf(r->filename, sizeof(r->filename), "%s", part->filename);
		r->part = HTTP_PART_WEIGHTS;
	} else if (strcmp(part->name, "spec") == 0) {
		if (r->spec != NULL) {
			http_early(r, reply_problem(400, "multipart-invalid",
			    "Malformed multipart body",
			    "the body has more than one \"spec\" part"));
			return -1;
		}
		if ((r->spec = calloc(1, 1)) == NULL)
			return -1;
		r->part = HTTP_PART_SPEC;
	} else if (strcmp(part->name, "format") == 0) {
		r->format[0] = '\0';
		r->have_format = 1;
		r->part = HTTP_PART_FORMAT;
	}
	return 0;
}

static int
http_mp_data(void *arg, const void *buf, size_t len)
{
	struct req *r = arg;

	switch (r->part) {
	case HTTP_PART_WEIGHTS:
		return http_upload_write(r, buf, len);
	case HTTP_PART_SPEC:
	case HTTP_PART_FORMAT:
		return http_field_append(r, buf, len);
	default:
		return 0;
	}
}

static int
http_mp_end(void *arg)
{
	struct req *r = arg;

	r->part = HTTP_PART_IGNORED;
	return 0;
}

static const struct mp_callbacks http_mp_cb = {
	http_mp_begin, http_mp_data, http_mp_end
};

/* Feed one piece of body to the right sink. */
static void
http_body_feed(struct req *r, const char *data, size_t len)
{
	r->body_bytes += len;
	metrics_upload_bytes(len);
	switch (r->body_kind) {
	case HTTP_BODY_RAW:
		(void)http_upload_write(r, data, len);
		break;
	case HTTP_BODY_MULTIPART:
		if (mp_feed(r->mp, data, len) != 0 && r->early == NULL)
			http_early(r, reply_problem(400, "multipart-invalid",
			    "Malformed multipart body", "%s", mp_error(r->mp)));
		break;
	default:
		break;
	}
}

/* The body is complete: close the file, finish the hash. */
static void
http_body_finish(struct req *r)
{
	struct wb_err err = { 0 };
	uint8_t d[SHA256_LEN];
	int rc;

	if (r->body_kind == HTTP_BODY_MULTIPART && !mp_done(r->mp)) {
		http_early(r, reply_problem(400, "multipart-invalid",
		    "Malformed multipart body",
		    "the body ends before the closing boundary"));
		return;
	}
	if (!r->have_upload) {
		http_early(r, reply_problem(400, "upload-missing",
		    "No archive uploaded", "the request has no \"weights\" "
		    "part (multipart) or no body (raw)"));
		return;
	}
	rc = spool_upload_end(r->upload, &err);
	r->upload = NULL;
	if (rc != 0) {
		log_kv(LOG_L_ERR, "request", err.msg, "req_id", r->id, "file",
		    r->upload_path, NULL);
		http_early(r, reply_problem(500, "io-error", "I/O error",
		    "storing the upload failed"));
		return;
	}
	if (sha256_final(r->sha, d) != 0) {
		http_early(r, reply_problem(500, "internal", "Internal error",
		    "hashing the upload failed"));
		return;
	}
	sha256_hex(d, r->upload_sha256);
}

/* --- request life ------------------------------------------------------ */

static void
http_req_free(struct req *r)
{
	spool_upload_drop(r->upload);
	if (r->upload_path[0] != '\0')
		(void)unlink(r->upload_path);
	sha256_free(r->sha);
	mp_free(r->mp);
	free(r->spec);
	reply_free(r->early);
	if (r->job != NULL)
		jobq_put(r->srv->jobq, r->job);
	free(r);
}

static int
http_content_type_is(const char *ct, const char *want)
{
	size_t n = strlen(want);

	return ct != NULL && strncasecmp(ct, want, n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/*
 * The checks that need only the headers.  Returns a reply to send now
 * (the body is then not read), or NULL to go on.
 */
static struct reply *
http_precheck(struct req *r, enum route_result rr)
{
	struct srv *s = r->srv;
	const struct route *rt = r->match.route;
	const char *cl, *ct;
	unsigned long long clen;
	uint64_t depth, busy, workers, known, cap;
	struct reply *rp;
	char *end;
	int bad;

	if (rr == ROUTE_NO_PATH)
		return reply_problem(404, "route-not-found", "Not found",
		    "no resource at %s", r->url);
	if (rr == ROUTE_NO_METHOD) {
		rp = reply_problem(405, "method-not-allowed",
		    "Method not allowed", "%s is not allowed on %s; use %s",
		    r->method, r->url, r->match.allow);
		reply_header(rp, "Allow", r->match.allow);
		return rp;
	}
	if (s->tokens != NULL && !(rt->flags & ROUTE_PUBLIC) &&
	    !http_tokens_check(s, http_req_header(r, "Authorization"))) {
		rp = reply_problem(401, "unauthorized", "Unauthorized",
		    "this resource needs a valid bearer token");
		reply_header(rp, "WWW-Authenticate",
		    http_req_header(r, "Authorization") != NULL ?
		    "Bearer realm=\"weightbridge\", error=\"invalid_token\"" :
		    "Bearer realm=\"weightbridge\"");
		return rp;
	}
	if (!(rt->flags & ROUTE_UPLOAD))
		return NULL;
	if ((rt->flags & ROUTE_SPEC) && jobq_draining(s->jobq)) {
		rp = reply_problem(503, "draining", "Shutting down",
		    "the server is shutting down and takes no new jobs");
		reply_header(rp, "Retry-After", "30");
		return rp;
	}
	ct = http_req_header(r, "Content-Type");
	cap = s->cfg->upload_limit;
	if (http_content_type_is(ct, "multipart/form-data")) {
		r->body_kind = HTTP_BODY_MULTIPART;
		cap += s->cfg->spec_limit + HTTP_MULTIPART_SLACK;
		if ((r->mp = mp_new(ct, &http_mp_cb, r, &bad)) == NULL)
			return bad ? reply_problem(400, "multipart-invalid",
			    "Malformed multipart body", "Content-Type has no "
			    "valid boundary parameter") :
			    reply_problem(500, "out-of-memory",
			    "Out of memory", "no memory for the parser");
	} else if (http_content_type_is(ct, "application/zip") ||
	    http_content_type_is(ct, "application/octet-stream") ||
	    http_content_type_is(ct, "application/x-npz")) {
		r->body_kind = HTTP_BODY_RAW;
	} else
		return reply_problem(415, "unsupported-media-type",
		    "Unsupported media type", "send multipart/form-data, "
		    "application/zip or application/octet-stream, not %s",
		    ct != NULL ? ct : "a body without Content-Type");
	if ((cl = http_req_header(r, "Content-Length")) != NULL) {
		errno = 0;
		clen = strtoull(cl, &end, 10);
		if (errno == 0 && *end == '\0' && clen > cap)
			return reply_problem(413, "payload-too-large",
			    "Upload too large", "Content-Length %llu exceeds "
			    "the limit of %llu bytes", clen,
			    (unsigned long long)s->cfg->upload_limit);
		if (errno == 0 && *end == '\0')
			r->body_declared = clen;
	}
	if (rt->flags & ROUTE_SPEC) {
		jobq_gauges(s->jobq, &depth, &busy, &workers, &known);
		if (depth >= s->cfg->queue_size) {
			rp = reply_problem(429, "queue-full", "Queue full",
			    "%llu jobs are waiting; try again later",
			    (unsigned long long)depth);
			reply_header(rp, "Retry-After", "5");
			return rp;
		}
	}
	if (r->body_kind == HTTP_BODY_RAW && http_upload_open(r) != 0) {
		rp = r->early;
		r->early = NULL;
		return rp;
	}
	return NULL;
}

static enum MHD_Result
http_send(struct req *r, struct reply *rp)
{
	char rid[HTTP_REQ_ID_LEN + 1];

	r->status = reply_status(rp);
	snprintf(rid, sizeof(rid), "%s", r->id);
	reply_header(rp, "X-Request-Id", rid);
	return reply_queue(rp, r->conn) == MHD_YES ? MHD_YES : MHD_NO;
}

static void
http_suspend_cb(void *arg)
{
	struct req *r = arg;

	MHD_suspend_connection(r->conn);
	r->suspended = 1;
}

static void
http_wake_cb(void *arg)
{
	struct req *r = arg;

	MHD_resume_connection(r->conn);
}

int
http_req_wait(struct req *r, int64_t deadline_ms)
{
	if (r->conn == NULL || r->job == NULL)
		return 0;
	r->waiter.job = r->job;
	r->waiter.deadline_ms = deadline_ms;
	r->waiter.wake = http_wake_cb;
	r->waiter.arg = r;
	return jobq_wait(r->srv->jobq, &r->waiter, http_suspend_cb) == 0;
}

static enum MHD_Result
http_access(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct srv *s = cls;
	struct req *r = *con_cls;
	struct reply *rp;
	enum route_result rr;
	uint8_t rnd[HTTP_REQ_ID_LEN / 2];
	size_t i;

	if (r == NULL) {
		if ((r = calloc(1, sizeof(*r))) == NULL)
			return MHD_NO;
		r->srv = s;
		r->conn = conn;
		r->method = method;
		r->url = url;
		r->t0_us = http_now_us();
		if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) !=
		    (ssize_t)sizeof(rnd))
			memset(rnd, 0, sizeof(rnd));
		for (i = 0; i < sizeof(rnd); i++)
			snprintf(r->id + 2 * i, 3, "%02x", rnd[i]);
		*con_cls = r;
		rr = route_match(s->routes, s->nroutes, method, url, &r->match);
		/*
		 * Answering before the body is read means libmicrohttpd sends
		 * no "100 Continue", never reads the body and closes the
		 * connection after the answer.
		 */
		if ((rp = http_precheck(r, rr)) != NULL)
			return http_send(r, rp);
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (r->early == NULL)
			http_body_feed(r, upload_data, *upload_data_size);
		else
			r->discarded += *upload_data_size;
		*upload_data_size = 0;
		/*
		 * After an error mid-body, answer at once if libmicrohttpd
		 * lets us; otherwise drain the rest so the client can read
		 * the answer (libmicrohttpd 0.9.75 queues no answer before
		 * the body's end), then hang up past a cap: the declared
		 * length, which passed the upload limit, or HTTP_DISCARD_MAX.
		 */
		if (r->early != NULL && !r->early_tried) {
			r->early_tried = 1;
			r->status = reply_status(r->early);
			if (reply_try_queue(r->early, r->conn) == MHD_YES) {
				r->early = NULL;
				return MHD_YES;
			}
		}
		return r->discarded > (r->body_declared > HTTP_DISCARD_MAX ?
		    r->body_declared : HTTP_DISCARD_MAX) ? MHD_NO : MHD_YES;
	}
	if (r->early != NULL) {
		rp = r->early;
		r->early = NULL;
		return http_send(r, rp);
	}
	if (r->suspended) {
		r->suspended = 0;
		r->resumed = 1;
	} else if (r->match.route->flags & ROUTE_UPLOAD) {
		http_body_finish(r);
		if (r->early != NULL) {
			rp = r->early;
			r->early = NULL;
			return http_send(r, rp);
		}
	}
	if ((rp = r->match.route->fn(r)) == NULL)
		return MHD_YES;		/* suspended */
	return http_send(r, rp);
}

static void
http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;
	char status[8], ms[32];
	double secs;

	if (r == NULL)
		return;
	secs = (double)(http_now_us() - r->t0_us) / 1e6;
	snprintf(status, sizeof(status), "%u", r->status % 1000);
	snprintf(ms, sizeof(ms), "%.3f", secs * 1000);
	metrics_request(r->match.route != NULL ? r->match.index :
	    r->srv->nroutes, r->status, secs);
	/* 503 is a state we chose (draining), not a fault. */
	log_kv(r->status >= 500 && r->status != 503 ? LOG_L_ERR : LOG_L_INFO,
	    "request",
	    toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "request done" :
	    "request aborted", "req_id", r->id, "method", r->method,
	    "path", r->url, "status", status, "ms", ms,
	    "job_id", r->job != NULL ? jobq_job_id(r->job) : "", NULL);
	http_req_free(r);
	*con_cls = NULL;
}

static void
http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	log_kv(LOG_L_WARN, "mhd", buf, NULL);
}

/* --- listening ---------------------------------------------------------- */

int
http_listen(const char *addr, int *fd, unsigned *port, struct wb_err *err)
{
	char host[256], svc[16];
	const char *colon, *h = addr;
	size_t hlen;
	struct addrinfo hints, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int s = -1, one = 1, rc = 0, gai;

	*fd = -1;
	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');

		if (rb == NULL || rb[1] != ':') {
			rc = wb_err_set(err, WB_E_USAGE,
			    "listen address \"%s\": expected [v6addr]:port", addr);
			goto out;
		}
		h = addr + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		if ((colon = strrchr(addr, ':')) == NULL) {
			rc = wb_err_set(err, WB_E_USAGE,
			    "listen address \"%s\": expected host:port", addr);
			goto out;
		}
		hlen = (size_t)(colon - addr);
	}
	if (hlen >= sizeof(host) || strlen(colon + 1) >= sizeof(svc) ||
	    colon[1] == '\0' || strspn(colon + 1, "0123456789") !=
	    strlen(colon + 1) || atol(colon + 1) > 65535) {
		rc = wb_err_set(err, WB_E_USAGE,
		    "listen address \"%s\": bad host or port", addr);
		goto out;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	snprintf(svc, sizeof(svc), "%s", colon + 1);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((gai = getaddrinfo(host[0] != '\0' ? host : NULL, svc, &hints,
	    &ai)) != 0) {
		rc = wb_err_set(err, WB_E_USAGE, "listen address \"%s\": %s",
		    addr, gai_strerror(gai));
		goto out;
	}
	if ((s = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(s, ai->ai_addr, ai->ai_addrlen) == -1 ||
	    listen(s, 128) == -1 ||
	    getsockname(s, (struct sockaddr *)&ss, &sl) == -1) {
		rc = wb_err_set(err, WB_E_IO, "listen on %s: %s", addr,
		    strerror(errno));
		goto out;
	}
	*port = ntohs(ss.ss_family == AF_INET6 ?
	    ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port);
	*fd = s;
	s = -1;
out:
	if (s != -1)
		close(s);
	if (ai != NULL)
		freeaddrinfo(ai);
	return rc;
}

static char *
http_read_pem(const char *path, struct wb_err *err)
{
	FILE *fp;
	char *buf = NULL;
	size_t n;

	if ((fp = fopen(path, "r")) == NULL) {
		wb_err_set(err, WB_E_USAGE, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((buf = calloc(1, 64 * 1024 + 1)) != NULL) {
		n = fread(buf, 1, 64 * 1024, fp);
		if (n == 0 || n == 64 * 1024) {
			wb_err_set(err, WB_E_USAGE, "%s: empty or larger than "
			    "64 KiB", path);
			free(buf);
			buf = NULL;
		}
	} else
		wb_err_set(err, WB_E_NOMEM, "out of memory");
	fclose(fp);
	return buf;
}

int
http_start(struct srv *s, struct wb_err *err)
{
	const struct config *c = s->cfg;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	char *cert = NULL, *key = NULL;
	int rc = 0;

	if (c->tls_cert[0] != '\0' || c->tls_key[0] != '\0') {
		if (c->tls_cert[0] == '\0' || c->tls_key[0] == '\0') {
			rc = wb_err_set(err, WB_E_USAGE,
			    "tls-cert and tls-key go together");
			goto out;
		}
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			rc = wb_err_set(err, WB_E_USAGE, "this libmicrohttpd "
			    "was built without TLS support");
			goto out;
		}
		if ((cert = http_read_pem(c->tls_cert, err)) == NULL ||
		    (key = http_read_pem(c->tls_key, err)) == NULL) {
			rc = err->code;
			goto out;
		}
		flags |= MHD_USE_TLS;
		s->tls = 1;
	}
	/*
	 * The port argument is ignored: we always pass our own socket, bound
	 * by http_listen or handed over by systemd.
	 */
	s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, http_access, s,
	    MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, s,
	    MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)c->http_threads,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->conn_timeout,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)c->conn_limit,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)c->per_ip_limit,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
	    MHD_OPTION_NOTIFY_COMPLETED, http_completed, s,
	    s->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert,
	    MHD_OPTION_HTTPS_MEM_KEY, key,
	    MHD_OPTION_END);
	if (s->mhd == NULL)
		rc = wb_err_set(err, WB_E_INTERNAL,
		    "libmicrohttpd failed to start");
out:
	free(cert);
	free(key);
	return rc;
}

void
http_quiesce(struct srv *s)
{
	MHD_socket fd;

	if (s->mhd == NULL)
		return;
	fd = MHD_quiesce_daemon(s->mhd);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	s->listen_fd = -1;
}

void
http_stop(struct srv *s)
{
	if (s->mhd != NULL)
		MHD_stop_daemon(s->mhd);
	s->mhd = NULL;
}
