/*
 * spool: job directories, atomic writes and recovery.  See spool.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"

struct spool {
	char	 dir[SPOOL_PATH_MAX];
	char	 jobs[SPOOL_PATH_MAX];
	char	 tmp[SPOOL_PATH_MAX];
};

static const char *const spool_known[] = {
	SPOOL_INPUT, SPOOL_SPEC, SPOOL_STATE, SPOOL_REPORT, SPOOL_RESULT_H5,
	SPOOL_RESULT_K3
};

static int
spool_mkdir(const char *path, struct wb_err *err)
{
	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		return wb_err_set(err, WB_E_IO, "mkdir %s: %s", path,
		    strerror(errno));
	return 0;
}

static int
spool_fsync_dir(const char *dir)
{
	int fd, rc = 0;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if (fsync(fd) == -1)
		rc = -1;
	close(fd);
	return rc;
}

/* Remove every entry of dir (files only) whose name fails keep(). */
static void
spool_clean_dir(const char *dir, int (*keep)(const char *))
{
	DIR *d;
	struct dirent *de;
	char path[SPOOL_PATH_MAX];

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (keep != NULL && keep(de->d_name))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
		    (int)sizeof(path))
			continue;
		(void)unlink(path);
	}
	closedir(d);
}

int
spool_open(const char *dir, struct spool **out, struct wb_err *err)
{
	struct spool *sp = NULL;
	int rc = 0;

	*out = NULL;
	if ((sp = calloc(1, sizeof(*sp))) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "spool: out of memory");
		goto out;
	}
	if (strlen(dir) + 64 >= sizeof(sp->dir)) {
		rc = wb_err_set(err, WB_E_USAGE, "spool path too long");
		goto out;
	}
	snprintf(sp->dir, sizeof(sp->dir), "%s", dir);
	snprintf(sp->jobs, sizeof(sp->jobs), "%s/jobs", dir);
	snprintf(sp->tmp, sizeof(sp->tmp), "%s/tmp", dir);
	if ((rc = spool_mkdir(sp->dir, err)) != 0 ||
	    (rc = spool_mkdir(sp->jobs, err)) != 0 ||
	    (rc = spool_mkdir(sp->tmp, err)) != 0)
		goto out;
	if (access(sp->jobs, W_OK | X_OK) == -1) {
		rc = wb_err_set(err, WB_E_IO, "spool %s: %s", sp->jobs,
		    strerror(errno));
		goto out;
	}
	/* Uploads cut off by a crash or restart can never be finished. */
	spool_clean_dir(sp->tmp, NULL);
	*out = sp;
	sp = NULL;
out:
	free(sp);
	return rc;
}

void
spool_close(struct spool *sp)
{
	free(sp);
}

int
spool_new_id(char out[SPOOL_ID_LEN + 1], struct wb_err *err)
{
	unsigned char b[SPOOL_ID_LEN / 2];
	size_t got = 0, i;
	ssize_t n;

	while (got < sizeof(b)) {
		n = getrandom(b + got, sizeof(b) - got, 0);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return wb_err_set(err, WB_E_INTERNAL, "getrandom: %s",
			    strerror(errno));
		}
		got += (size_t)n;
	}
	for (i = 0; i < sizeof(b); i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	return 0;
}

