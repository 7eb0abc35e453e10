/*
 * test_npz: every fixture under tests/data/npz.  Good archives must index
 * and decode to exactly the float32 bits numpy gives (the .expect side
 * files written by make_fixtures.py); bad ones must fail with the right
 * code and a message naming the member or tensor.  Also: the streaming
 * reader (a FIFO), npz_index_find, the JSON listing, the reader's
 * protocol and caps, and a cursor reading a member in pieces.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "npz.h"
#include "t.h"

#define DATA	"tests/data/npz/"
#define MAXT	64

struct want {
	char		 key[128];
	char		 dtype[16];
	int		 ndim;
	uint64_t	 shape[NPY_MAX_DIMS];
	uint64_t	 n;
	uint32_t	*bits;
};

static int
load_expect(const char *path, struct want *w, int max)
{
	FILE *f = fopen(path, "r");
	int n = 0, k;
	uint64_t i;

	CHECK(f != NULL);
	if (f == NULL)
		return 0;
	while (n < max && fscanf(f, "%127s %15s %d", w[n].key, w[n].dtype,
	    &w[n].ndim) == 3) {
		for (k = 0; k < w[n].ndim; k++)
			if (fscanf(f, "%" SCNu64, &w[n].shape[k]) != 1)
				goto bad;
		if (fscanf(f, "%" SCNu64, &w[n].n) != 1)
			goto bad;
		w[n].bits = calloc(w[n].n ? w[n].n : 1, sizeof(uint32_t));
		for (i = 0; i < w[n].n; i++)
			if (fscanf(f, "%" SCNx32, &w[n].bits[i]) != 1)
				goto bad;
		n++;
	}
	fclose(f);
	return n;
bad:
	CHECK(!"malformed .expect file");
	fclose(f);
	return n;
}

static void
free_expect(struct want *w, int n)
{
	while (n-- > 0)
		free(w[n].bits);
}

/* Index, then read and decode every tensor; compare with numpy's bits. */
static void
check_good2(const char *npz, const char *expect, const char *path_override,
    const char *path2)
{
	struct want w[MAXT];
	struct npz_limits lim;
	struct npz_index *ix = NULL;
	struct npz_reader *r = NULL;
	struct wb_err err;
	const char *path = path_override ? path_override : npz;
	size_t idx, i;
	int nw, k, rc, bad = 0, seen = 0;

	nw = load_expect(expect, w, MAXT);
	CHECK(nw > 0);
	npz_limits_default(&lim);
	wb_err_clear(&err);
	rc = npz_index_read(path, &lim, &ix, &err);
	CHECK(rc == 0);
	if (rc != 0) {
		fprintf(stderr, "  %s: %s\n", npz, err.msg);
		goto out;
	}
	CHECK(ix->n == (size_t)nw);
	for (k = 0; k < nw && (size_t)k < ix->n; k++) {
		const struct npz_entry *e = &ix->e[k];

		CHECK_STR(e->key, w[k].key);
		CHECK_STR(npy_dtype_name(&e->hdr), w[k].dtype);
		CHECK(e->hdr.ndim == w[k].ndim);
		CHECK(memcmp(e->hdr.shape, w[k].shape,
		    (size_t)w[k].ndim * sizeof(uint64_t)) == 0);
		CHECK(e->hdr.nelem == w[k].n);
		CHECK(npz_index_find(ix, w[k].key) == k);
	}
	CHECK(npz_index_find(ix, "no.such.key") == -1);

	rc = npz_reader_open(path2 ? path2 : path, ix, &lim, &r, &err);
	CHECK(rc == 0);
	if (rc != 0) {
		fprintf(stderr, "  %s: %s\n", npz, err.msg);
		goto out;
	}
	while ((rc = npz_reader_next(r, &idx, &err)) == 1) {
		const struct npz_entry *e = &ix->e[idx];
		void *raw = malloc(e->hdr.nbytes ? e->hdr.nbytes : 1);
		float *f = malloc((e->hdr.nelem ? e->hdr.nelem : 1) * 4);

		CHECK(idx == (size_t)seen);
		seen++;
		CHECK(raw != NULL && f != NULL);
		if (npz_reader_read(r, raw, e->hdr.nbytes, &err) != 0) {
			CHECK(!"npz_reader_read failed");
			fprintf(stderr, "  %s: %s\n", npz, err.msg);
		} else {
			npy_to_f32(&e->hdr, raw, f);
			for (i = 0; i < e->hdr.nelem && idx < (size_t)nw; i++) {
				uint32_t b;

				memcpy(&b, &f[i], 4);
				if (b != w[idx].bits[i]) {
					if (bad++ < 5)
						fprintf(stderr, "  %s %s[%zu]: "
						    "%08" PRIx32 " != %08"
						    PRIx32 "\n", npz, e->key,
						    i, b, w[idx].bits[i]);
				}
			}
		}
		free(raw);
		free(f);
	}
	CHECK(rc == 0);
	if (rc != 0)
		fprintf(stderr, "  %s: %s\n", npz, err.msg);
	CHECK(seen == nw);
	CHECK(bad == 0);
out:
	npz_reader_close(r);
	npz_index_free(ix);
	free_expect(w, nw);
}

