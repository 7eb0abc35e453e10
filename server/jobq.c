/*
 * jobq: the queue, the workers, the timer and the job records.  See jobq.h
 * for the design.  One mutex guards everything here; it is never held
 * while converting, only while copying fields and writing state.json
 * (a few hundred bytes and an fsync), which keeps the reasoning simple.
 */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "convert.h"
#include "jobq.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"
#include "report.h"

/* A worker idle this long after a job gives its memory back. */
#define JOBQ_TRIM_IDLE_MS	1000

struct job {
	char		 id[SPOOL_ID_LEN + 1];
	enum job_state	 state;
	int		 refs;
	int		 listed;	/* in q->jobs */
	int		 files;		/* its spool directory exists */
	int		 cancel;	/* DELETE asked for it */
	int64_t		 created_ms, started_ms, finished_ms;	/* realtime */
	int64_t		 enqueued_mono;
	uint64_t	 tensors_done, tensors_total, bytes_done, bytes_total;
	char		 format[JOBQ_FORMAT_MAX];	/* override or "" */
	int		 keras3;
	char		 filename[JOBQ_FILENAME_MAX];
	char		 idem_key[JOBQ_IDEM_MAX + 1];
	char		 fingerprint[65];
	uint64_t	 upload_bytes;
	char		 upload_sha256[65];
	int		 attempts;
	/* outcome */
	enum wb_code	 err_code;
	char		 err_msg[WB_ERR_MSG_MAX];
	char		 result_format[JOBQ_FORMAT_MAX];
	uint64_t	 result_bytes;
	char		 result_sha256[65];
	struct job	*qnext;		/* queue link */
};

struct jobq {
	struct jobq_conf conf;
	struct spool	*sp;
	pthread_mutex_t	 lock;
	pthread_cond_t	 work;		/* a job was queued, or stop */
	pthread_cond_t	 timer_cv;	/* a waiter was added, or stop */
	pthread_cond_t	 idle;		/* a worker finished a job */
	struct job	*qhead, *qtail;
	size_t		 qlen;
	struct job	**jobs;		/* every known job, oldest first */
	size_t		 njobs, capjobs;
	struct jobq_waiter *waiters;
	unsigned	 busy;
	int		 draining, stopping, aborting;
	pthread_t	*workers;
	unsigned	 nworkers;
	pthread_t	 timer;
	int		 timer_started;
	int64_t		 next_reap;
};

static int64_t
jobq_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
jobq_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
jobq_rfc3339(int64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100,
	    tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
	    tm.tm_sec % 100, (int)(ms % 1000));
}

const char *
job_state_name(enum job_state s)
{
	switch (s) {
	case JOB_QUEUED: return "queued";
	case JOB_RUNNING: return "running";
	case JOB_SUCCEEDED: return "succeeded";
	case JOB_FAILED: return "failed";
	default: return "cancelled";
	}
}

static int
job_state_parse(const char *s, enum job_state *out)
{
	static const enum job_state all[] = { JOB_QUEUED, JOB_RUNNING,
	    JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED };
	size_t i;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(s, job_state_name(all[i])) == 0) {
			*out = all[i];
			return 0;
		}
	return -1;
}

int
job_state_final(enum job_state s)
{
	return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_CANCELLED;
}

const char *
jobq_job_id(const struct job *j)
{
	return j->id;
}

static const char *
job_result_name(const struct job *j)
{
	return j->keras3 ? SPOOL_RESULT_K3 : SPOOL_RESULT_H5;
}

static void
job_set_time(json_t *o, const char *key, int64_t ms)
{
	char ts[32];

	if (ms == 0) {
		json_object_set_new(o, key, json_null());
		return;
	}
	jobq_rfc3339(ms, ts);
	json_object_set_new(o, key, json_string(ts));
}

/*
 * The job as JSON.  persist = 1 is the state.json form (with the fields
 * that only recovery needs); 0 is the API resource with links.  Lock held.
 */
