/*
 * spool: the daemon's files on disk, and the only code that writes them.
 *
 *   <spool>/tmp/            uploads being received; emptied at start
 *   <spool>/jobs/<id>/      one directory per job:
 *       input.npz           the upload, renamed in from tmp/
 *       spec.json           the mapping spec as received
 *       state.json          the job record (jobq writes it on each change)
 *       result.h5 | result.weights.h5   written by convert_run (atomically)
 *       report.json         the per-layer report
 *
 * Every file we write goes through a temporary name, fsync, rename and an
 * fsync of the directory, so after a crash a file is either the old whole
 * version or the new whole version.  A job directory without a readable
 * state.json was never acknowledged to a client and is removed at
 * recovery, as is every file in it whose name we do not know (temporaries
 * of ours or of the converter).  Everything is created under umask 077.
 */
#ifndef SPOOL_H
#define SPOOL_H

#include <stddef.h>

#include <jansson.h>

#include "wb_err.h"

#define SPOOL_ID_LEN	32		/* hex digits of a 128-bit id */
#define SPOOL_PATH_MAX	4096
#define SPOOL_STATE_MAX	(1024 * 1024)	/* largest state.json we read */

#define SPOOL_INPUT	"input.npz"
#define SPOOL_SPEC	"spec.json"
#define SPOOL_STATE	"state.json"
#define SPOOL_REPORT	"report.json"
#define SPOOL_RESULT_H5	"result.h5"
#define SPOOL_RESULT_K3	"result.weights.h5"

struct spool;

/* Create (if needed) and open the spool at dir; empties tmp/. */
int	spool_open(const char *dir, struct spool **out, struct wb_err *err);
void	spool_close(struct spool *sp);	/* sp may be NULL */

/* A fresh 128-bit random id as lower-case hex (getrandom). */
int	spool_new_id(char out[SPOOL_ID_LEN + 1], struct wb_err *err);
/* 1 if s looks like an id we made (so it is safe in a path). */
int	spool_valid_id(const char *s);

/*
 * Open a new upload file in tmp/.  The caller owns *fd and the file; path
 * (SPOOL_PATH_MAX bytes) receives its name for spool_job_create or unlink.
 */
int	spool_upload_open(struct spool *sp, char *path, int *fd,
	    struct wb_err *err);

/*
 * An upload being stored: spool_upload_start() opens it like
 * spool_upload_open(), spool_upload_write() appends, spool_upload_end()
 * writes what is left, fsyncs, closes and frees it, spool_upload_drop()
 * just closes and frees it (the caller unlinks path in both failure
 * cases).  Data is gathered into 4 MiB blocks that a second thread writes
 * with O_DIRECT, so receiving, hashing and writing overlap and the bytes
 * do not go through fresh page-cache pages (on a virtual machine filling
 * those is slower than the disk); a few uploads at a time take this path,
 * the others, and file systems without O_DIRECT, write through the cache.
 * Failures: WB_E_IO naming the call and its errno.
 */
struct spool_upload;

int	spool_upload_start(struct spool *sp, char *path,
	    struct spool_upload **out, struct wb_err *err);
int	spool_upload_write(struct spool_upload *u, const void *buf, size_t len,
	    struct wb_err *err);
int	spool_upload_end(struct spool_upload *u, struct wb_err *err);
void	spool_upload_drop(struct spool_upload *u);

/* "<spool>/jobs/<id>/<name>" (name NULL: the directory). */
int	spool_job_path(const struct spool *sp, const char *id,
	    const char *name, char *buf, size_t len);

/*
 * Make the job directory, move the upload in as input.npz and write
 * spec.json.  On failure nothing is left (the upload is not removed).
 */
int	spool_job_create(struct spool *sp, const char *id,
	    const char *upload_path, const void *spec, size_t speclen,
	    struct wb_err *err);

/* Atomically replace <job dir>/<name> with buf. */
int	spool_job_write(struct spool *sp, const char *id, const char *name,
	    const void *buf, size_t len, struct wb_err *err);

/* Atomically replace dir/name (temp + fsync + rename + fsync dir). */
int	spool_write_atomic(const char *dir, const char *name, const void *buf,
	    size_t len, struct wb_err *err);

/*
 * Writes a file's whole content to fd (owned by the caller); 0 or an
 * errno value.
 */
typedef int (*spool_fill_fn)(int fd, void *arg);

/* spool_job_write, the content written by fill(fd, arg). */
int	spool_job_write_fill(struct spool *sp, const char *id,
	    const char *name, spool_fill_fn fill, void *arg,
	    struct wb_err *err);

/* Remove a job's directory and everything in it. */
int	spool_job_remove(struct spool *sp, const char *id);

/*
 * Walk the job directories: clean each of unknown files, then call fn
 * with the id and the parsed state.json (borrowed).  Directories with a
 * missing or unreadable state are removed.  A non-zero return from fn
 * removes that job too.
 */
typedef int (*spool_recover_fn)(void *arg, const char *id, json_t *state);
int	spool_recover(struct spool *sp, spool_recover_fn fn, void *arg,
	    struct wb_err *err);

#endif