static void
check_good(const char *npz, const char *expect, const char *path_override)
{
	check_good2(npz, expect, path_override, NULL);
}

static void
check_good_fifo(const char *pass1, const char *pass2)
{
	check_good2("fifo:good_compressed", DATA "good_compressed.expect",
	    pass1, pass2);
}

static void
test_good(void)
{
	static const char *names[] = { "savez", "compressed", "bigendian",
	    "fortran", "versions", "unicode", "zip64", "pipe" };
	char npz[256], exp[256];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(npz, sizeof(npz), DATA "good_%s.npz", names[i]);
		snprintf(exp, sizeof(exp), DATA "good_%s.expect", names[i]);
		check_good(npz, exp, NULL);
	}
}

/*
 * The streaming reader: the archive comes through a FIFO, written twice
 * by a child (once per pass).
 */
static void
test_fifo(void)
{
	char dir[] = "/tmp/wb-npz-XXXXXX", fifo[2][64];
	static const char *src = DATA "good_compressed.npz";
	pid_t pid;
	int st, i;

	CHECK(mkdtemp(dir) != NULL);
	for (i = 0; i < 2; i++) {
		snprintf(fifo[i], sizeof(fifo[i]), "%s/pass%d.npz", dir, i);
		CHECK(mkfifo(fifo[i], 0600) == 0);
	}
	pid = fork();
	CHECK(pid != -1);
	if (pid == 0) {
		char buf[65536];
		int in, out;
		ssize_t n;

		alarm(20);
		for (i = 0; i < 2; i++) {
			if ((in = open(src, O_RDONLY)) == -1 ||
			    (out = open(fifo[i], O_WRONLY)) == -1)
				_exit(1);
			while ((n = read(in, buf, sizeof(buf))) > 0)
				if (write(out, buf, (size_t)n) != n)
					break;
			close(in);
			close(out);
		}
		_exit(0);
	}
	/* One FIFO per pass: the reader opens the second one. */
	check_good_fifo(fifo[0], fifo[1]);
	CHECK(waitpid(pid, &st, 0) == pid);
	for (i = 0; i < 2; i++)
		unlink(fifo[i]);
	rmdir(dir);
}

struct bad {
	const char	*file;
	int		 code;
	const char	*needle;	/* the message must contain it */
	int		 at_read;	/* fails in pass 2, not in the index */
	uint64_t	 max_tensor, max_ratio, max_total, max_members;
};

