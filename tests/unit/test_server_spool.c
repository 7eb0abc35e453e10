/*
 * The spool: atomic writes leave no temporaries, ids are unique hex,
 * recovery keeps jobs with a state, drops those without one, and cleans
 * unknown files (a crash's temporaries) out of job directories.  A report
 * streamed into a job's directory (report_write_fd through
 * spool_job_write_fill) is jansson's text plus a newline, whatever its
 * size; a failing writer leaves the old file and no temporary.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report.h"
#include "spool.h"
#include "t.h"

static int
fill_report(int fd, void *arg)
{
	return report_write_fd(fd, arg, JSON_INDENT(2));
}

static int
fill_fails(int fd, void *arg)
{
	(void)fd;
	(void)arg;
	return ENOSPC;
}

/* The whole file at p, NUL-terminated; NULL if unreadable. */
static char *
slurp(const char *p)
{
	FILE *f = fopen(p, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) !=
	    NULL) {
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else
			buf[n] = '\0';
	}
	fclose(f);
	return buf;
}

struct seen {
	int	 n;
	char	 id[SPOOL_ID_LEN + 1];
};

static int
on_job(void *arg, const char *id, json_t *state)
{
	struct seen *s = arg;

	s->n++;
	snprintf(s->id, sizeof(s->id), "%s", id);
	return json_object_get(state, "drop") != NULL;
}

static int
exists(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0;
}

