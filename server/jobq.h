/*
 * jobq: jobs, their bounded FIFO queue, and the worker threads that run
 * them.
 *
 * The shape is Redis's bio.c: HTTP threads never convert; they hand a job
 * (a plain struct) to jobq_submit(), which writes it to the spool, puts it
 * on a queue of fixed capacity and signals a condition variable.  A fixed
 * pool of workers pops jobs in order and calls convert_run().  The only
 * thing a worker shares with the HTTP side while it runs is the job's
 * progress counters and its cancel flag, both under the queue's lock; the
 * progress callback that convert_run calls between tensors is where a
 * cancel (DELETE, or a shutdown past its grace period) takes effect.
 *
 * One more thread, the timer, wakes clients that wait for a job with a
 * deadline (?wait=) and runs the reaper that expires old jobs.
 *
 * Every state change is written to the job's state.json before anyone can
 * observe it, so a restart (jobq_recover) serves finished jobs again,
 * queues the queued ones, and re-runs the ones that were running: the
 * conversion is deterministic and its output is written atomically.
 *
 * Ownership: jobq_get()/jobq_submit() hand out a reference to a job;
 * release it with jobq_put().  Job fields are read through jobq_job_json()
 * and the accessors below, which take the lock.
 */
#ifndef JOBQ_H
#define JOBQ_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "npz.h"
#include "spool.h"
#include "wb_err.h"

#define JOBQ_IDEM_MAX		256	/* bytes of an Idempotency-Key */
#define JOBQ_FILENAME_MAX	128	/* download name stem */
#define JOBQ_FORMAT_MAX		16

enum job_state {
	JOB_QUEUED = 0,
	JOB_RUNNING,
	JOB_SUCCEEDED,
	JOB_FAILED,
	JOB_CANCELLED
};

/* Why jobq_submit refused (besides a wb_err for I/O failures). */
enum jobq_refusal {
	JOBQ_ACCEPTED = 0,
	JOBQ_REPLAYED,		/* same Idempotency-Key, same payload */
	JOBQ_FULL,		/* queue at capacity: 429 */
	JOBQ_DRAINING,		/* shutting down: 503 */
	JOBQ_IDEM_CONFLICT,	/* same key, different payload: 422 */
	JOBQ_FAILED		/* err says why: 5xx */
};

struct jobq_conf {
	unsigned	 workers;
	size_t		 queue_size;
	uint64_t	 ttl_ms;
	uint64_t	 reap_interval_ms;
	struct npz_limits limits;
};

/* What the HTTP side knows about a new job. */
struct job_new {
	const char	*format;	/* override, or NULL (spec decides) */
	int		 keras3;	/* the effective format is keras3 */
	const char	*filename;	/* download name stem, or NULL */
	const char	*idem_key;	/* or NULL */
	const char	*fingerprint;	/* hex sha256 of the whole payload */
	uint64_t	 upload_bytes;
	const char	*upload_sha256;	/* hex */
};

/*
 * A client waiting for a job to end.  The caller owns the memory and must
 * keep it alive until wake() has been called (jobq always calls it exactly
 * once: at the job's end, at the deadline, or at jobq_stop).
 */
struct jobq_waiter {
	struct jobq_waiter *next;
	struct job	*job;
	int64_t		 deadline_ms;	/* CLOCK_MONOTONIC */
	void		(*wake)(void *arg);
	void		*arg;
};

struct job;
struct jobq;

int	jobq_new(const struct jobq_conf *conf, struct spool *sp,
	    struct jobq **out, struct wb_err *err);
/* Load the jobs in the spool (before jobq_start).  *n gets the count. */
int	jobq_recover(struct jobq *q, size_t *n, struct wb_err *err);
int	jobq_start(struct jobq *q, struct wb_err *err);
/* Stop taking new jobs (POST answers 503); running jobs go on. */
void	jobq_drain(struct jobq *q);
int	jobq_draining(struct jobq *q);
/*
 * Wait up to grace_ms for running jobs to finish, then cancel the rest
 * (they are persisted as queued and re-run at the next start), wake every
 * waiter and join the threads.
 */
void	jobq_stop(struct jobq *q, uint64_t grace_ms);
void	jobq_free(struct jobq *q);	/* after jobq_stop; q may be NULL */

/*
 * Create a job from an upload (moved into the spool) and a spec.  On
 * JOBQ_ACCEPTED or JOBQ_REPLAYED *out is a reference; on other answers the
 * upload file is left where it was.
 */
enum jobq_refusal jobq_submit(struct jobq *q, const struct job_new *jn,
	    const char *upload_path, const void *spec, size_t speclen,
	    struct job **out, struct wb_err *err);

/* A reference to the job with this id, or NULL. */
struct job *jobq_get(struct jobq *q, const char *id);
void	jobq_put(struct jobq *q, struct job *j);	/* j may be NULL */

/* The job resource (API view, with links).  Caller owns it. */
json_t	*jobq_job_json(struct jobq *q, struct job *j);
enum job_state jobq_job_state(struct jobq *q, struct job *j);
const char *jobq_job_id(const struct job *j);
const char *job_state_name(enum job_state s);
int	job_state_final(enum job_state s);

/*
 * What GET .../result needs, copied under the lock: the result file's
 * path, its sha256 (hex) and the download name.  0 if the job succeeded,
 * -1 otherwise.
 */
int	jobq_job_result(struct jobq *q, struct job *j, char *path,
	    size_t pathlen, char sha256[65], char *name, size_t namelen);

/*
 * Cancel or delete.  A queued job is cancelled and its files removed; a
 * running one gets its cancel flag (the worker stops at the next tensor
 * and removes the files); a finished one is forgotten and its files
 * removed (*gone = 1).
 */
void	jobq_cancel(struct jobq *q, struct job *j, int *gone);

/*
 * Register w to be woken when j ends or at w->deadline_ms.  If j has
 * already ended returns 1 and does nothing; otherwise calls suspend(arg)
 * under the lock (so a wake cannot come before it) and returns 0.
 */
int	jobq_wait(struct jobq *q, struct jobq_waiter *w,
	    void (*suspend)(void *arg));

/*
 * Recent jobs, newest first: up to limit job resources after the job with
 * id cursor (NULL: from the newest).  *next gets the id to continue from,
 * or "" at the end.
 */
json_t	*jobq_list(struct jobq *q, size_t limit, const char *cursor,
	    char next[SPOOL_ID_LEN + 1]);

void	jobq_gauges(struct jobq *q, uint64_t *depth, uint64_t *busy,
	    uint64_t *workers, uint64_t *known);

/* Remove finished jobs older than the TTL now (the timer also does this). */
size_t	jobq_reap(struct jobq *q);

/* "2024-05-01T12:00:00.123Z" for a CLOCK_REALTIME millisecond time. */
void	jobq_rfc3339(int64_t ms, char out[32]);

#endif