static const struct bad bads[] = {
	{ "bad_truncated.npz", WB_E_ARCHIVE, "truncated", 0, 0, 0, 0, 0 },
	{ "bad_notzip.npz", WB_E_ARCHIVE, "not a zip archive", 0, 0, 0, 0, 0 },
	{ "bad_empty.npz", WB_E_ARCHIVE, "empty", 0, 0, 0, 0, 0 },
	{ "bad_nonnpy.npz", WB_E_ARCHIVE, "'readme.txt'", 0, 0, 0, 0, 0 },
	{ "bad_pickle.npz", WB_E_DTYPE, "tensor 'meta': object arrays", 0,
	    0, 0, 0, 0 },
	{ "bad_complex.npz", WB_E_DTYPE, "tensor 'z': complex", 0, 0, 0, 0, 0 },
	{ "bad_header.npz", WB_E_NPY, "tensor 'evil'", 0, 0, 0, 0, 0 },
	{ "bad_overflow.npz", WB_E_LIMIT, "tensor 'huge'", 0, 0, 0, 0, 0 },
	{ "bad_short.npz", WB_E_NPY,
	    "tensor 'short': header says 128 bytes of data, member holds 100",
	    0, 0, 0, 0, 0 },
	{ "bad_long.npz", WB_E_NPY,
	    "tensor 'long': header says 128 bytes of data, member holds 132",
	    0, 0, 0, 0, 0 },
	{ "bad_dup.npz", WB_E_ARCHIVE, "duplicate member 'w.npy'", 0,
	    0, 0, 0, 0 },
	{ "bad_traversal.npz", WB_E_ARCHIVE, "'../evil.npy'", 0, 0, 0, 0, 0 },
	{ "bad_encrypted.npz", WB_E_ARCHIVE, "'w.npy' is encrypted", 0,
	    0, 0, 0, 0 },
	{ "bad_bzip2.npz", WB_E_ARCHIVE, "'w.npy' uses compression method "
	    "bzip2", 0, 0, 0, 0, 0 },
	{ "bad_bomb.npz", WB_E_LIMIT, "'zeros.npy' expands", 0, 0, 100, 0, 0 },
	{ "bad_bomb.npz", WB_E_LIMIT, "'zeros.npy' expands from 4165 to "
	    "4194432 bytes, more than 1000 times", 0, 0, 0, 0, 0 },
	{ "bad_bomb.npz", WB_E_LIMIT, "'zeros.npy' is 4194432 bytes", 0,
	    1 << 20, 10000, 0, 0 },
	{ "bad_bomb.npz", WB_E_LIMIT, "tensor 'zeros'", 0, 0, 10000, 1 << 20,
	    0 },
	{ "bad_bomb_lying.npz", WB_E_NPY, "tensor 'zeros': member holds more",
	    1, 0, 0, 0, 0 },
	{ "good_savez.npz", WB_E_LIMIT, "18 members", 0, 0, 0, 0, 5 },
	{ "good_savez.npz", WB_E_LIMIT, "tensor 'fc.weight'", 0, 47, 0, 0, 0 },
	{ "does_not_exist.npz", WB_E_NOTFOUND, "no such file", 0, 0, 0, 0, 0 },
	{ "", WB_E_ARCHIVE, "directory", 0, 0, 0, 0, 0 },
};

static void
test_bad(void)
{
	struct npz_limits lim;
	struct npz_index *ix;
	struct npz_reader *r;
	struct wb_err err;
	char path[256];
	void *buf;
	size_t i, idx;
	int rc, nr;

	for (i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad *b = &bads[i];

		snprintf(path, sizeof(path), DATA "%s", b->file);
		npz_limits_default(&lim);
		if (b->max_tensor)
			lim.max_tensor_bytes = b->max_tensor;
		if (b->max_ratio)
			lim.max_ratio = b->max_ratio;
		if (b->max_total)
			lim.max_total_bytes = b->max_total;
		if (b->max_members)
			lim.max_members = b->max_members;
		wb_err_clear(&err);
		ix = NULL;
		r = NULL;
		rc = npz_index_read(path, &lim, &ix, &err);
		if (b->at_read) {
			CHECK(rc == 0);
			rc = rc ? rc : npz_reader_open(path, ix, &lim, &r,
			    &err);
			while (rc == 0 &&
			    (nr = npz_reader_next(r, &idx, &err)) == 1) {
				buf = malloc(ix->e[idx].hdr.nbytes + 1);
				rc = npz_reader_read(r, buf,
				    ix->e[idx].hdr.nbytes, &err);
				free(buf);
			}
			npz_reader_close(r);
		} else
			CHECK(ix == NULL);
		CHECK(rc == b->code);
		CHECK(err.code == (enum wb_code)b->code);
		CHECK(CONTAINS(err.msg, b->needle));
		if (rc != b->code || !CONTAINS(err.msg, b->needle))
			fprintf(stderr, "  %s: got %s: %s\n", b->file,
			    wb_err_name(err.code), err.msg);
		npz_index_free(ix);
	}
}

