/*
 * test_kh5: write both Keras layouts, then read them back with the plain
 * HDF5 C API (not through kh5) and check structure, attribute encodings,
 * Keras's chunking rule, shapes and values; then kh5_verify, including
 * failures after a value is changed behind its back, slabbed hashing of
 * tensors larger than KH5_VERIFY_BLOCK, refused names, blocked writes,
 * byte-identical output for identical input, and HDF5's own system-call
 * failures reported by their cause.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <hdf5.h>

#include "kh5.h"
#include "sha256.h"
#include "t.h"

static char tdir[] = "/tmp/kh5-test-XXXXXX";

/* Deterministic test values; distinct per weight via seed. */
static float *
mkdata(size_t n, unsigned seed)
{
	float *p = malloc((n ? n : 1) * sizeof(float));
	size_t i;

	if (p == NULL)
		abort();
	for (i = 0; i < n; i++)
		p[i] = (float)((i * 7 + seed * 131) % 1000) / 8.0f - 60.0f;
	return p;
}

static size_t
nelem(const struct kh5_weight *w)
{
	size_t n = 1;
	int d;

	for (d = 0; d < w->ndim; d++)
		n *= w->shape[d];
	return n;
}

static char *
tpath(const char *name)
{
	static char buf[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tdir, name);
	return buf[i];
}

/* Open-object count over every file; 0 means kh5 leaked nothing. */
static ssize_t
open_ids(void)
{
	return H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL);
}

/*
 * Read a string-list attribute written as fixed NULLPAD strings, or its
 * Keras chunks name0, name1, ...  Returns the items as one '\n'-joined
 * string (caller frees), *nchunks = 0 if unchunked, and *width = the
 * fixed string size.
 */
static char *
read_names(hid_t obj, const char *name, int *nchunks, size_t *sizes,
    size_t *width)
{
	char aname[64], *out = NULL, *buf;
	size_t outlen = 0, i, m, w, len;
	hid_t a, t, s;
	int c, chunked;

	*nchunks = 0;
	chunked = H5Aexists(obj, name) == 0;
	for (c = 0;; c++) {
		if (chunked)
			snprintf(aname, sizeof(aname), "%s%d", name, c);
		else
			snprintf(aname, sizeof(aname), "%s", name);
		if (H5Aexists(obj, aname) <= 0)
			break;
		a = H5Aopen(obj, aname, H5P_DEFAULT);
		t = H5Aget_type(a);
		s = H5Aget_space(a);
		m = (size_t)H5Sget_simple_extent_npoints(s);
		CHECK(H5Sget_simple_extent_ndims(s) == 1);
		if (m == 0) {
			/* What h5py writes for np.asarray([]). */
			CHECK(H5Tequal(t, H5T_IEEE_F64LE) > 0);
			w = 0;
			buf = NULL;
		} else {
			CHECK(H5Tget_class(t) == H5T_STRING);
			CHECK(H5Tis_variable_str(t) == 0);
			CHECK(H5Tget_strpad(t) == H5T_STR_NULLPAD);
			w = H5Tget_size(t);
			CHECK(m * w <= KH5_ATTR_LIMIT);
			buf = calloc(m, w);
			CHECK(H5Aread(a, t, buf) >= 0);
		}
		*width = w;
		if (sizes != NULL)
			sizes[c] = m;
		for (i = 0; i < m; i++) {
			len = strnlen(buf + i * w, w);
			out = realloc(out, outlen + len + 2);
			memcpy(out + outlen, buf + i * w, len);
			outlen += len;
			out[outlen++] = '\n';
		}
		free(buf);
		H5Sclose(s);
		H5Tclose(t);
		H5Aclose(a);
		if (!chunked)
			break;
		(*nchunks)++;
	}
	if (out == NULL)
		out = calloc(1, 1);
	else
		out[outlen] = '\0';
	return out;
}

static char *
join_names(const char *const *v, size_t n)
{
	size_t i, len = 1;
	char *s;

	for (i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	s = calloc(1, len);
	for (i = 0; i < n; i++) {
		strcat(s, v[i]);
		strcat(s, "\n");
	}
	return s;
}

/* Keras's loop: smallest k with every array_split chunk within the limit. */
static size_t
keras_chunks(size_t n, size_t longest)
{
	size_t k = 1;

	if (n * longest <= KH5_ATTR_LIMIT)
		return 0;
	while ((n / k + (n % k != 0)) * longest > KH5_ATTR_LIMIT)
		k++;
	return k;
}

static char *
read_scalar_vlen(hid_t obj, const char *name)
{
	hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = H5Aget_type(a);
	hid_t s = H5Aget_space(a);
	char *v = NULL, *r;

	CHECK(H5Sget_simple_extent_type(s) == H5S_SCALAR);
	CHECK(H5Tis_variable_str(t) > 0);
	CHECK(H5Tget_cset(t) == H5T_CSET_ASCII);
	CHECK(H5Aread(a, t, &v) >= 0);
	r = strdup(v ? v : "");
	H5free_memory(v);
	H5Sclose(s);
	H5Tclose(t);
	H5Aclose(a);
	return r;
}

/* Read dataset `full` and compare with want (n floats, shape). */
static void
check_dataset(hid_t file, const char *full, const struct kh5_weight *w,
    const float *want)
{
	hid_t d, t, s, p;
	hsize_t dims[KH5_MAX_DIMS];
	size_t n = nelem(w);
	float *got;
	int k;

	d = H5Dopen2(file, full, H5P_DEFAULT);
	CHECK(d >= 0);
	if (d < 0) {
		fprintf(stderr, "  missing dataset %s\n", full);
		return;
	}
	t = H5Dget_type(d);
	s = H5Dget_space(d);
	p = H5Dget_create_plist(d);
	CHECK(H5Tequal(t, H5T_IEEE_F32LE) > 0);
	CHECK(H5Pget_layout(p) == H5D_CONTIGUOUS);
	CHECK(H5Pget_nfilters(p) == 0);
	if (w->ndim == 0)
		CHECK(H5Sget_simple_extent_type(s) == H5S_SCALAR);
	else
		CHECK(H5Sget_simple_extent_type(s) == H5S_SIMPLE);
	CHECK(H5Sget_simple_extent_ndims(s) == w->ndim);
	H5Sget_simple_extent_dims(s, dims, NULL);
	for (k = 0; k < w->ndim; k++)
		CHECK(dims[k] == w->shape[k]);
	got = calloc(n ? n : 1, sizeof(float));
	if (n > 0) {
		CHECK(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL,
		    H5P_DEFAULT, got) >= 0);
		CHECK(memcmp(got, want, n * sizeof(float)) == 0);
	}
	free(got);
	H5Pclose(p);
	H5Sclose(s);
	H5Tclose(t);
	H5Dclose(d);
}