int
main(void)
{
	char root[] = "/tmp/wbspoolXXXXXX", up[SPOOL_PATH_MAX];
	char a[SPOOL_ID_LEN + 1], b[SPOOL_ID_LEN + 1], c[SPOOL_ID_LEN + 1];
	char p[SPOOL_PATH_MAX], q[SPOOL_PATH_MAX + 32];
	struct spool *sp = NULL;
	struct wb_err err;
	struct seen seen;
	struct stat st;
	int fd;

	wb_err_clear(&err);
	umask(077);
	CHECK(mkdtemp(root) != NULL);
	CHECK(spool_open(root, &sp, &err) == 0);
	CHECK(spool_new_id(a, &err) == 0 && spool_valid_id(a));
	CHECK(spool_new_id(b, &err) == 0 && strcmp(a, b) != 0);
	CHECK(spool_new_id(c, &err) == 0);
	CHECK(!spool_valid_id("../etc"));
	CHECK(!spool_valid_id("ABCDEF0123456789ABCDEF0123456789"));

	/* Job a: a full job with a state; also a leftover temporary. */
	CHECK(spool_upload_open(sp, up, &fd, &err) == 0);
	CHECK(write(fd, "PK", 2) == 2);
	close(fd);
	CHECK(spool_job_create(sp, a, up, "{}", 2, &err) == 0);
	CHECK(!exists(up));
	CHECK(spool_job_write(sp, a, SPOOL_STATE, "{\"id\":1}", 8, &err) == 0);
	spool_job_path(sp, a, SPOOL_STATE, p, sizeof(p));
	CHECK(stat(p, &st) == 0 && (st.st_mode & 077) == 0);
	spool_job_path(sp, a, ".result.h5.tmp123", q, sizeof(q));
	fd = open(q, O_CREAT | O_WRONLY, 0600);
	close(fd);
	/* Job b: no state (crashed before acknowledging). */
	CHECK(spool_upload_open(sp, up, &fd, &err) == 0);
	close(fd);
	CHECK(spool_job_create(sp, b, up, "{}", 2, &err) == 0);
	/* Job c: its state asks the callback to drop it. */
	CHECK(spool_upload_open(sp, up, &fd, &err) == 0);
	close(fd);
	CHECK(spool_job_create(sp, c, up, "{}", 2, &err) == 0);
	CHECK(spool_job_write(sp, c, SPOOL_STATE, "{\"drop\":1}", 10,
	    &err) == 0);
	/* A leftover upload in tmp/. */
	CHECK(spool_upload_open(sp, up, &fd, &err) == 0);
	close(fd);
	spool_close(sp);
	sp = NULL;

	CHECK(spool_open(root, &sp, &err) == 0);
	CHECK(!exists(up));
	memset(&seen, 0, sizeof(seen));
	CHECK(spool_recover(sp, on_job, &seen, &err) == 0);
	CHECK(seen.n == 2);
	spool_job_path(sp, a, SPOOL_INPUT, p, sizeof(p));
	CHECK(exists(p));
	CHECK(!exists(q));
	spool_job_path(sp, b, NULL, p, sizeof(p));
	CHECK(!exists(p));
	spool_job_path(sp, c, NULL, p, sizeof(p));
	CHECK(!exists(p));

	/*
	 * A staged upload: odd-sized pieces across more than two 4 MiB
	 * blocks and a ragged end read back exactly; a dropped one leaves a
	 * file for the caller to unlink.
	 */
	{
		struct spool_upload *u = NULL;
		size_t n = (9u << 20) + 12345, at = 0, piece = 65521, i;
		unsigned char *buf = malloc(n), *back = malloc(n);
		FILE *f;

		CHECK(buf != NULL && back != NULL);
		for (i = 0; i < n; i++)
			buf[i] = (unsigned char)(i * 2654435761u >> 13);
		CHECK(spool_upload_start(sp, up, &u, &err) == 0);
		while (at < n) {
			size_t k = n - at < piece ? n - at : piece;

			CHECK(spool_upload_write(u, buf + at, k, &err) == 0);
			at += k;
		}
		CHECK(spool_upload_end(u, &err) == 0);
		CHECK((f = fopen(up, "rb")) != NULL);
		CHECK(f != NULL && fread(back, 1, n, f) == n &&
		    fgetc(f) == EOF);
		if (f != NULL)
			fclose(f);
		CHECK(memcmp(buf, back, n) == 0);
		CHECK(unlink(up) == 0);
		CHECK(spool_upload_start(sp, up, &u, &err) == 0);
		CHECK(spool_upload_write(u, buf, (5u << 20) + 1, &err) == 0);
		spool_upload_drop(u);
		CHECK(exists(up));
		CHECK(unlink(up) == 0);
		free(buf);
		free(back);
	}

	/* Rewriting is atomic: the old whole file or the new one. */
	CHECK(spool_job_write(sp, a, SPOOL_STATE, "{\"id\":2}", 8, &err) == 0);
	spool_job_path(sp, a, ".state.json.tmp", p, sizeof(p));
	CHECK(!exists(p));

	/*
	 * Reports: small, and over 64 KiB (the writer's buffer) many times,
	 * with long strings crossing its edges; then a writer that fails.
	 */
	{
		size_t sizes[] = { 1, 3000, 70000 }, i, k;
		char name[32];

		for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			json_t *r = json_object(), *a_ = json_array();
			char *want, *got, *line;

			for (k = 0; k < sizes[i]; k++) {
				snprintf(name, sizeof(name), "layer.%zu", k);
				json_array_append_new(a_, json_pack("{s:s, s:[i,i]}",
				    "name", name, "shape", (int)k, 3));
			}
			json_object_set_new(r, "layers", a_);
			/* One string longer than the buffer, at an odd offset. */
			if ((line = malloc(150001)) != NULL) {
				memset(line, 'x', 150000);
				line[150000] = '\0';
				json_object_set_new(r, "long", json_string(line));
				free(line);
			}
			CHECK(spool_job_write_fill(sp, a, SPOOL_REPORT,
			    fill_report, r, &err) == 0);
			spool_job_path(sp, a, SPOOL_REPORT, p, sizeof(p));
			want = json_dumps(r, JSON_INDENT(2));
			got = slurp(p);
			CHECK(want != NULL && got != NULL &&
			    strlen(got) == strlen(want) + 1 &&
			    strncmp(got, want, strlen(want)) == 0 &&
			    got[strlen(want)] == '\n');
			free(want);
			free(got);
			json_decref(r);
		}
		wb_err_clear(&err);
		CHECK(spool_job_write_fill(sp, a, SPOOL_REPORT, fill_fails, NULL,
		    &err) != 0);
		CHECK(err.code == WB_E_IO && CONTAINS(err.msg, "No space left"));
		spool_job_path(sp, a, SPOOL_REPORT, p, sizeof(p));
		CHECK(exists(p));
		spool_job_path(sp, a, ".report.json.tmp", p, sizeof(p));
		CHECK(!exists(p));
		wb_err_clear(&err);
	}
	CHECK(spool_job_remove(sp, a) == 0);
	spool_job_path(sp, a, NULL, p, sizeof(p));
	CHECK(!exists(p));
	spool_close(sp);
	snprintf(p, sizeof(p), "rm -rf '%s'", root);
	CHECK(system(p) == 0);
	return t_done("test_server_spool");
}