static void
test_json(void)
{
	struct npz_index *ix = NULL;
	struct wb_err err;
	json_t *j, *t;

	wb_err_clear(&err);
	CHECK(npz_index_read(DATA "good_compressed.npz", NULL, &ix, &err) ==
	    0);
	if (ix == NULL)
		return;
	j = npz_index_json(ix);
	CHECK(j != NULL);
	CHECK(json_integer_value(json_object_get(j, "count")) == 18);
	CHECK((uint64_t)json_integer_value(json_object_get(j,
	    "total_bytes")) == ix->total_bytes);
	t = json_array_get(json_object_get(j, "tensors"), 0);
	CHECK_STR(json_string_value(json_object_get(t, "key")), "fc.weight");
	CHECK_STR(json_string_value(json_object_get(t, "dtype")), "float32");
	CHECK_STR(json_string_value(json_object_get(t, "descr")), "<f4");
	CHECK_STR(json_string_value(json_object_get(t, "method")),
	    "deflated");
	CHECK(json_integer_value(json_object_get(t, "bytes")) == 48);
	CHECK(json_array_size(json_object_get(t, "shape")) == 2);
	CHECK(json_integer_value(json_array_get(json_object_get(t, "shape"),
	    1)) == 4);
	t = json_array_get(json_object_get(j, "tensors"), 14);
	CHECK_STR(json_string_value(json_object_get(t, "key")),
	    "bn.num_batches_tracked");
	CHECK(json_array_size(json_object_get(t, "shape")) == 0);
	json_decref(j);
	npz_index_free(ix);

	CHECK(npz_index_read(DATA "good_savez.npz", NULL, &ix, &err) == 0);
	if (ix == NULL)
		return;
	j = npz_index_json(ix);
	t = json_array_get(json_object_get(j, "tensors"), 0);
	CHECK_STR(json_string_value(json_object_get(t, "method")), "stored");
	CHECK(ix->file_size == 4738);
	json_decref(j);
	npz_index_free(ix);
}

/* The reader's protocol: skipping members, misuse, pass-2 caps, and an
 * index that belongs to another archive. */
static void
test_reader(void)
{
	struct npz_limits lim;
	struct npz_index *ix = NULL;
	struct npz_reader *r = NULL;
	struct wb_err err;
	float w[12];
	size_t idx;
	int n = 0, rc;

	wb_err_clear(&err);
	CHECK(npz_index_read(DATA "good_savez.npz", NULL, &ix, &err) == 0);
	if (ix == NULL)
		return;
	/* Skip every member but the second; misuse is refused. */
	CHECK(npz_reader_open(DATA "good_savez.npz", ix, NULL, &r, &err) == 0);
	CHECK(npz_reader_read(r, w, 48, &err) == WB_E_USAGE);
	wb_err_clear(&err);
	while ((rc = npz_reader_next(r, &idx, &err)) == 1) {
		if (idx == 0) {
			CHECK(npz_reader_read(r, w, 47, &err) == WB_E_USAGE);
			wb_err_clear(&err);
		}
		if (idx == 1) {
			CHECK(npz_reader_read(r, w, 16, &err) == 0);
			CHECK(w[0] == 0.5f);
			CHECK(npz_reader_read(r, w, 16, &err) == WB_E_USAGE);
			wb_err_clear(&err);
		}
		n++;
	}
	CHECK(rc == 0 && n == 18);
	CHECK(npz_reader_next(r, &idx, &err) == 0);	/* stays at the end */
	npz_reader_close(r);

	/* The caps hold in pass 2 too. */
	npz_limits_default(&lim);
	lim.max_total_bytes = 100;
	r = NULL;
	CHECK(npz_reader_open(DATA "good_savez.npz", ix, &lim, &r, &err) == 0);
	while ((rc = npz_reader_next(r, &idx, &err)) == 1)
		;
	CHECK(rc == -1 && err.code == WB_E_LIMIT);
	if (err.code != WB_E_LIMIT)
		fprintf(stderr, "  pass-2 cap: %d %s\n", rc, err.msg);
	npz_reader_close(r);

	/* An index of another archive. */
	wb_err_clear(&err);
	r = NULL;
	CHECK(npz_reader_open(DATA "good_bigendian.npz", ix, NULL, &r,
	    &err) == 0);
	CHECK(npz_reader_next(r, &idx, &err) == -1);
	CHECK(err.code == WB_E_ARCHIVE && CONTAINS(err.msg, "be_f4"));
	npz_reader_close(r);
	npz_index_free(ix);
}