int
spool_valid_id(const char *s)
{
	size_t i;

	for (i = 0; i < SPOOL_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[SPOOL_ID_LEN] == '\0';
}

int
spool_upload_open(struct spool *sp, char *path, int *fd, struct wb_err *err)
{
	if (snprintf(path, SPOOL_PATH_MAX, "%s/upload-XXXXXX", sp->tmp) >=
	    SPOOL_PATH_MAX)
		return wb_err_set(err, WB_E_IO, "spool path too long");
	if ((*fd = mkostemp(path, O_CLOEXEC)) == -1)
		return wb_err_set(err, WB_E_IO, "creating upload file in %s: %s",
		    sp->tmp, strerror(errno));
	return 0;
}

/* ---- uploads ------------------------------------------------------------ */

#define SPOOL_UP_BLOCK		((size_t)4 << 20)
#define SPOOL_UP_DIRECT_MAX	8	/* uploads staged at once (8 MiB each) */

static atomic_int spool_up_direct;

struct spool_upload {
	int		 fd;		/* buffered */
	int		 dfd;		/* O_DIRECT, or -1: write through fd */
	char		*blk[2];	/* staging blocks, page-aligned */
	size_t		 fill;		/* bytes in blk[cur] */
	int		 cur;
	uint64_t	 off;		/* file offset of blk[cur] */
	/* The writer thread and the block handed to it. */
	pthread_t	 tid;
	int		 started;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 busy;		/* a block is being written */
	int		 pend;		/* which */
	uint64_t	 pend_off;
	int		 quit;
	int		 werr;		/* errno of a failed write */
};

static int
spool_pwrite_all(int fd, const char *p, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return errno;
		if (n == 0)
			return EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static void *
spool_up_writer(void *arg)
{
	struct spool_upload *u = arg;

	pthread_mutex_lock(&u->mu);
	for (;;) {
		int e;

		while (!u->busy && !u->quit)
			pthread_cond_wait(&u->cv, &u->mu);
		if (!u->busy)
			break;
		pthread_mutex_unlock(&u->mu);
		e = spool_pwrite_all(u->dfd, u->blk[u->pend], SPOOL_UP_BLOCK,
		    u->pend_off);
		if (e == EINVAL)	/* O_DIRECT refused after all */
			e = spool_pwrite_all(u->fd, u->blk[u->pend],
			    SPOOL_UP_BLOCK, u->pend_off);
		pthread_mutex_lock(&u->mu);
		if (e != 0 && u->werr == 0)
			u->werr = e;
		u->busy = 0;
		pthread_cond_broadcast(&u->cv);
	}
	pthread_mutex_unlock(&u->mu);
	return NULL;
}

/* Wait until the writer is idle; its error, if any. */
static int
spool_up_wait(struct spool_upload *u)
{
	int e;

	pthread_mutex_lock(&u->mu);
	while (u->busy)
		pthread_cond_wait(&u->cv, &u->mu);
	e = u->werr;
	pthread_mutex_unlock(&u->mu);
	return e;
}

int
spool_upload_start(struct spool *sp, char *path, struct spool_upload **out,
    struct wb_err *err)
{
	struct spool_upload *u;
	int rc, i;

	*out = NULL;
	if ((u = calloc(1, sizeof(*u))) == NULL)
		return wb_err_set(err, WB_E_NOMEM, "out of memory");
	u->fd = u->dfd = -1;
	pthread_mutex_init(&u->mu, NULL);
	pthread_cond_init(&u->cv, NULL);
	if ((rc = spool_upload_open(sp, path, &u->fd, err)) != 0) {
		spool_upload_drop(u);
		return rc;
	}
	if (atomic_fetch_add(&spool_up_direct, 1) < SPOOL_UP_DIRECT_MAX &&
	    (u->dfd = open(path, O_WRONLY | O_CLOEXEC | O_DIRECT)) != -1) {
		for (i = 0; i < 2; i++)
			if (posix_memalign((void **)&u->blk[i], 4096,
			    SPOOL_UP_BLOCK) != 0)
				u->blk[i] = NULL;
		if (u->blk[0] == NULL || u->blk[1] == NULL) {
			close(u->dfd);
			u->dfd = -1;
		}
	}
	if (u->dfd == -1) {
		atomic_fetch_sub(&spool_up_direct, 1);
		free(u->blk[0]);
		free(u->blk[1]);
		u->blk[0] = u->blk[1] = NULL;
	}
	*out = u;
	return 0;
}

int
spool_upload_write(struct spool_upload *u, const void *buf, size_t len,
    struct wb_err *err)
{
	const char *p = buf;
	int e;

	if (u->dfd == -1) {
		if ((e = spool_pwrite_all(u->fd, p, len, u->off)) != 0)
			return wb_err_set(err, WB_E_IO, "writing the upload: "
			    "%s", strerror(e));
		u->off += len;
		return 0;
	}
	while (len > 0) {
		size_t n = SPOOL_UP_BLOCK - u->fill;

		if (n > len)
			n = len;
		memcpy(u->blk[u->cur] + u->fill, p, n);
		u->fill += n;
		p += n;
		len -= n;
		if (u->fill < SPOOL_UP_BLOCK)
			break;
		/* Hand the full block over; fill the other meanwhile. */
		if ((e = spool_up_wait(u)) != 0)
			return wb_err_set(err, WB_E_IO, "writing the upload: "
			    "%s", strerror(e));
		if (!u->started) {
			if (pthread_create(&u->tid, NULL, spool_up_writer,
			    u) != 0)
				return wb_err_set(err, WB_E_IO, "writing the "
				    "upload: cannot start a thread");
			u->started = 1;
		}
		pthread_mutex_lock(&u->mu);
		u->pend = u->cur;
		u->pend_off = u->off;
		u->busy = 1;
		pthread_cond_broadcast(&u->cv);
		pthread_mutex_unlock(&u->mu);
		u->cur ^= 1;
		u->off += SPOOL_UP_BLOCK;
		u->fill = 0;
	}
	return 0;
}

int
spool_upload_end(struct spool_upload *u, struct wb_err *err)
{
	int e = 0, rc = 0;

	if (u->dfd != -1) {
		/* The ragged end goes through the cache, at its offset. */
		if ((e = spool_up_wait(u)) == 0)
			e = spool_pwrite_all(u->fd, u->blk[u->cur], u->fill,
			    u->off);
		u->off += u->fill;
		u->fill = 0;
	}
	if (e != 0)
		rc = wb_err_set(err, WB_E_IO, "writing the upload: %s",
		    strerror(e));
	else if (fsync(u->fd) == -1)
		rc = wb_err_set(err, WB_E_IO, "fsync of the upload: %s",
		    strerror(errno));
	else if (close(u->fd) == -1)
		rc = wb_err_set(err, WB_E_IO, "closing the upload: %s",
		    strerror(errno));
	else
		u->fd = -1;
	spool_upload_drop(u);
	return rc;
}

void
spool_upload_drop(struct spool_upload *u)
{
	if (u == NULL)
		return;
	if (u->started) {
		pthread_mutex_lock(&u->mu);
		u->quit = 1;
		pthread_cond_broadcast(&u->cv);
		pthread_mutex_unlock(&u->mu);
		pthread_join(u->tid, NULL);
	}
	if (u->dfd != -1) {
		close(u->dfd);
		atomic_fetch_sub(&spool_up_direct, 1);
	}
	if (u->fd != -1)
		close(u->fd);
	free(u->blk[0]);
	free(u->blk[1]);
	pthread_mutex_destroy(&u->mu);
	pthread_cond_destroy(&u->cv);
	free(u);
}

int
spool_job_path(const struct spool *sp, const char *id, const char *name,
    char *buf, size_t len)
{
	size_t a = strlen(sp->jobs), b = strlen(id);
	size_t c = name != NULL ? strlen(name) : 0;

	/* Lengths checked first, then copied: no silent truncation. */
	if (a + 1 + b + (name != NULL ? 1 + c : 0) + 1 > len)
		return -1;
	memcpy(buf, sp->jobs, a);
	buf[a] = '/';
	memcpy(buf + a + 1, id, b);
	if (name != NULL) {
		buf[a + 1 + b] = '/';
		memcpy(buf + a + 2 + b, name, c);
		buf[a + 2 + b + c] = '\0';
	} else
		buf[a + 1 + b] = '\0';
	return 0;
}

struct spool_bytes {
	const char	*p;
	size_t		 len;
};

static int
spool_fill_bytes(int fd, void *arg)
{
	const struct spool_bytes *b = arg;

	return spool_pwrite_all(fd, b->p, b->len, 0);	/* a new file */
}

static int
spool_write_atomic_fill(const char *dir, const char *name, spool_fill_fn fill,
    void *arg, struct wb_err *err)
{
	char tmp[SPOOL_PATH_MAX], dst[SPOOL_PATH_MAX];
	int fd = -1, rc = 0, e;

	if (snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >=
	    (int)sizeof(tmp) || snprintf(dst, sizeof(dst), "%s/%s", dir,
	    name) >= (int)sizeof(dst)) {
		rc = wb_err_set(err, WB_E_IO, "path too long: %s/%s", dir, name);
		goto out;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) ==
	    -1) {
		rc = wb_err_set(err, WB_E_IO, "open %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	if ((e = fill(fd, arg)) != 0) {
		rc = wb_err_set(err, e == ENOMEM ? WB_E_NOMEM : WB_E_IO,
		    "write %s: %s", tmp, strerror(e));
		goto out;
	}
	if (fsync(fd) == -1) {
		rc = wb_err_set(err, WB_E_IO, "fsync %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	if (close(fd) == -1) {
		fd = -1;
		rc = wb_err_set(err, WB_E_IO, "close %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, dst) == -1) {
		rc = wb_err_set(err, WB_E_IO, "rename %s: %s", dst,
		    strerror(errno));
		goto out;
	}
	if (spool_fsync_dir(dir) == -1)
		rc = wb_err_set(err, WB_E_IO, "fsync %s: %s", dir,
		    strerror(errno));
out:
	if (fd != -1)
		close(fd);
	if (rc != 0)
		(void)unlink(tmp);
	return rc;
}

int
spool_write_atomic(const char *dir, const char *name, const void *buf,
    size_t len, struct wb_err *err)
{
	struct spool_bytes b = { buf, len };

	return spool_write_atomic_fill(dir, name, spool_fill_bytes, &b, err);
}

int
spool_job_write(struct spool *sp, const char *id, const char *name,
    const void *buf, size_t len, struct wb_err *err)
{
	char dir[SPOOL_PATH_MAX];

	if (spool_job_path(sp, id, NULL, dir, sizeof(dir)) != 0)
		return wb_err_set(err, WB_E_IO, "job path too long");
	return spool_write_atomic(dir, name, buf, len, err);
}

int
spool_job_write_fill(struct spool *sp, const char *id, const char *name,
    spool_fill_fn fill, void *arg, struct wb_err *err)
{
	char dir[SPOOL_PATH_MAX];

	if (spool_job_path(sp, id, NULL, dir, sizeof(dir)) != 0)
		return wb_err_set(err, WB_E_IO, "job path too long");
	return spool_write_atomic_fill(dir, name, fill, arg, err);
}

int
spool_job_create(struct spool *sp, const char *id, const char *upload_path,
    const void *spec, size_t speclen, struct wb_err *err)
{
	char dir[SPOOL_PATH_MAX], input[SPOOL_PATH_MAX];
	int rc = 0, made = 0, moved = 0;

	if (spool_job_path(sp, id, NULL, dir, sizeof(dir)) != 0 ||
	    spool_job_path(sp, id, SPOOL_INPUT, input, sizeof(input)) != 0) {
		rc = wb_err_set(err, WB_E_IO, "job path too long");
		goto out;
	}
	if (mkdir(dir, 0700) == -1) {
		rc = wb_err_set(err, WB_E_IO, "mkdir %s: %s", dir,
		    strerror(errno));
		goto out;
	}
	made = 1;
	if (rename(upload_path, input) == -1) {
		rc = wb_err_set(err, WB_E_IO, "rename %s: %s", input,
		    strerror(errno));
		goto out;
	}
	moved = 1;
	if ((rc = spool_write_atomic(dir, SPOOL_SPEC, spec, speclen, err)) != 0)
		goto out;
	if (spool_fsync_dir(sp->jobs) == -1)
		rc = wb_err_set(err, WB_E_IO, "fsync %s: %s", sp->jobs,
		    strerror(errno));
out:
	if (rc != 0 && moved)
		(void)rename(input, upload_path);
	if (rc != 0 && made) {
		spool_clean_dir(dir, NULL);
		(void)rmdir(dir);
	}
	return rc;
}

int
spool_job_remove(struct spool *sp, const char *id)
{
	char dir[SPOOL_PATH_MAX];

	if (!spool_valid_id(id) ||
	    spool_job_path(sp, id, NULL, dir, sizeof(dir)) != 0)
		return -1;
	spool_clean_dir(dir, NULL);
	if (rmdir(dir) == -1 && errno != ENOENT)
		return -1;
	(void)spool_fsync_dir(sp->jobs);
	return 0;
}

static int
spool_is_known(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(spool_known) / sizeof(spool_known[0]); i++)
		if (strcmp(name, spool_known[i]) == 0)
			return 1;
	return 0;
}

int
spool_recover(struct spool *sp, spool_recover_fn fn, void *arg,
    struct wb_err *err)
{
	DIR *d = NULL;
	struct dirent *de;
	char dir[SPOOL_PATH_MAX], state[SPOOL_PATH_MAX];
	json_t *st;
	json_error_t jerr;
	int rc = 0;

	if ((d = opendir(sp->jobs)) == NULL) {
		rc = wb_err_set(err, WB_E_IO, "opendir %s: %s", sp->jobs,
		    strerror(errno));
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (!spool_valid_id(de->d_name) ||
		    spool_job_path(sp, de->d_name, NULL, dir, sizeof(dir)) != 0)
			continue;
		spool_clean_dir(dir, spool_is_known);
		(void)spool_job_path(sp, de->d_name, SPOOL_STATE, state,
		    sizeof(state));
		st = json_load_file(state, JSON_REJECT_DUPLICATES, &jerr);
		if (st == NULL || !json_is_object(st) ||
		    fn(arg, de->d_name, st) != 0)
			(void)spool_job_remove(sp, de->d_name);
		json_decref(st);
	}
out:
	if (d != NULL)
		closedir(d);
	return rc;
}