static json_t *
job_to_json(const struct job *j, int persist)
{
	json_t *o, *err;
	char link[128], detail[WB_ERR_MSG_MAX + 64];

	if ((o = json_object()) == NULL)
		return NULL;
	json_object_set_new(o, "id", json_string(j->id));
	json_object_set_new(o, "state", json_string(job_state_name(j->state)));
	job_set_time(o, "created_at", j->created_ms);
	job_set_time(o, "started_at", j->started_ms);
	job_set_time(o, "finished_at", j->finished_ms);
	json_object_set_new(o, "format", j->format[0] != '\0' ?
	    json_string(j->format) : json_null());
	json_object_set_new(o, "input", json_pack("{s:I, s:s, s:s}",
	    "bytes", (json_int_t)j->upload_bytes, "sha256", j->upload_sha256,
	    "filename", j->filename));
	json_object_set_new(o, "progress", json_pack("{s:I, s:I, s:I, s:I}",
	    "tensors_done", (json_int_t)j->tensors_done,
	    "tensors_total", (json_int_t)j->tensors_total,
	    "bytes_done", (json_int_t)j->bytes_done,
	    "bytes_total", (json_int_t)j->bytes_total));
	if (j->state == JOB_SUCCEEDED)
		json_object_set_new(o, "result", json_pack("{s:s, s:I, s:s}",
		    "format", j->result_format, "bytes",
		    (json_int_t)j->result_bytes, "sha256", j->result_sha256));
	if (j->state == JOB_FAILED || j->state == JOB_CANCELLED) {
		snprintf(detail, sizeof(detail), "%s", j->err_msg[0] != '\0' ?
		    j->err_msg : "the job was cancelled");
		snprintf(link, sizeof(link), "/v1/jobs/%s", j->id);
		err = json_pack("{s:s, s:s, s:i, s:s, s:s}",
		    "type", "", "title", wb_err_title(j->err_code),
		    "status", (int)reply_status_for(j->err_code),
		    "detail", detail, "instance", link);
		if (err != NULL) {
			char type[128];

			snprintf(type, sizeof(type),
			    "https://weightbridge.dev/problems/%s",
			    wb_err_name(j->err_code));
			json_object_set_new(err, "type", json_string(type));
			json_object_set_new(err, "code",
			    json_string(wb_err_name(j->err_code)));
		}
		json_object_set_new(o, "error", err);
	}
	if (persist) {
		json_object_set_new(o, "created_ms", json_integer(j->created_ms));
		json_object_set_new(o, "started_ms", json_integer(j->started_ms));
		json_object_set_new(o, "finished_ms",
		    json_integer(j->finished_ms));
		json_object_set_new(o, "keras3", json_boolean(j->keras3));
		json_object_set_new(o, "idempotency_key",
		    json_string(j->idem_key));
		json_object_set_new(o, "fingerprint", json_string(j->fingerprint));
		json_object_set_new(o, "cancel", json_boolean(j->cancel));
		json_object_set_new(o, "attempts", json_integer(j->attempts));
		json_object_set_new(o, "err_code", json_integer(j->err_code));
		json_object_set_new(o, "err_msg", json_string(j->err_msg));
		return o;
	}
	snprintf(link, sizeof(link), "/v1/jobs/%s", j->id);
	json_object_set_new(o, "links", json_pack("{s:s}", "self", link));
	if (j->files) {
		json_t *links = json_object_get(o, "links");

		snprintf(link, sizeof(link), "/v1/jobs/%s/report", j->id);
		json_object_set_new(links, "report", json_string(link));
		if (j->state == JOB_SUCCEEDED) {
			snprintf(link, sizeof(link), "/v1/jobs/%s/result", j->id);
			json_object_set_new(links, "result", json_string(link));
		}
	}
	return o;
}

static void
job_copy_str(char *dst, size_t len, json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	snprintf(dst, len, "%s", s != NULL ? s : "");
}

static uint64_t
job_get_u64(json_t *o, const char *path1, const char *key)
{
	json_t *v = path1 != NULL ? json_object_get(json_object_get(o, path1),
	    key) : json_object_get(o, key);
	json_int_t n = json_integer_value(v);

	return n > 0 ? (uint64_t)n : 0;
}

/* A job from its state.json; NULL if it does not make sense. */
static struct job *
job_from_json(const char *id, json_t *o)
{
	struct job *j;
	json_t *res;
	int64_t code;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	snprintf(j->id, sizeof(j->id), "%s", id);
	if (json_string_value(json_object_get(o, "state")) == NULL ||
	    job_state_parse(json_string_value(json_object_get(o, "state")),
	    &j->state) != 0 || strcmp(json_string_value(json_object_get(o,
	    "id")) ? json_string_value(json_object_get(o, "id")) : "", id)) {
		free(j);
		return NULL;
	}
	j->created_ms = (int64_t)job_get_u64(o, NULL, "created_ms");
	j->started_ms = (int64_t)job_get_u64(o, NULL, "started_ms");
	j->finished_ms = (int64_t)job_get_u64(o, NULL, "finished_ms");
	job_copy_str(j->format, sizeof(j->format), o, "format");
	j->keras3 = json_is_true(json_object_get(o, "keras3"));
	j->cancel = json_is_true(json_object_get(o, "cancel"));
	j->attempts = (int)job_get_u64(o, NULL, "attempts");
	job_copy_str(j->idem_key, sizeof(j->idem_key), o, "idempotency_key");
	job_copy_str(j->fingerprint, sizeof(j->fingerprint), o, "fingerprint");
	job_copy_str(j->filename, sizeof(j->filename),
	    json_object_get(o, "input"), "filename");
	job_copy_str(j->upload_sha256, sizeof(j->upload_sha256),
	    json_object_get(o, "input"), "sha256");
	j->upload_bytes = job_get_u64(o, "input", "bytes");
	j->tensors_done = job_get_u64(o, "progress", "tensors_done");
	j->tensors_total = job_get_u64(o, "progress", "tensors_total");
	j->bytes_done = job_get_u64(o, "progress", "bytes_done");
	j->bytes_total = job_get_u64(o, "progress", "bytes_total");
	code = (int64_t)job_get_u64(o, NULL, "err_code");
	j->err_code = code < WB_E__COUNT ? (enum wb_code)code : WB_E_INTERNAL;
	job_copy_str(j->err_msg, sizeof(j->err_msg), o, "err_msg");
	if ((res = json_object_get(o, "result")) != NULL) {
		job_copy_str(j->result_format, sizeof(j->result_format), res,
		    "format");
		job_copy_str(j->result_sha256, sizeof(j->result_sha256), res,
		    "sha256");
		j->result_bytes = job_get_u64(res, NULL, "bytes");
	}
	j->files = 1;
	return j;
}