/* Change one float of dataset `full` at flat index i. */
static void
corrupt(const char *path, const char *full, hsize_t i)
{
	hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
	hid_t d = H5Dopen2(f, full, H5P_DEFAULT);
	hid_t s = H5Dget_space(d), m;
	hsize_t one = 1, dims[KH5_MAX_DIMS], coord[KH5_MAX_DIMS], rest = i;
	float v;
	int nd = H5Sget_simple_extent_ndims(s), k;

	H5Sget_simple_extent_dims(s, dims, NULL);
	for (k = nd - 1; k >= 0; k--) {
		coord[k] = rest % dims[k];
		rest /= dims[k];
	}
	m = H5Screate_simple(1, &one, NULL);
	if (nd > 0)
		CHECK(H5Sselect_elements(s, H5S_SELECT_SET, 1, coord) >= 0);
	CHECK(H5Dread(d, H5T_NATIVE_FLOAT, m, nd > 0 ? s : H5S_ALL,
	    H5P_DEFAULT, &v) >= 0);
	v += 1.0f;
	CHECK(H5Dwrite(d, H5T_NATIVE_FLOAT, m, nd > 0 ? s : H5S_ALL,
	    H5P_DEFAULT, &v) >= 0);
	H5Sclose(m);
	H5Sclose(s);
	H5Dclose(d);
	CHECK(H5Fclose(f) >= 0);
}