/*
 * A member read in pieces through a cursor equals the member read whole;
 * asking past its end or ending early is refused; damage inside the data
 * shows at the end, on the CRC-32.
 */
static void
test_pieces(void)
{
	static const char *files[] = { DATA "good_savez.npz",
	    DATA "good_compressed.npz" };
	char tmp[] = "/tmp/npz-pieces-XXXXXX";
	struct npz_index *ix = NULL;
	struct npz_cursor *c = NULL;
	struct wb_err err;
	uint8_t whole[64], part[64], buf[4096];
	size_t f, n;
	ssize_t got;
	int fd, i;

	wb_err_clear(&err);
	for (f = 0; f < 2; f++) {
		CHECK(npz_index_read(files[f], NULL, &ix, &err) == 0);
		if (ix == NULL)
			return;
		n = (size_t)ix->e[0].hdr.nbytes;
		CHECK(n == 48);
		CHECK(npz_cursor_open(files[f], ix, NULL, &c, &err) == 0);
		CHECK(npz_cursor_read(c, 0, whole, n, &err) == 0);
		CHECK(npz_cursor_begin(c, 0, &err) == 0);
		CHECK(npz_cursor_part(c, part, 5, &err) == 0);
		CHECK(npz_cursor_part(c, part + 5, 20, &err) == 0);
		CHECK(npz_cursor_part(c, part + 25, 24, &err) == WB_E_USAGE);
		wb_err_clear(&err);
		CHECK(npz_cursor_part(c, part + 25, 23, &err) == 0);
		CHECK(npz_cursor_end(c, &err) == 0);
		CHECK(memcmp(whole, part, n) == 0);
		/* Ending before all the data was read. */
		CHECK(npz_cursor_begin(c, 1, &err) == 0);
		CHECK(npz_cursor_part(c, part, 4, &err) == 0);
		CHECK(npz_cursor_end(c, &err) == WB_E_USAGE);
		wb_err_clear(&err);
		CHECK(npz_cursor_part(c, part, 4, &err) == WB_E_USAGE);
		wb_err_clear(&err);
		npz_cursor_close(c);
		c = NULL;
		npz_index_free(ix);
		ix = NULL;
	}

	/* A stored member with a byte changed: its CRC-32 tells, at the end. */
	CHECK((fd = mkstemp(tmp)) >= 0);
	{
		int in = open(files[0], O_RDONLY);

		while ((got = read(in, buf, sizeof(buf))) > 0)
			CHECK(write(fd, buf, (size_t)got) == got);
		close(in);
	}
	CHECK(npz_index_read(tmp, NULL, &ix, &err) == 0);
	if (ix == NULL)
		goto out;
	/* The last data byte of member 0 (its header starts "\x93NUMPY"). */
	for (i = 0; pread(fd, buf, 6, i) == 6; i++)
		if (memcmp(buf, "\x93NUMPY", 6) == 0)
			break;
	buf[0] = 0x5a;
	CHECK(pwrite(fd, buf, 1, (off_t)(i + ix->e[0].hdr.data_offset +
	    ix->e[0].hdr.nbytes - 1)) == 1);
	CHECK(npz_cursor_open(tmp, ix, NULL, &c, &err) == 0);
	CHECK(npz_cursor_begin(c, 0, &err) == 0);
	CHECK(npz_cursor_part(c, part, 48, &err) == 0);
	CHECK(npz_cursor_end(c, &err) == WB_E_ARCHIVE);
	CHECK(CONTAINS(err.msg, "fc.weight") && CONTAINS(err.msg, "CRC-32"));
	npz_cursor_close(c);
	npz_index_free(ix);
out:
	close(fd);
	unlink(tmp);
}

int
main(void)
{
	/* The fixtures are addressed from the repository root. */
	alarm(60);	/* a hang (a FIFO nobody writes) becomes a failure */
	if (access(DATA, R_OK) != 0) {
		fprintf(stderr, "test_npz: run from the repository root\n");
		return 1;
	}
	test_good();
	test_fifo();
	test_bad();
	test_json();
	test_reader();
	test_pieces();
	return t_done("test_npz");
}