/* Write state.json.  Lock held.  Failures are logged: the job goes on. */
static int
job_persist(struct jobq *q, struct job *j)
{
	json_t *o;
	char *text = NULL;
	struct wb_err err;
	int rc = -1;

	wb_err_clear(&err);
	if (!j->files)
		return 0;
	if ((o = job_to_json(j, 1)) == NULL ||
	    (text = json_dumps(o, JSON_COMPACT)) == NULL)
		goto out;
	if (spool_job_write(q->sp, j->id, SPOOL_STATE, text, strlen(text),
	    &err) != 0) {
		log_kv(LOG_L_ERR, "job", err.msg, "job_id", j->id, NULL);
		goto out;
	}
	rc = 0;
out:
	free(text);
	json_decref(o);
	return rc;
}

static void
job_log(const struct job *j, const char *msg)
{
	log_kv(j->state == JOB_FAILED && !wb_err_is_client(j->err_code) ?
	    LOG_L_ERR : LOG_L_INFO, "job", msg, "job_id", j->id,
	    "state", job_state_name(j->state),
	    "code", j->err_code != WB_OK ? wb_err_name(j->err_code) : "",
	    "detail", j->err_msg, NULL);
}

static int
jobq_list_add(struct jobq *q, struct job *j)
{
	struct job **nj;
	size_t cap;

	if (q->njobs == q->capjobs) {
		cap = q->capjobs ? q->capjobs * 2 : 64;
		if ((nj = realloc(q->jobs, cap * sizeof(*nj))) == NULL)
			return -1;
		q->jobs = nj;
		q->capjobs = cap;
	}
	q->jobs[q->njobs++] = j;
	j->listed = 1;
	j->refs++;
	return 0;
}

static void
job_unref(struct job *j)
{
	if (--j->refs == 0)
		free(j);
}

/* Drop j from the list (lock held). */
static void
jobq_list_remove(struct jobq *q, struct job *j)
{
	size_t i;

	for (i = 0; i < q->njobs; i++)
		if (q->jobs[i] == j) {
			memmove(&q->jobs[i], &q->jobs[i + 1],
			    (q->njobs - i - 1) * sizeof(q->jobs[0]));
			q->njobs--;
			j->listed = 0;
			job_unref(j);
			return;
		}
}

static void
jobq_push(struct jobq *q, struct job *j)
{
	j->qnext = NULL;
	j->enqueued_mono = jobq_mono_ms();
	if (q->qtail != NULL)
		q->qtail->qnext = j;
	else
		q->qhead = j;
	q->qtail = j;
	q->qlen++;
	j->refs++;
	pthread_cond_signal(&q->work);
}

static int
jobq_unqueue(struct jobq *q, struct job *j)
{
	struct job **pp;

	for (pp = &q->qhead; *pp != NULL; pp = &(*pp)->qnext)
		if (*pp == j) {
			*pp = j->qnext;
			if (q->qtail == j) {
				struct job *t = q->qhead;

				while (t != NULL && t->qnext != NULL)
					t = t->qnext;
				q->qtail = t;
			}
			q->qlen--;
			j->qnext = NULL;
			job_unref(j);
			return 1;
		}
	return 0;
}

/* Wake every waiter of j (or all, j == NULL).  Lock held. */
static void
jobq_wake(struct jobq *q, struct job *j, int64_t expired_before)
{
	struct jobq_waiter **pp = &q->waiters, *w;

	while ((w = *pp) != NULL) {
		if ((j == NULL && expired_before == 0) || (j != NULL &&
		    w->job == j) || (expired_before != 0 &&
		    w->deadline_ms <= expired_before)) {
			*pp = w->next;
			w->next = NULL;
			w->wake(w->arg);
			continue;
		}
		pp = &w->next;
	}
}

int
jobq_new(const struct jobq_conf *conf, struct spool *sp, struct jobq **out,
    struct wb_err *err)
{
	struct jobq *q;

	*out = NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return wb_err_set(err, WB_E_NOMEM, "jobq: out of memory");
	q->conf = *conf;
	if (q->conf.workers == 0)
		q->conf.workers = 1;
	q->sp = sp;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->idle, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&q->timer_cv, &ca);
		pthread_cond_init(&q->work, &ca);
		pthread_condattr_destroy(&ca);
	}
	*out = q;
	return 0;
}