static int
file_equal(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	int ca, cb, same = fa != NULL && fb != NULL;

	while (same) {
		ca = getc(fa);
		cb = getc(fb);
		if (ca != cb)
			same = 0;
		if (ca == EOF)
			break;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

/*
 * Write every weight of layers with kh5_write; fill sha[] and data[].
 */
static int
write_all(const char *path, enum kh5_format fmt, struct kh5_layer *l,
    size_t nl, uint8_t (*sha)[32], float **data, struct wb_err *err)
{
	struct kh5_writer *w = NULL;
	struct kh5_meta meta = { "2.15.0", "tensorflow" };
	size_t i, j, k = 0;
	int rc;

	if ((rc = kh5_create(path, fmt, l, nl, &meta, &w, err)) != 0)
		return rc;
	for (i = 0; i < nl; i++)
		for (j = 0; j < l[i].nweights; j++, k++) {
			size_t n = nelem(&l[i].w[j]);

			data[k] = mkdata(n, (unsigned)k);
			CHECK(sha256_buf(data[k], n * sizeof(float),
			    sha[k]) == 0);
			if ((rc = kh5_write(w, i, j, data[k], err)) != 0) {
				kh5_close(w, NULL);
				return rc;
			}
		}
	return kh5_close(w, err);
}

/* Legacy layout, including both name lists large enough to be chunked. */
#define BIG_W		2001
#define MANY_L		1701
#define LEG_L		(5 + MANY_L)

static void
test_legacy(void)
{
	static const uint64_t s_dk[] = { 3, 4 }, s_db[] = { 4 };
	static const uint64_t s_ck[] = { 3, 3, 2, 5 }, s_cb[] = { 5 };
	static const uint64_t s_zero[] = { 0, 3 }, s_one[] = { 1 };
	struct kh5_weight dense[] = {
		{ "dense/kernel:0", 2, s_dk, 0 }, { "dense/bias:0", 1, s_db, 0 } };
	struct kh5_weight conv[] = {
		{ "conv1/kernel:0", 4, s_ck, 0 }, { "conv1/bias:0", 1, s_cb, 0 } };
	struct kh5_weight bn[] = {
		{ "bn/moving_mean:0", 2, s_zero, 0 }, { "bn/count:0", 0, NULL, 0 } };
	struct kh5_weight *big;
	struct kh5_layer l[LEG_L];
	char (*bnames)[128], (*lnames)[48];
	const char **want;
	uint8_t (*sha)[32];
	float **data;
	struct wb_err err = { 0 };
	size_t i, nw, sizes[16], width, k, exp_k;
	int nch;
	char *got, *exp, *v;
	hid_t f, g;
	const char *path = tpath("legacy.h5");

	big = calloc(BIG_W, sizeof(*big));
	bnames = calloc(BIG_W, sizeof(*bnames));
	lnames = calloc(MANY_L, sizeof(*lnames));
	for (i = 0; i < BIG_W; i++) {
		/* 100-byte names: 2001 x 100 > 64512, Keras splits in 4. */
		snprintf(bnames[i], sizeof(bnames[i]), "big/w_%04zu_%0*d", i,
		    100 - 11, 0);
		big[i].path = bnames[i];
		big[i].ndim = 1;
		big[i].shape = s_one;
	}
	l[0] = (struct kh5_layer){ "dense", 2, dense };
	l[1] = (struct kh5_layer){ "conv1", 2, conv };
	l[2] = (struct kh5_layer){ "flatten", 0, NULL };
	l[3] = (struct kh5_layer){ "bn", 2, bn };
	l[4] = (struct kh5_layer){ "big", BIG_W, big };
	for (i = 0; i < MANY_L; i++) {
		/* 1706 names of 40 bytes > 64512: two chunks, 853 + 853. */
		snprintf(lnames[i], sizeof(lnames[i]), "dropout_%04zu_%0*d",
		    i, 40 - 13, 0);
		l[5 + i] = (struct kh5_layer){ lnames[i], 0, NULL };
	}
	nw = 2 + 2 + 2 + BIG_W;
	sha = calloc(nw, sizeof(*sha));
	data = calloc(nw, sizeof(*data));
	want = calloc(LEG_L > BIG_W ? LEG_L : BIG_W, sizeof(*want));

	CHECK(write_all(path, KH5_LEGACY, l, LEG_L, sha, data, &err) == 0);
	if (err.code != 0)
		fprintf(stderr, "  %s\n", err.msg);
	CHECK(open_ids() == 0);

	/* Read back with plain HDF5. */
	f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	CHECK(f >= 0);
	v = read_scalar_vlen(f, "backend");
	CHECK_STR(v, "tensorflow");
	free(v);
	v = read_scalar_vlen(f, "keras_version");
	CHECK_STR(v, "2.15.0");
	free(v);

	for (i = 0; i < LEG_L; i++)
		want[i] = l[i].name;
	got = read_names(f, "layer_names", &nch, sizes, &width);
	exp = join_names(want, LEG_L);
	CHECK_STR(got, exp);
	exp_k = keras_chunks(LEG_L, 40);
	CHECK(exp_k == 2);
	CHECK((size_t)nch == exp_k);
	CHECK(width == 40);
	CHECK(sizes[0] == 853 && sizes[1] == 853);
	CHECK(H5Aexists(f, "layer_names") == 0);
	free(got);
	free(exp);

	/* Small lists stay one attribute, fixed-length S<longest>. */
	g = H5Gopen2(f, "dense", H5P_DEFAULT);
	want[0] = dense[0].path;
	want[1] = dense[1].path;
	got = read_names(g, "weight_names", &nch, NULL, &width);
	exp = join_names(want, 2);
	CHECK_STR(got, exp);
	CHECK(nch == 0);
	CHECK(width == strlen("dense/kernel:0"));
	free(got);
	free(exp);
	H5Gclose(g);

	/* A weightless layer: group present, empty weight_names. */
	g = H5Gopen2(f, "flatten", H5P_DEFAULT);
	CHECK(g >= 0);
	got = read_names(g, "weight_names", &nch, NULL, &width);
	CHECK_STR(got, "");
	CHECK(nch == 0);
	free(got);
	H5Gclose(g);
	g = H5Gopen2(f, lnames[MANY_L - 1], H5P_DEFAULT);
	CHECK(g >= 0);
	H5Gclose(g);

	/* 2001 names of 100 bytes: 4 chunks, array_split sizes. */
	g = H5Gopen2(f, "big", H5P_DEFAULT);
	for (i = 0; i < BIG_W; i++)
		want[i] = big[i].path;
	got = read_names(g, "weight_names", &nch, sizes, &width);
	exp = join_names(want, BIG_W);
	CHECK_STR(got, exp);
	exp_k = keras_chunks(BIG_W, 100);
	CHECK(exp_k == 4);
	CHECK((size_t)nch == exp_k);
	CHECK(sizes[0] == 501 && sizes[1] == 500 && sizes[2] == 500 &&
	    sizes[3] == 500);
	free(got);
	free(exp);
	H5Gclose(g);

	/* Datasets at <layer>/<weight path>, intermediate groups made. */
	for (i = 0, k = 0; i < 5; i++) {
		size_t j;
		char full[256];

		for (j = 0; j < l[i].nweights; j++, k++) {
			snprintf(full, sizeof(full), "%s/%s", l[i].name,
			    l[i].w[j].path);
			if (i < 4 || j % 500 == 0)
				check_dataset(f, full, &l[i].w[j], data[k]);
		}
	}
	CHECK(H5Fclose(f) >= 0);
	CHECK(open_ids() == 0);

	/* Verify passes, then fails once a value changes. */
	wb_err_clear(&err);
	CHECK(kh5_verify(path, KH5_LEGACY, l, LEG_L,
	    (const uint8_t (*)[32])sha, &err) == 0);
	if (err.code != 0)
		fprintf(stderr, "  %s\n", err.msg);
	corrupt(path, "conv1/conv1/kernel:0", 17);
	wb_err_clear(&err);
	CHECK(kh5_verify(path, KH5_LEGACY, l, LEG_L,
	    (const uint8_t (*)[32])sha, &err) == WB_E_OUTPUT);
	CHECK(CONTAINS(err.msg, "conv1/conv1/kernel:0"));
	CHECK(CONTAINS(err.msg, "SHA-256"));

	/* A scalar is hashed too. */
	for (i = 0; i < nw; i++)
		free(data[i]);
	wb_err_clear(&err);
	CHECK(write_all(path, KH5_LEGACY, l, 4, sha, data, &err) == 0);
	corrupt(path, "bn/bn/count:0", 0);
	wb_err_clear(&err);
	CHECK(kh5_verify(path, KH5_LEGACY, l, 4, (const uint8_t (*)[32])sha,
	    &err) == WB_E_OUTPUT);
	CHECK(CONTAINS(err.msg, "bn/bn/count:0"));

	/* Name lists must read back as written. */
	wb_err_clear(&err);
	l[2].name = "flatten_1";
	CHECK(kh5_verify(path, KH5_LEGACY, l, 4, (const uint8_t (*)[32])sha,
	    &err) == WB_E_OUTPUT);
	CHECK(CONTAINS(err.msg, "layer_names"));
	l[2].name = "flatten";
	CHECK(open_ids() == 0);

	for (i = 0; i < 6; i++)
		free(data[i]);
	free(want);
	free(data);
	free(sha);
	free(lnames);
	free(bnames);
	free(big);
}

static void
test_keras3(void)
{
	static const uint64_t s_dk[] = { 3, 4 }, s_db[] = { 4 };
	static const uint64_t s_lk[] = { 2, 8 }, s_zero[] = { 0, 3 };
	struct kh5_weight dense[] = { { "vars/0", 2, s_dk, 0 },
	    { "vars/1", 1, s_db, 0 } };
	struct kh5_weight lstm[] = { { "cell/vars/0", 2, s_lk, 0 },
	    { "cell/vars/1", 1, s_db, 0 } };
	struct kh5_weight inner[] = { { "vars/0", 0, NULL, 0 } };
	struct kh5_weight inner1[] = { { "vars/0", 2, s_zero, 0 } };
	struct kh5_layer l[] = {
		{ "layers/dense", 2, dense },
		{ "layers/dropout", 0, NULL },
		{ "layers/lstm", 2, lstm },
		{ "layers/sequential/layers/dense", 1, inner },
		{ "layers/sequential/layers/dense_1", 1, inner1 },
		/* Its group already exists by now; that must be fine. */
		{ "layers/sequential", 0, NULL },
	};
	uint8_t sha[6][32];
	float *data[6];
	struct wb_err err = { 0 };
	const char *path = tpath("k3.weights.h5");
	H5O_info_t oi;
	H5G_info_t gi;
	hid_t f, g;
	size_t i, j, k;
	char full[256];

	CHECK(write_all(path, KH5_KERAS3, l, 6, sha, data, &err) == 0);
	if (err.code != 0)
		fprintf(stderr, "  %s\n", err.msg);
	f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	CHECK(f >= 0);
	CHECK(H5Oget_info(f, &oi) >= 0 && oi.num_attrs == 0);
	g = H5Gopen2(f, "vars", H5P_DEFAULT);
	CHECK(g >= 0 && H5Gget_info(g, &gi) >= 0 && gi.nlinks == 0);
	H5Gclose(g);
	g = H5Gopen2(f, "layers/dropout", H5P_DEFAULT);
	CHECK(g >= 0);
	H5Gclose(g);
	/* Only what Keras 3 wrote: /layers and /vars at the root. */
	CHECK(H5Gget_info(f, &gi) >= 0 && gi.nlinks == 2);
	for (i = 0, k = 0; i < 5; i++)
		for (j = 0; j < l[i].nweights; j++, k++) {
			snprintf(full, sizeof(full), "%s/%s", l[i].name,
			    l[i].w[j].path);
			check_dataset(f, full, &l[i].w[j], data[k]);
		}
	CHECK(H5Fclose(f) >= 0);
	CHECK(open_ids() == 0);

	wb_err_clear(&err);
	CHECK(kh5_verify(path, KH5_KERAS3, l, 6, (const uint8_t (*)[32])sha,
	    &err) == 0);
	if (err.code != 0)
		fprintf(stderr, "  %s\n", err.msg);
	corrupt(path, "layers/lstm/cell/vars/0", 15);
	wb_err_clear(&err);
	CHECK(kh5_verify(path, KH5_KERAS3, l, 5, (const uint8_t (*)[32])sha,
	    &err) == WB_E_OUTPUT);
	CHECK(CONTAINS(err.msg, "layers/lstm/cell/vars/0"));

	/* A shape that differs is named too. */
	wb_err_clear(&err);
	dense[0].shape = s_lk;
	CHECK(kh5_verify(path, KH5_KERAS3, l, 1, (const uint8_t (*)[32])sha,
	    &err) == WB_E_OUTPUT);
	CHECK(CONTAINS(err.msg, "layers/dense/vars/0"));
	CHECK(CONTAINS(err.msg, "axis 0"));
	dense[0].shape = s_dk;
	/* And a dataset that is not there. */
	wb_err_clear(&err);
	dense[1].path = "vars/2";
	CHECK(kh5_verify(path, KH5_KERAS3, l, 1, (const uint8_t (*)[32])sha,
	    &err) == WB_E_OUTPUT);
	CHECK(CONTAINS(err.msg, "layers/dense/vars/2"));
	CHECK(CONTAINS(err.msg, "missing"));
	dense[1].path = "vars/1";
	CHECK(open_ids() == 0);
	for (k = 0; k < 6; k++)
		free(data[k]);
}

static void
expect_refused(const char *lname, const char *wpath, enum wb_code code,
    const char *lname2)
{
	static const uint64_t s[] = { 2 };
	struct kh5_weight w[] = { { wpath, 1, s, 0 } };
	struct kh5_layer l[] = { { lname, 1, w }, { lname2, 0, NULL } };
	struct kh5_writer *kw = (struct kh5_writer *)1;
	struct wb_err err = { 0 };
	const char *path = tpath("refused.weights.h5");

	unlink(path);
	CHECK(kh5_create(path, KH5_KERAS3, l, lname2 ? 2 : 1, NULL, &kw,
	    &err) == (int)code);
	if (err.code != code)
		fprintf(stderr, "  '%s' + '%s': got %d %s\n", lname, wpath,
		    err.code, err.msg);
	CHECK(kw == NULL);
	CHECK(access(path, F_OK) != 0);	/* refused before any HDF5 call */
}

static void
test_refused(void)
{
	static char longname[KH5_MAX_NAME + 2];
	struct wb_err err = { 0 };
	struct kh5_writer *w = NULL;

	expect_refused("/layers/dense", "vars/0", WB_E_USAGE, NULL);
	expect_refused("layers//dense", "vars/0", WB_E_USAGE, NULL);
	expect_refused("layers/dense/", "vars/0", WB_E_USAGE, NULL);
	expect_refused("layers/./dense", "vars/0", WB_E_USAGE, NULL);
	expect_refused("layers/../dense", "vars/0", WB_E_USAGE, NULL);
	expect_refused("..", "vars/0", WB_E_USAGE, NULL);
	expect_refused("", "vars/0", WB_E_USAGE, NULL);
	expect_refused("layers/dense", "/vars/0", WB_E_USAGE, NULL);
	expect_refused("layers/dense", "vars/../0", WB_E_USAGE, NULL);
	expect_refused("layers/dense", "vars//0", WB_E_USAGE, NULL);
	expect_refused("layers/dense", "", WB_E_USAGE, NULL);
	/* Duplicates and a dataset where a group is needed. */
	expect_refused("layers/dense", "vars/0", WB_E_USAGE, "layers/dense");
	expect_refused("layers/dense", "vars/0", WB_E_USAGE,
	    "layers/dense/vars/0/x");
	expect_refused("layers/dense", "vars", WB_E_USAGE,
	    "layers/dense/vars/0");
	memset(longname, 'a', KH5_MAX_NAME + 1);
	expect_refused(longname, "vars/0", WB_E_LIMIT, NULL);

	/* Shapes whose byte size overflows, even beside a zero dimension. */
	{
		static const uint64_t huge[] = { 0, 1ull << 40, 1ull << 40 };
		static const uint64_t bad[] = { 1ull << 62, 2 };
		struct kh5_weight hw[] = { { "vars/0", 3, huge, 0 } };
		struct kh5_weight bw[] = { { "vars/0", 2, bad, 0 } };
		struct kh5_weight rw[] = { { "vars/0", KH5_MAX_DIMS + 1, bad, 0 } };
		struct kh5_layer hl[] = { { "layers/a", 1, hw } };
		struct kh5_layer bl[] = { { "layers/a", 1, bw } };
		struct kh5_layer rl[] = { { "layers/a", 1, rw } };

		CHECK(kh5_create(tpath("refused.weights.h5"), KH5_KERAS3, hl,
		    1, NULL, &w, &err) == WB_E_LIMIT);
		wb_err_clear(&err);
		CHECK(kh5_create(tpath("refused.weights.h5"), KH5_KERAS3, bl,
		    1, NULL, &w, &err) == WB_E_LIMIT);
		CHECK(CONTAINS(err.msg, "shape too large"));
		wb_err_clear(&err);
		CHECK(kh5_create(tpath("refused.weights.h5"), KH5_KERAS3, rl,
		    1, NULL, &w, &err) == WB_E_USAGE);
		wb_err_clear(&err);
	}

	/* Fine names still work: "..." and ".x" are ordinary names. */
	{
		static const uint64_t s[] = { 1 };
		struct kh5_weight ok[] = { { "...", 1, s, 0 }, { ".x/0", 1, s, 0 } };
		struct kh5_layer l[] = { { "layers/a.b", 2, ok } };
		float v = 1.0f;

		CHECK(kh5_create(tpath("ok.weights.h5"), KH5_KERAS3, l, 1,
		    NULL, &w, &err) == 0);
		CHECK(kh5_write(w, 0, 0, &v, &err) == 0);
		CHECK(kh5_write(w, 0, 1, &v, &err) == 0);
		/* Out-of-range indices are our bug, not the client's. */
		CHECK(kh5_write(w, 0, 2, &v, &err) == WB_E_INTERNAL);
		CHECK(kh5_close(w, NULL) == 0);
	}

	/* An unwritable path names itself. */
	wb_err_clear(&err);
	{
		struct kh5_layer l[] = { { "x", 0, NULL } };

		CHECK(kh5_create("/nonexistent-dir/w.h5", KH5_LEGACY, l, 1,
		    NULL, &w, &err) == WB_E_OUTPUT);
		CHECK(CONTAINS(err.msg, "/nonexistent-dir/w.h5"));
		CHECK(CONTAINS(err.msg, "HDF5"));
	}
	CHECK(open_ids() == 0);
}

/* kh5_write_rows in out-of-order blocks, and kh5_close's completeness check. */
static void
test_rows(void)
{
	static const uint64_t s[] = { 5, 3, 2 }, s0[] = { 4, 0 };
	struct kh5_weight wt[] = { { "kernel", 3, s, 0 }, { "empty", 2, s0, 0 },
	    { "scalar", 0, NULL, 0 } };
	struct kh5_layer l[] = { { "lstm", 3, wt } };
	struct kh5_writer *w = NULL;
	struct wb_err err = { 0 };
	const char *path = tpath("rows.h5");
	float *data = mkdata(30, 3), one = 2.5f;
	uint8_t sha[3][32];

	CHECK(kh5_create(path, KH5_LEGACY, l, 1, NULL, &w, &err) == 0);
	CHECK(kh5_write_rows(w, 0, 0, 4, 1, data + 24, &err) == 0);
	CHECK(kh5_write_rows(w, 0, 0, 0, 2, data, &err) == 0);
	CHECK(kh5_write_rows(w, 0, 0, 2, 0, NULL, &err) == 0);
	CHECK(kh5_write_rows(w, 0, 0, 2, 2, data + 12, &err) == 0);
	CHECK(kh5_write_rows(w, 0, 0, 4, 2, data, &err) == WB_E_INTERNAL);
	wb_err_clear(&err);
	CHECK(kh5_write_rows(w, 0, 0, UINT64_MAX, 2, data, &err) ==
	    WB_E_INTERNAL);
	wb_err_clear(&err);
	CHECK(kh5_write_rows(w, 0, 2, 0, 1, &one, &err) == WB_E_INTERNAL);
	CHECK(CONTAINS(err.msg, "scalar"));
	wb_err_clear(&err);
	CHECK(kh5_write_rows(w, 0, 1, 0, 4, NULL, &err) == 0);
	CHECK(kh5_write(w, 0, 2, &one, &err) == 0);
	CHECK(kh5_close(w, &err) == 0);
	if (err.code != 0)
		fprintf(stderr, "  %s\n", err.msg);
	CHECK(sha256_buf(data, 30 * sizeof(float), sha[0]) == 0);
	CHECK(sha256_buf(NULL, 0, sha[1]) == 0);
	CHECK(sha256_buf(&one, sizeof(one), sha[2]) == 0);
	CHECK(kh5_verify(path, KH5_LEGACY, l, 1, (const uint8_t (*)[32])sha,
	    &err) == 0);
	if (err.code != 0)
		fprintf(stderr, "  %s\n", err.msg);

	/* A weight left partly unwritten makes kh5_close fail, naming it. */
	w = NULL;
	wb_err_clear(&err);
	CHECK(kh5_create(path, KH5_LEGACY, l, 1, NULL, &w, &err) == 0);
	CHECK(kh5_write_rows(w, 0, 0, 0, 4, data, &err) == 0);
	CHECK(kh5_write_rows(w, 0, 1, 0, 4, NULL, &err) == 0);
	CHECK(kh5_write(w, 0, 2, &one, &err) == 0);
	CHECK(kh5_close(w, &err) == WB_E_INTERNAL);
	CHECK(CONTAINS(err.msg, "'kernel'"));
	CHECK(CONTAINS(err.msg, "4 of 5"));
	CHECK(open_ids() == 0);
	free(data);
}

/*
 * Tensors bigger than one verify slab: (2, 4194305) splits along its last
 * axis, (2, 5, 1000003) along its middle one.  A change to the very last
 * element must still be caught.
 */
static void
test_big(void)
{
	static const uint64_t s1[] = { 2, (KH5_VERIFY_BLOCK / 4) + 1 };
	static const uint64_t s2[] = { 2, 5, 1000003 };
	struct kh5_weight wt[] = { { "a", 2, s1, 0 }, { "b", 3, s2, 0 } };
	struct kh5_layer l[] = { { "big", 2, wt } };
	uint8_t sha[2][32];
	float *data[2];
	struct wb_err err = { 0 };
	const char *path = tpath("big.h5");

	CHECK(write_all(path, KH5_LEGACY, l, 1, sha, data, &err) == 0);
	CHECK(kh5_verify(path, KH5_LEGACY, l, 1, (const uint8_t (*)[32])sha,
	    &err) == 0);
	if (err.code != 0)
		fprintf(stderr, "  %s\n", err.msg);
	corrupt(path, "big/b", 2 * 5 * 1000003 - 1);
	CHECK(kh5_verify(path, KH5_LEGACY, l, 1, (const uint8_t (*)[32])sha,
	    &err) == WB_E_OUTPUT);
	CHECK(CONTAINS(err.msg, "big/b"));
	wb_err_clear(&err);
	corrupt(path, "big/a", 2 * s1[1] - 1);
	CHECK(kh5_verify(path, KH5_LEGACY, l, 1, (const uint8_t (*)[32])sha,
	    &err) == WB_E_OUTPUT);
	CHECK(CONTAINS(err.msg, "big/a"));
	free(data[0]);
	free(data[1]);
	unlink(path);
}

/*
 * kh5_close_verify: page-aligned buffers of 1 MiB and more take the
 * O_DIRECT path and are read back as they are written (whole, and in row
 * blocks); small ones are checked after closing.  The values must read
 * back through HDF5 itself, and a later change is still caught.
 */
static float *
mkdata_aligned(size_t n, unsigned seed)
{
	float *src = mkdata(n, seed);
	void *p = NULL;

	if (posix_memalign(&p, 4096, n * sizeof(float)) != 0)
		abort();
	memcpy(p, src, n * sizeof(float));
	free(src);
	return p;
}

static void
test_close_verify(void)
{
	static const uint64_t sb[] = { 512, 1024 }, sr[] = { 1024, 1024 };
	static const uint64_t ss[] = { 3, 4 };
	struct kh5_weight wt[] = { { "big", 2, sb, 0 }, { "rows", 2, sr, 0 },
	    { "small", 2, ss, 0 } };
	struct kh5_layer l[] = { { "cv", 3, wt } };
	struct kh5_writer *w = NULL;
	struct wb_err err = { 0 };
	const char *path = tpath("cv.h5");
	float *d[3], *back;
	uint64_t crc[3], r;
	hid_t f, ds;
	int k;

	d[0] = mkdata_aligned(512 * 1024, 1);
	d[1] = mkdata_aligned(1024 * 1024, 2);
	d[2] = mkdata_aligned(12, 3);
	crc[0] = kh5_crc64(0, d[0], 512 * 1024 * sizeof(float));
	crc[1] = kh5_crc64(0, d[1], 1024 * 1024 * sizeof(float));
	crc[2] = kh5_crc64(0, d[2], 12 * sizeof(float));
	CHECK(kh5_create(path, KH5_LEGACY, l, 1, NULL, &w, &err) == 0);
	CHECK(kh5_write(w, 0, 0, d[0], &err) == 0);
	for (r = 0; r < 1024; r += 256)
		CHECK(kh5_write_rows(w, 0, 1, r, 256, d[1] + r * 1024,
		    &err) == 0);
	CHECK(kh5_write(w, 0, 2, d[2], &err) == 0);
	CHECK(kh5_close_verify(w, path, l, 1, crc, 2, &err) == 0);
	if (err.code != 0)
		fprintf(stderr, "  %s\n", err.msg);

	/* HDF5 reads what we wrote. */
	back = malloc(1024 * 1024 * sizeof(float));
	f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	for (k = 0; k < 2; k++) {
		ds = H5Dopen2(f, k == 0 ? "cv/big" : "cv/rows", H5P_DEFAULT);
		CHECK(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL,
		    H5P_DEFAULT, back) >= 0);
		CHECK(memcmp(back, d[k], (k == 0 ? 512 : 1024) * 1024 *
		    sizeof(float)) == 0);
		H5Dclose(ds);
	}
	H5Fclose(f);
	free(back);

	/* The plain check reads the big ones back raw: a change shows. */
	CHECK(kh5_verify_crc64(path, KH5_LEGACY, l, 1, crc, 2, &err) == 0);
	corrupt(path, "cv/rows", 1024 * 1024 - 1);
	CHECK(kh5_verify_crc64(path, KH5_LEGACY, l, 1, crc, 2, &err) ==
	    WB_E_OUTPUT);
	CHECK(CONTAINS(err.msg, "cv/rows"));
	wb_err_clear(&err);

	/* A small dataset is checked after closing: a wrong digest shows. */
	CHECK(kh5_create(path, KH5_LEGACY, l, 1, NULL, &w, &err) == 0);
	CHECK(kh5_write(w, 0, 0, d[0], &err) == 0);
	CHECK(kh5_write(w, 0, 1, d[1], &err) == 0);
	CHECK(kh5_write(w, 0, 2, d[2], &err) == 0);
	crc[2] ^= 1;
	CHECK(kh5_close_verify(w, path, l, 1, crc, 1, &err) == WB_E_OUTPUT);
	CHECK(CONTAINS(err.msg, "cv/small"));
	wb_err_clear(&err);
	for (k = 0; k < 3; k++)
		free(d[k]);
	unlink(path);
}

/* The same input twice gives the same bytes (no timestamps). */
static void
test_deterministic(void)
{
	static const uint64_t s[] = { 3, 4 };
	struct kh5_weight wt[] = { { "d/kernel:0", 2, s, 0 } };
	struct kh5_layer l[] = { { "d", 1, wt }, { "drop", 0, NULL } };
	struct kh5_weight wk[] = { { "cell/vars/0", 2, s, 0 } };
	struct kh5_layer lk[] = { { "layers/lstm", 1, wk } };
	uint8_t sha[1][32];
	float *data[1];
	struct wb_err err = { 0 };

	CHECK(write_all(tpath("d1.h5"), KH5_LEGACY, l, 2, sha, data, &err)
	    == 0);
	free(data[0]);
	CHECK(write_all(tpath("d3.weights.h5"), KH5_KERAS3, lk, 1, sha, data,
	    &err) == 0);
	free(data[0]);
	sleep(1);	/* HDF5 timestamps have one-second resolution */
	CHECK(write_all(tpath("d2.h5"), KH5_LEGACY, l, 2, sha, data, &err)
	    == 0);
	free(data[0]);
	CHECK(write_all(tpath("d4.weights.h5"), KH5_KERAS3, lk, 1, sha, data,
	    &err) == 0);
	free(data[0]);
	CHECK(file_equal(tpath("d1.h5"), tpath("d2.h5")));
	CHECK(file_equal(tpath("d3.weights.h5"), tpath("d4.weights.h5")));
}

/*
 * The chunking threshold is inclusive: 1008 names of 64 bytes are exactly
 * 64512 bytes and stay one attribute; 1009 are split 505 + 504.
 */
static void
test_boundary(void)
{
	static char names[1009][72];
	struct kh5_layer l[1009];
	struct kh5_writer *w = NULL;
	struct wb_err err = { 0 };
	size_t i, sizes[4], width;
	int nch, pass;
	char *got;
	hid_t f;

	for (i = 0; i < 1009; i++) {
		snprintf(names[i], sizeof(names[i]), "l_%04zu_%0*d", i,
		    64 - 7, 0);
		l[i] = (struct kh5_layer){ names[i], 0, NULL };
	}
	for (pass = 0; pass < 2; pass++) {
		size_t n = 1008 + (size_t)pass;

		CHECK(kh5_create(tpath("edge.h5"), KH5_LEGACY, l, n, NULL, &w,
		    &err) == 0);
		CHECK(kh5_close(w, &err) == 0);
		if (err.code != 0)
			fprintf(stderr, "  %s\n", err.msg);
		f = H5Fopen(tpath("edge.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
		got = read_names(f, "layer_names", &nch, sizes, &width);
		CHECK(width == 64);
		CHECK(strlen(got) == n * 65);
		if (pass == 0) {
			CHECK(nch == 0);
			CHECK(H5Aexists(f, "layer_names") > 0);
		} else {
			CHECK(nch == 2);
			CHECK(sizes[0] == 505 && sizes[1] == 504);
		}
		free(got);
		H5Fclose(f);
	}
}

/*
 * The chunk of [3][5][7] along the last axis, 2 wide: chunk j holds
 * columns 2j, 2j + 1 (the last one column 6 and one of padding).
 */
static void
fill_chunk(const float *full, float *ch, uint64_t j, uint64_t c, uint64_t m,
    uint64_t last)
{
	uint64_t r, x;

	for (r = 0; r < m; r++)
		for (x = 0; x < c; x++)
			ch[r * c + x] = j * c + x < last ?
			    full[r * last + j * c + x] : -1.0f;
}

/* Read dataset full into a new buffer with plain HDF5. */
static float *
read_h5(const char *path, const char *full, size_t n, int *layout)
{
	float *got = malloc(n * sizeof(float));
	hid_t f, d, p;

	f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	d = H5Dopen2(f, full, H5P_DEFAULT);
	p = H5Dget_create_plist(d);
	*layout = H5Pget_layout(p);
	if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
	    got) < 0)
		memset(got, 0, n * sizeof(float));
	H5Pclose(p);
	H5Dclose(d);
	H5Fclose(f);
	return got;
}

/*
 * Chunked weights: written a chunk at a time in any order, read by HDF5
 * like any dataset, read back in rows by kh5_read_rows, checked after
 * closing (chunks not read back when written against their CRC-64s, and
 * every chunk where it was written), the same bytes whatever the order;
 * bad chunk shapes refused at creation.
 */
static void
test_chunks(void)
{
	static const uint64_t s[] = { 3, 5, 7 }, sb[] = { 512, 1024 };
	static const uint64_t s1[] = { 7 };
	struct kh5_weight wt[] = { { "k", 3, s, 2 }, { "b", 2, sb, 512 } };
	struct kh5_layer l[] = { { "c", 2, wt } };
	struct kh5_writer *w = NULL;
	struct wb_err err = { 0 };
	const char *path = tpath("chunks.h5"), *path2 = tpath("chunks2.h5");
	float *small = mkdata(105, 3), *big = mkdata(512 * 1024, 4);
	float ch[15 * 2], *bch = malloc(512 * 512 * sizeof(float)), *got;
	float rows[2 * 35];
	uint64_t crc[2] = { 0, 0 };
	int layout, pass, fd;
	uint64_t j;

	for (pass = 0; pass < 3; pass++) {
		const char *p = pass == 1 ? path2 : path;

		CHECK(kh5_create(p, KH5_LEGACY, l, 1, NULL, &w, &err) == 0);
		/* pass 2 writes through the cache: nothing read back. */
		if (pass == 2)
			kh5_through_cache(w);
		for (j = 0; j < 4; j++) {
			uint64_t jj = pass == 1 ? j : 3 - j;

			fill_chunk(small, ch, jj, 2, 15, 7);
			CHECK(kh5_write_chunk(w, 0, 0, jj, ch, &err) == 0);
		}
		for (j = 0; j < 2; j++) {
			fill_chunk(big, bch, j, 512, 512, 1024);
			CHECK(kh5_write_chunk(w, 0, 1, j, bch, &err) == 0);
		}
		CHECK(kh5_read_rows(w, 0, 0, 1, 2, rows, &err) == 0);
		CHECK(memcmp(rows, small + 35, sizeof(rows)) == 0);
		CHECK(kh5_read_rows(w, 0, 0, 2, 2, rows, &err) ==
		    WB_E_INTERNAL);
		wb_err_clear(&err);
		CHECK(kh5_close_verify(w, p, l, 1, crc, 2, &err) == 0);
		if (err.code != 0)
			fprintf(stderr, "  %s\n", err.msg);
		wb_err_clear(&err);
	}
	/* Reverse or forward, cached or direct: the same bytes. */
	CHECK(file_equal(path, path2));
	got = read_h5(path, "c/k", 105, &layout);
	CHECK(layout == H5D_CHUNKED);
	CHECK(memcmp(got, small, 105 * sizeof(float)) == 0);
	free(got);
	got = read_h5(path, "c/b", 512 * 1024, &layout);
	CHECK(memcmp(got, big, 512 * 1024 * sizeof(float)) == 0);
	free(got);

	/* Changed behind its back after a cached write: the CRC-64 shows. */
	CHECK(kh5_create(path, KH5_LEGACY, l, 1, NULL, &w, &err) == 0);
	kh5_through_cache(w);
	for (j = 0; j < 4; j++) {
		fill_chunk(small, ch, j, 2, 15, 7);
		CHECK(kh5_write_chunk(w, 0, 0, j, ch, &err) == 0);
	}
	for (j = 0; j < 2; j++) {
		fill_chunk(big, bch, j, 512, 512, 1024);
		bch[0] = j == 1 ? 31415926.0f : bch[0];	/* to find it by */
		CHECK(kh5_write_chunk(w, 0, 1, j, bch, &err) == 0);
	}
	CHECK((fd = open(path, O_RDWR)) >= 0);
	{
		float v, mark = 31415926.0f;
		off_t a;

		/* Chunks are 4 KiB-aligned: look for the mark there. */
		for (a = 0; pread(fd, &v, sizeof(v), a) == sizeof(v); a += 4096)
			if (memcmp(&v, &mark, sizeof(v)) == 0)
				break;
		v = 12345.0f;
		CHECK(pwrite(fd, &v, sizeof(v), a + 4096) == sizeof(v));
	}
	close(fd);
	CHECK(kh5_close_verify(w, path, l, 1, crc, 2, &err) == WB_E_OUTPUT);
	CHECK(CONTAINS(err.msg, "c/b") && CONTAINS(err.msg, "chunk 1"));
	wb_err_clear(&err);

	/* Every chunk must be written, once; contiguous weights have none. */
	CHECK(kh5_create(path, KH5_LEGACY, l, 1, NULL, &w, &err) == 0);
	fill_chunk(small, ch, 0, 2, 15, 7);
	CHECK(kh5_write_chunk(w, 0, 0, 4, ch, &err) == WB_E_INTERNAL);
	wb_err_clear(&err);
	CHECK(kh5_write_chunk(w, 0, 0, 0, ch, &err) == 0);
	CHECK(kh5_close(w, &err) == WB_E_INTERNAL);
	CHECK(CONTAINS(err.msg, "not fully written"));
	wb_err_clear(&err);
	{
		struct kh5_weight cw[] = { { "k", 3, s, 0 } };
		struct kh5_layer cl[] = { { "c", 1, cw } };

		CHECK(kh5_create(path, KH5_LEGACY, cl, 1, NULL, &w, &err) ==
		    0);
		CHECK(kh5_write_chunk(w, 0, 0, 0, ch, &err) == WB_E_INTERNAL);
		wb_err_clear(&err);
		CHECK(kh5_close(w, NULL) != 0);
	}
	/* Refused shapes: wider than the axis, rank 1. */
	{
		struct kh5_weight bw[] = { { "k", 3, s, 8 } };
		struct kh5_weight rw[] = { { "k", 1, s1, 2 } };
		struct kh5_layer bl[] = { { "c", 1, bw } };
		struct kh5_layer rl[] = { { "c", 1, rw } };

		CHECK(kh5_create(path, KH5_LEGACY, bl, 1, NULL, &w, &err) ==
		    WB_E_USAGE);
		CHECK(CONTAINS(err.msg, "chunks of 8"));
		wb_err_clear(&err);
		CHECK(kh5_create(path, KH5_LEGACY, rl, 1, NULL, &w, &err) ==
		    WB_E_USAGE);
		wb_err_clear(&err);
	}
	free(small);
	free(big);
	free(bch);
	unlink(path);
	unlink(path2);
}

/*
 * Threads: kh5 must serialise them, and HDF5's per-thread error stacks
 * must stay silent on stderr in a thread that never called H5Eset_auto2.
 */
static void *
thread_main(void *arg)
{
	static const uint64_t s[] = { 64, 33 };
	struct kh5_weight wt[] = { { "k/kernel:0", 2, s, 0 } };
	struct kh5_layer l[] = { { "k", 1, wt } };
	struct kh5_writer *w;
	uint8_t sha[1][32];
	struct wb_err err = { 0 };
	char path[256], missing[256];
	float *data = mkdata(64 * 33, 9);
	int i, *bad = arg;

	/* No CHECK here: the harness counters are not thread-safe. */
	snprintf(path, sizeof(path), "%s/thread-%p.h5", tdir, arg);
	snprintf(missing, sizeof(missing), "%s/no-such-file.h5", tdir);
	if (sha256_buf(data, 64 * 33 * sizeof(float), sha[0]) != 0)
		(*bad)++;
	if (kh5_verify(missing, KH5_LEGACY, l, 1,
	    (const uint8_t (*)[32])sha, &err) != WB_E_OUTPUT)
		(*bad)++;
	for (i = 0; i < 10; i++) {
		wb_err_clear(&err);
		w = NULL;
		if (kh5_create(path, KH5_LEGACY, l, 1, NULL, &w, &err) != 0 ||
		    kh5_write(w, 0, 0, data, &err) != 0 ||
		    kh5_close(w, &err) != 0 ||
		    kh5_verify(path, KH5_LEGACY, l, 1,
		    (const uint8_t (*)[32])sha, &err) != 0)
			(*bad)++;
	}
	unlink(path);
	free(data);
	return NULL;
}

static void
test_threads(void)
{
	pthread_t th[4];
	int bad[4] = { 0 }, i, saved, fd;
	off_t size;

	fflush(stderr);
	saved = dup(2);
	fd = open(tpath("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	for (i = 0; i < 4; i++)
		CHECK(pthread_create(&th[i], NULL, thread_main, &bad[i]) == 0);
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	size = lseek(fd, 0, SEEK_END);
	dup2(saved, 2);
	close(saved);
	close(fd);
	for (i = 0; i < 4; i++)
		CHECK(bad[i] == 0);
	CHECK(size == 0);
	CHECK(open_ids() == 0);
}

/* True if this process has a descriptor open on path. */
static int
fd_open_to(const char *path)
{
	char link[64], target[512];
	ssize_t n;
	int fd, found = 0;

	for (fd = 0; fd < 1024 && !found; fd++) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		if ((n = readlink(link, target, sizeof(target) - 1)) < 0)
			continue;
		target[n] = '\0';
		found = strcmp(target, path) == 0;
	}
	return found;
}

/*
 * A system call failing inside HDF5 (here its metadata flush at close,
 * past RLIMIT_FSIZE) is reported by its cause, without HDF5's timestamp,
 * line break or file path.
 */
static void
test_hdf5_syscall_error(void)
{
	struct kh5_layer l[40];
	struct kh5_writer *w = NULL;
	struct wb_err err;
	struct rlimit old, lim;
	char names[40][16];
	void (*was)(int);
	int i;

	for (i = 0; i < 40; i++) {
		snprintf(names[i], sizeof(names[i]), "relu_%d", i);
		l[i].name = names[i];
		l[i].nweights = 0;
		l[i].w = NULL;
	}
	wb_err_clear(&err);
	CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
	was = signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = 2048;
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
	CHECK(kh5_create(tpath("fsize.h5"), KH5_LEGACY, l, 40, NULL, &w,
	    &err) == 0);
	CHECK(kh5_close(w, &err) != 0);
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
	signal(SIGXFSZ, was);
	CHECK(err.code == WB_E_OUTPUT);
	CHECK(CONTAINS(err.msg, "closing the weight file"));
	CHECK(CONTAINS(err.msg, "file write failed: File too large"));
	CHECK(!CONTAINS(err.msg, "time =") && !CONTAINS(err.msg, "\n") &&
	    !CONTAINS(err.msg, tdir));
	if (!CONTAINS(err.msg, "File too large"))
		fprintf(stderr, "got: %s\n", err.msg);
	/*
	 * The descriptor is closed, so a full disk gets its space back.
	 * (HDF5 keeps the failed file's id in its table: not counted.)
	 */
	CHECK(!fd_open_to(tpath("fsize.h5")));
}

static void
cleanup(void)
{
	static const char *names[] = { "legacy.h5", "k3.weights.h5",
	    "refused.weights.h5", "ok.weights.h5", "rows.h5", "big.h5",
	    "d1.h5", "d2.h5", "d3.weights.h5", "d4.weights.h5", "edge.h5",
	    "stderr.txt", "fsize.h5" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlink(tpath(names[i]));
	rmdir(tdir);
}

int
main(void)
{
	if (mkdtemp(tdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	{
		/* kh5 first, so HDF5 starts without its exit-time cleanup,
		 * as in our programs (see kh5_init). */
		const char *v = kh5_lib_version();
		unsigned maj, min, rel;
		char want[32];

		H5get_libversion(&maj, &min, &rel);
		snprintf(want, sizeof(want), "%u.%u.%u", maj, min, rel);
		CHECK_STR(v, want);
	}
	/* The test reads back with HDF5 itself; keep its errors quiet too. */
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	test_legacy();
	test_keras3();
	test_refused();
	test_rows();
	test_big();
	test_close_verify();
	test_deterministic();
	test_boundary();
	test_threads();
	test_chunks();
	test_hdf5_syscall_error();	/* last: leaves an id in HDF5's table */
	cleanup();
	return t_done("kh5");
}