static int
jobq_recover_one(void *arg, const char *id, json_t *state)
{
	struct jobq *q = arg;
	struct job *j;

	if ((j = job_from_json(id, state)) == NULL)
		return -1;
	if (j->cancel && !job_state_final(j->state)) {
		/* Cancelled by DELETE before the crash: finish the cancel. */
		free(j);
		return -1;
	}
	if (j->state == JOB_RUNNING) {
		/* Interrupted: run it again from the start. */
		j->state = JOB_QUEUED;
		j->started_ms = 0;
		j->tensors_done = j->bytes_done = 0;
	}
	if (jobq_list_add(q, j) != 0) {
		free(j);
		return -1;
	}
	return 0;
}

static int
jobq_cmp_created(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a;
	const struct job *y = *(struct job *const *)b;

	if (x->created_ms != y->created_ms)
		return x->created_ms < y->created_ms ? -1 : 1;
	return strcmp(x->id, y->id);
}

int
jobq_recover(struct jobq *q, size_t *n, struct wb_err *err)
{
	size_t i;
	int rc;

	pthread_mutex_lock(&q->lock);
	rc = spool_recover(q->sp, jobq_recover_one, q, err);
	if (rc == 0 && q->njobs > 0) {
		qsort(q->jobs, q->njobs, sizeof(q->jobs[0]), jobq_cmp_created);
		for (i = 0; i < q->njobs; i++)
			if (q->jobs[i]->state == JOB_QUEUED) {
				(void)job_persist(q, q->jobs[i]);
				jobq_push(q, q->jobs[i]);
			}
	}
	*n = q->njobs;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* Lock held.  Forget j and remove its files. */
static void
jobq_forget(struct jobq *q, struct job *j)
{
	if (j->files) {
		(void)spool_job_remove(q->sp, j->id);
		j->files = 0;
	}
	if (j->listed)
		jobq_list_remove(q, j);
}

struct jobq_progress {
	struct jobq	*q;
	struct job	*j;
};

static int
jobq_progress_cb(void *arg, uint64_t tensors_done, uint64_t tensors_total,
    uint64_t bytes_done, uint64_t bytes_total)
{
	struct jobq_progress *p = arg;
	int stop;

	pthread_mutex_lock(&p->q->lock);
	p->j->tensors_done = tensors_done;
	p->j->tensors_total = tensors_total;
	p->j->bytes_done = bytes_done;
	p->j->bytes_total = bytes_total;
	stop = p->j->cancel || p->q->aborting;
	pthread_mutex_unlock(&p->q->lock);
	return stop;
}

/*
 * Replace every occurrence of path in the string s (a buffer of len bytes)
 * by name.  Messages from the converter name the file they read; for a job
 * that is its spool path, which is none of the client's business.
 */
static void
jobq_scrub(char *s, size_t len, const char *path, const char *name)
{
	char out[WB_ERR_MSG_MAX];
	const char *p, *m = s;
	size_t plen = strlen(path), o = 0;
	int n;

	if (plen == 0 || strstr(s, path) == NULL)
		return;
	while ((p = strstr(m, path)) != NULL) {
		n = snprintf(out + o, sizeof(out) - o, "%.*s%s", (int)(p - m), m,
		    name);
		if (n < 0 || (size_t)n >= sizeof(out) - o) {
			o = sizeof(out) - 1;
			break;
		}
		o += (size_t)n;
		m = p + plen;
	}
	if (o < sizeof(out) - 1)
		snprintf(out + o, sizeof(out) - o, "%s", m);
	snprintf(s, len, "%s", out);
}

/*
 * A job's spool paths as a client may see them: its input by the name the
 * client uploaded, its other files (result.h5.tmp-..., .report.json.tmp)
 * by their own names.  dir ends in '/' and begins input.
 */
struct jobq_paths {
	const char	*input, *upload, *dir;
};

static void
jobq_unspool(char *s, size_t len, const struct jobq_paths *jp)
{
	jobq_scrub(s, len, jp->input, jp->upload);
	jobq_scrub(s, len, jp->dir, "");
}

/* The same for every string in a report (problem messages, mostly). */
static void
jobq_unspool_json(json_t *v, const struct jobq_paths *jp)
{
	char buf[WB_ERR_MSG_MAX];
	const char *key;
	json_t *x;
	size_t i;

	if (json_is_string(v) && strstr(json_string_value(v), jp->dir) !=
	    NULL) {
		snprintf(buf, sizeof(buf), "%s", json_string_value(v));
		jobq_unspool(buf, sizeof(buf), jp);
		(void)json_string_set(v, buf);
	} else if (json_is_object(v)) {
		json_object_foreach(v, key, x)
			jobq_unspool_json(x, jp);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			jobq_unspool_json(x, jp);
	}
}

static int
jobq_fill_report(int fd, void *arg)
{
	return report_write_fd(fd, arg, JSON_INDENT(2));
}

/*
 * Run one job (no lock held): convert, then write its report.  err and
 * the report name no path of the spool.
 */
static void
jobq_run(struct jobq *q, struct job *j, struct wb_err *err, json_t **report)
{
	struct convert_opts o;
	struct jobq_progress pg = { q, j };
	struct wb_err werr;
	char input[SPOOL_PATH_MAX], spec[SPOOL_PATH_MAX], out[SPOOL_PATH_MAX];
	char dir[SPOOL_PATH_MAX + 1], upload[JOBQ_FILENAME_MAX + 8];
	const struct jobq_paths jp = { input, upload, dir };
	json_t *specj = NULL;
	json_error_t jerr;
	char format[JOBQ_FORMAT_MAX];

	pthread_mutex_lock(&q->lock);
	snprintf(format, sizeof(format), "%s", j->format);
	pthread_mutex_unlock(&q->lock);
	if (spool_job_path(q->sp, j->id, SPOOL_INPUT, input, sizeof(input)) ||
	    spool_job_path(q->sp, j->id, SPOOL_SPEC, spec, sizeof(spec)) ||
	    spool_job_path(q->sp, j->id, job_result_name(j), out,
	    sizeof(out)) ||
	    spool_job_path(q->sp, j->id, NULL, dir, sizeof(dir) - 1)) {
		wb_err_set(err, WB_E_IO, "job path too long");
		return;
	}
	if ((specj = json_load_file(spec, JSON_REJECT_DUPLICATES, &jerr)) ==
	    NULL) {
		wb_err_set(err, WB_E_IO, "reading %s: %s", SPOOL_SPEC,
		    jerr.text);
		return;
	}
	convert_opts_init(&o);
	o.npz_path = input;
	o.spec = specj;
	o.out_path = out;
	o.format = format[0] != '\0' ? format : NULL;
	o.limits = q->conf.limits;
	o.progress = jobq_progress_cb;
	o.progress_arg = &pg;
	/*
	 * The result is hashed and then downloaded: one pass through the
	 * page cache beats writing past it and reading it back from the disk
	 * twice (resnet50 end to end: 0.49-0.50 s against 0.54-0.55 s).
	 */
	o.cache_output = 1;
	/*
	 * Share the CPUs among the jobs running now: a lone job gets them
	 * all, a full pool of workers one thread each (measured: a lone
	 * resnet50 job took 0.74 s end to end on one thread, the CLI 0.38 s
	 * on two).
	 */
	{
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		unsigned busy;

		pthread_mutex_lock(&q->lock);
		busy = q->busy > 0 ? q->busy : 1;
		pthread_mutex_unlock(&q->lock);
		o.threads = ncpu > (long)busy ? (int)(ncpu / (long)busy) : 1;
	}
	(void)convert_run(&o, report, err);
	/* A client has no business knowing the server's directories. */
	snprintf(upload, sizeof(upload), "%s.npz", j->filename);
	strcat(dir, "/");
	if (*report != NULL)
		jobq_unspool_json(*report, &jp);
	if (*report != NULL && json_is_object(json_object_get(*report,
	    "source")))
		json_object_set_new(json_object_get(*report, "source"), "file",
		    json_string(j->filename));
	/*
	 * Streamed to the job's directory (no copy of the text: 17 MB for
	 * 20,000 tensors).  A cancelled job's files go, or it runs again:
	 * no report for it.
	 */
	wb_err_clear(&werr);
	if (*report != NULL && err->code != WB_E_CANCELLED &&
	    spool_job_write_fill(q->sp, j->id, SPOOL_REPORT, jobq_fill_report,
	    *report, &werr) != 0 && err->code == WB_OK)
		*err = werr;
	jobq_unspool(err->msg, sizeof(err->msg), &jp);
	json_decref(specj);
}

static void *
jobq_worker(void *arg)
{
	struct jobq *q = arg;
	struct job *j;
	struct wb_err err;
	struct timespec ts;
	json_t *report, *res;
	int64_t t0, t1, ms;
	int requeue, trim = 0;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->stopping && q->qhead == NULL) {
			if (!trim) {
				pthread_cond_wait(&q->work, &q->lock);
				continue;
			}
			/*
			 * Idle for a while after a job: hand what it freed
			 * back to the system.  Each worker has its own malloc
			 * arena, which otherwise keeps its peak (measured: 108
			 * MB idle after one 20,000-tensor job, 289 MB after
			 * four).  Not at once: jobs back to back would fault
			 * their memory in again (ResNet-50 jobs: medians 0.02
			 * to 0.06 s slower).
			 */
			ms = jobq_mono_ms() + JOBQ_TRIM_IDLE_MS;
			ts.tv_sec = (time_t)(ms / 1000);
			ts.tv_nsec = (long)(ms % 1000) * 1000000;
			if (pthread_cond_timedwait(&q->work, &q->lock, &ts) !=
			    ETIMEDOUT || q->stopping || q->qhead != NULL)
				continue;
			trim = 0;
#ifdef __GLIBC__
			pthread_mutex_unlock(&q->lock);
			(void)malloc_trim(0);
			pthread_mutex_lock(&q->lock);
#endif
		}
		if (q->stopping)
			break;
		j = q->qhead;
		q->qhead = j->qnext;
		if (q->qhead == NULL)
			q->qtail = NULL;
		q->qlen--;
		j->qnext = NULL;	/* the queue's reference is now ours */
		j->state = JOB_RUNNING;
		j->started_ms = jobq_now_ms();
		j->attempts++;
		q->busy++;
		t0 = jobq_mono_ms();
		metrics_job_phase(METRICS_PHASE_QUEUED,
		    (double)(t0 - j->enqueued_mono) / 1000.0);
		(void)job_persist(q, j);
		job_log(j, "job started");
		pthread_mutex_unlock(&q->lock);

		wb_err_clear(&err);
		report = NULL;
		jobq_run(q, j, &err, &report);

		pthread_mutex_lock(&q->lock);
		t1 = jobq_mono_ms();
		requeue = err.code == WB_E_CANCELLED && q->aborting && !j->cancel;
		if (requeue) {
			/* Shutdown past its grace: run it at the next start. */
			j->state = JOB_QUEUED;
			j->started_ms = 0;
			j->tensors_done = j->bytes_done = 0;
		} else if (err.code == WB_OK) {
			res = json_object_get(report, "result");
			j->state = JOB_SUCCEEDED;
			snprintf(j->result_format, sizeof(j->result_format),
			    "%s", json_string_value(json_object_get(res,
			    "format")) ? json_string_value(json_object_get(res,
			    "format")) : (j->keras3 ? "keras3" : "keras-h5"));
			snprintf(j->result_sha256, sizeof(j->result_sha256),
			    "%s", json_string_value(json_object_get(res,
			    "sha256")) ? json_string_value(json_object_get(res,
			    "sha256")) : "");
			j->result_bytes = (uint64_t)json_integer_value(
			    json_object_get(res, "bytes"));
		} else {
			j->state = err.code == WB_E_CANCELLED ? JOB_CANCELLED :
			    JOB_FAILED;
			j->err_code = err.code;
			snprintf(j->err_msg, sizeof(j->err_msg), "%s", err.msg);
		}
		if (!requeue) {
			j->finished_ms = jobq_now_ms();
			metrics_job_phase(METRICS_PHASE_RUNNING,
			    (double)(t1 - t0) / 1000.0);
			metrics_job_outcome(job_state_name(j->state));
		}
		if (j->state == JOB_CANCELLED && j->files) {
			(void)spool_job_remove(q->sp, j->id);
			j->files = 0;
		} else
			(void)job_persist(q, j);
		job_log(j, requeue ? "job interrupted by shutdown, requeued" :
		    "job finished");
		q->busy--;
		jobq_wake(q, j, 0);
		pthread_cond_broadcast(&q->idle);
		job_unref(j);
		pthread_mutex_unlock(&q->lock);
		json_decref(report);
		trim = 1;
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

static void *
jobq_timer(void *arg)
{
	struct jobq *q = arg;
	struct jobq_waiter *w;
	struct timespec ts;
	int64_t now, next;

	pthread_mutex_lock(&q->lock);
	q->next_reap = jobq_mono_ms() + (int64_t)q->conf.reap_interval_ms;
	while (!q->stopping) {
		now = jobq_mono_ms();
		jobq_wake(q, NULL, now);
		if (now >= q->next_reap) {
			pthread_mutex_unlock(&q->lock);
			(void)jobq_reap(q);
			pthread_mutex_lock(&q->lock);
			q->next_reap = now + (int64_t)q->conf.reap_interval_ms;
		}
		next = q->next_reap;
		for (w = q->waiters; w != NULL; w = w->next)
			if (w->deadline_ms < next)
				next = w->deadline_ms;
		ts.tv_sec = (time_t)(next / 1000);
		ts.tv_nsec = (long)(next % 1000) * 1000000;
		(void)pthread_cond_timedwait(&q->timer_cv, &q->lock, &ts);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int
jobq_start(struct jobq *q, struct wb_err *err)
{
	unsigned i;

	if ((q->workers = calloc(q->conf.workers, sizeof(pthread_t))) == NULL)
		return wb_err_set(err, WB_E_NOMEM, "jobq: out of memory");
	for (i = 0; i < q->conf.workers; i++) {
		if (pthread_create(&q->workers[i], NULL, jobq_worker, q) != 0)
			return wb_err_set(err, WB_E_INTERNAL,
			    "starting worker %u failed", i);
		q->nworkers++;
	}
	if (pthread_create(&q->timer, NULL, jobq_timer, q) != 0)
		return wb_err_set(err, WB_E_INTERNAL, "starting timer failed");
	q->timer_started = 1;
	return 0;
}

void
jobq_drain(struct jobq *q)
{
	pthread_mutex_lock(&q->lock);
	q->draining = 1;
	pthread_mutex_unlock(&q->lock);
}

int
jobq_draining(struct jobq *q)
{
	int d;

	pthread_mutex_lock(&q->lock);
	d = q->draining;
	pthread_mutex_unlock(&q->lock);
	return d;
}

void
jobq_stop(struct jobq *q, uint64_t grace_ms)
{
	struct timespec ts;
	unsigned i;

	pthread_mutex_lock(&q->lock);
	q->draining = 1;
	q->stopping = 1;	/* workers take no new job */
	pthread_cond_broadcast(&q->work);
	pthread_cond_broadcast(&q->timer_cv);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(grace_ms / 1000);
	ts.tv_nsec += (long)(grace_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	while (q->busy > 0)
		if (pthread_cond_timedwait(&q->idle, &q->lock, &ts) == ETIMEDOUT)
			break;
	if (q->busy > 0) {
		log_msg(LOG_L_WARN, "shutdown grace over: interrupting %u "
		    "running job(s); they will re-run at the next start",
		    q->busy);
		q->aborting = 1;
	}
	pthread_mutex_unlock(&q->lock);
	for (i = 0; i < q->nworkers; i++)
		pthread_join(q->workers[i], NULL);
	if (q->timer_started)
		pthread_join(q->timer, NULL);
	q->nworkers = 0;
	q->timer_started = 0;
	pthread_mutex_lock(&q->lock);
	jobq_wake(q, NULL, 0);
	pthread_mutex_unlock(&q->lock);
}

void
jobq_free(struct jobq *q)
{
	size_t i;

	if (q == NULL)
		return;
	while (q->qhead != NULL)
		(void)jobq_unqueue(q, q->qhead);
	for (i = 0; i < q->njobs; i++)
		job_unref(q->jobs[i]);
	free(q->jobs);
	free(q->workers);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->work);
	pthread_cond_destroy(&q->idle);
	pthread_cond_destroy(&q->timer_cv);
	free(q);
}

/* Lock held. */
static struct job *
jobq_find_idem(struct jobq *q, const char *key)
{
	size_t i;

	for (i = 0; i < q->njobs; i++)
		if (q->jobs[i]->idem_key[0] != '\0' &&
		    strcmp(q->jobs[i]->idem_key, key) == 0)
			return q->jobs[i];
	return NULL;
}

enum jobq_refusal
jobq_submit(struct jobq *q, const struct job_new *jn, const char *upload_path,
    const void *spec, size_t speclen, struct job **out, struct wb_err *err)
{
	struct job *j = NULL, *old;
	enum jobq_refusal ans = JOBQ_FAILED;

	*out = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->draining) {
		ans = JOBQ_DRAINING;
		goto out;
	}
	if (jn->idem_key != NULL &&
	    (old = jobq_find_idem(q, jn->idem_key)) != NULL) {
		if (strcmp(old->fingerprint, jn->fingerprint) != 0) {
			ans = JOBQ_IDEM_CONFLICT;
			goto out;
		}
		old->refs++;
		*out = old;
		ans = JOBQ_REPLAYED;
		goto out;
	}
	if (q->qlen >= q->conf.queue_size) {
		ans = JOBQ_FULL;
		goto out;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		wb_err_set(err, WB_E_NOMEM, "jobq: out of memory");
		goto out;
	}
	if (spool_new_id(j->id, err) != 0)
		goto out;
	j->state = JOB_QUEUED;
	j->created_ms = jobq_now_ms();
	snprintf(j->format, sizeof(j->format), "%s",
	    jn->format != NULL ? jn->format : "");
	j->keras3 = jn->keras3;
	snprintf(j->filename, sizeof(j->filename), "%s",
	    jn->filename != NULL ? jn->filename : "weights");
	snprintf(j->idem_key, sizeof(j->idem_key), "%s",
	    jn->idem_key != NULL ? jn->idem_key : "");
	snprintf(j->fingerprint, sizeof(j->fingerprint), "%s", jn->fingerprint);
	snprintf(j->upload_sha256, sizeof(j->upload_sha256), "%s",
	    jn->upload_sha256);
	j->upload_bytes = jn->upload_bytes;
	if (spool_job_create(q->sp, j->id, upload_path, spec, speclen, err) != 0)
		goto out;
	j->files = 1;
	if (job_persist(q, j) != 0) {
		wb_err_set(err, WB_E_IO, "writing the state of job %s failed",
		    j->id);
		(void)spool_job_remove(q->sp, j->id);
		goto out;
	}
	if (jobq_list_add(q, j) != 0) {
		wb_err_set(err, WB_E_NOMEM, "jobq: out of memory");
		(void)spool_job_remove(q->sp, j->id);
		goto out;
	}
	jobq_push(q, j);
	job_log(j, "job queued");
	j->refs++;
	*out = j;
	j = NULL;
	ans = JOBQ_ACCEPTED;
out:
	pthread_mutex_unlock(&q->lock);
	free(j);
	return ans;
}

struct job *
jobq_get(struct jobq *q, const char *id)
{
	struct job *j = NULL;
	size_t i;

	pthread_mutex_lock(&q->lock);
	for (i = 0; i < q->njobs; i++)
		if (strcmp(q->jobs[i]->id, id) == 0) {
			j = q->jobs[i];
			j->refs++;
			break;
		}
	pthread_mutex_unlock(&q->lock);
	return j;
}

void
jobq_put(struct jobq *q, struct job *j)
{
	if (j == NULL)
		return;
	pthread_mutex_lock(&q->lock);
	job_unref(j);
	pthread_mutex_unlock(&q->lock);
}

json_t *
jobq_job_json(struct jobq *q, struct job *j)
{
	json_t *o;

	pthread_mutex_lock(&q->lock);
	o = job_to_json(j, 0);
	pthread_mutex_unlock(&q->lock);
	return o;
}

enum job_state
jobq_job_state(struct jobq *q, struct job *j)
{
	enum job_state s;

	pthread_mutex_lock(&q->lock);
	s = j->state;
	pthread_mutex_unlock(&q->lock);
	return s;
}

int
jobq_job_result(struct jobq *q, struct job *j, char *path, size_t pathlen,
    char sha256[65], char *name, size_t namelen)
{
	int rc = -1;

	pthread_mutex_lock(&q->lock);
	if (j->state == JOB_SUCCEEDED && j->files &&
	    spool_job_path(q->sp, j->id, job_result_name(j), path,
	    pathlen) == 0) {
		snprintf(sha256, 65, "%s", j->result_sha256);
		snprintf(name, namelen, "%s%s", j->filename,
		    strcmp(j->result_format, "keras3") == 0 ? ".weights.h5" :
		    ".h5");
		rc = 0;
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

void
jobq_cancel(struct jobq *q, struct job *j, int *gone)
{
	*gone = 0;
	pthread_mutex_lock(&q->lock);
	switch (j->state) {
	case JOB_QUEUED:
		(void)jobq_unqueue(q, j);
		j->cancel = 1;
		j->state = JOB_CANCELLED;
		j->err_code = WB_E_CANCELLED;
		snprintf(j->err_msg, sizeof(j->err_msg),
		    "cancelled by DELETE while queued");
		j->finished_ms = jobq_now_ms();
		if (j->files) {
			(void)spool_job_remove(q->sp, j->id);
			j->files = 0;
		}
		metrics_job_outcome("cancelled");
		job_log(j, "job cancelled");
		jobq_wake(q, j, 0);
		break;
	case JOB_RUNNING:
		if (!j->cancel) {
			j->cancel = 1;
			/* Persisted so a crash now does not re-run it. */
			(void)job_persist(q, j);
			snprintf(j->err_msg, sizeof(j->err_msg),
			    "cancelled by DELETE while running");
			job_log(j, "job cancel requested");
		}
		break;
	default:
		jobq_forget(q, j);
		*gone = 1;
		log_kv(LOG_L_INFO, "job", "job deleted", "job_id", j->id, NULL);
		break;
	}
	pthread_mutex_unlock(&q->lock);
}

int
jobq_wait(struct jobq *q, struct jobq_waiter *w, void (*suspend)(void *arg))
{
	pthread_mutex_lock(&q->lock);
	if (job_state_final(w->job->state) || q->stopping) {
		pthread_mutex_unlock(&q->lock);
		return 1;
	}
	suspend(w->arg);
	w->next = q->waiters;
	q->waiters = w;
	pthread_cond_signal(&q->timer_cv);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

json_t *
jobq_list(struct jobq *q, size_t limit, const char *cursor,
    char next[SPOOL_ID_LEN + 1])
{
	json_t *arr;
	size_t i, n = 0;
	int started = cursor == NULL;

	next[0] = '\0';
	if ((arr = json_array()) == NULL)
		return NULL;
	pthread_mutex_lock(&q->lock);
	for (i = q->njobs; i-- > 0;) {
		if (!started) {
			if (strcmp(q->jobs[i]->id, cursor) == 0)
				started = 1;
			continue;
		}
		if (n == limit) {
			snprintf(next, SPOOL_ID_LEN + 1, "%s", q->jobs[i + 1]->id);
			break;
		}
		json_array_append_new(arr, job_to_json(q->jobs[i], 0));
		n++;
	}
	pthread_mutex_unlock(&q->lock);
	return arr;
}

void
jobq_gauges(struct jobq *q, uint64_t *depth, uint64_t *busy,
    uint64_t *workers, uint64_t *known)
{
	pthread_mutex_lock(&q->lock);
	*depth = q->qlen;
	*busy = q->busy;
	*workers = q->conf.workers;
	*known = q->njobs;
	pthread_mutex_unlock(&q->lock);
}

size_t
jobq_reap(struct jobq *q)
{
	int64_t now = jobq_now_ms();
	size_t i = 0, n = 0;
	struct job *j;

	pthread_mutex_lock(&q->lock);
	while (i < q->njobs) {
		j = q->jobs[i];
		if (job_state_final(j->state) && j->finished_ms > 0 &&
		    now - j->finished_ms >= (int64_t)q->conf.ttl_ms) {
			log_kv(LOG_L_INFO, "job", "job expired", "job_id", j->id,
			    NULL);
			jobq_forget(q, j);
			n++;
			continue;
		}
		i++;
	}
	pthread_mutex_unlock(&q->lock);
	return n;
}
