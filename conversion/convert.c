/*
 * convert: index the archive, plan, stream tensors through their transforms
 * into the HDF5 writer, verify, and publish the file atomically.
 *
 * Memory: tensors are visited in archive order, one at a time.  A decoded
 * tensor is kept past its turn only when a weight needs it together with a
 * tensor that comes later (sums, stacks) or several weights read it; all
 * other buffers are reused from tensor to tensor, because fresh pages are
 * slow to fault in and peak memory should stay near a couple of copies of
 * the largest tensor.
 *
 * Atomicity: the file is written under a temporary name in the target's
 * directory, re-read and checked against the SHA-256 of every tensor we
 * meant to write, fsync'd, renamed into place and the directory fsync'd.
 * Any failure removes the temporary file, so a reader never sees a partial
 * weight file.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert.h"
#include "kh5.h"
#include "plan.h"
#include "preset.h"
#include "sha256.h"
#include "spec.h"
#include "xform.h"

static mode_t convert_mask = 022;

/*
 * The process umask, read without umask(2): setting it to read it would
 * briefly change it for every thread of a daemon converting in parallel.
 */
static void
convert_umask_read(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[128];
	unsigned int m;

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Umask: %o", &m) == 1) {
			convert_mask = (mode_t)(m & 0777);
			break;
		}
	fclose(f);
}

mode_t
convert_umask(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, convert_umask_read);
	return convert_mask;
}

void
convert_opts_init(struct convert_opts *o)
{
	memset(o, 0, sizeof(*o));
	npz_limits_default(&o->limits);
}

/* A minimal failed report for errors before planning. */
static json_t *
convert_fail_report(const char *format, json_t *problems,
    const struct wb_err *err)
{
	json_t *r;

	if (problems == NULL)
		problems = json_array();
	if (json_array_size(problems) == 0 && err->code != WB_OK)
		json_array_append_new(problems, json_pack("{s:s, s:s}", "code",
		    wb_err_name(err->code), "message", err->msg));
	r = json_pack("{s:i, s:s, s:s, s:[], s:[], s:[], s:[], s:o, s:[]}",
	    "weightbridge_report", 1, "status", "failed", "format",
	    format ? format : "keras-h5", "layers", "unused", "ignored",
	    "missing", "problems", problems, "warnings");
	return r;
}

json_t *
convert_error_report(const char *format, const struct wb_err *err)
{
	return convert_fail_report(format, NULL, err);
}

static void
convert_totals(json_t *report, const struct plan *p, uint64_t written)
{
	size_t i, nw = 0, used = 0;

	for (i = 0; i < p->nlayers; i++)
		nw += p->l[i].nw;
	for (i = 0; i < p->ix->n; i++)
		used += p->uses[i] > 0;
	json_object_set_new(report, "totals", json_pack("{s:I, s:I, s:I, s:I, "
	    "s:I, s:I}", "layers", (json_int_t)p->nlayers, "weights",
	    (json_int_t)nw, "tensors_used", (json_int_t)used, "bytes_written",
	    (json_int_t)written, "problems",
	    (json_int_t)json_array_size(json_object_get(report, "problems")),
	    "warnings",
	    (json_int_t)json_array_size(json_object_get(report, "warnings"))));
}

static json_t *
convert_stats(const float *d, uint64_t n)
{
	double sum = 0, sq = 0, mn = INFINITY, mx = -INFINITY, mean, var;
	uint64_t i, nan = 0, inf = 0, fin = 0;

	for (i = 0; i < n; i++) {
		double v = d[i];

		if (isnan(v)) {
			nan++;
			continue;
		}
		if (isinf(v)) {
			inf++;
			continue;
		}
		fin++;
		sum += v;
		sq += v * v;
		if (v < mn)
			mn = v;
		if (v > mx)
			mx = v;
	}
	mean = fin ? sum / (double)fin : 0;
	var = fin ? sq / (double)fin - mean * mean : 0;
	if (var < 0)
		var = 0;
	if (fin == 0)
		mn = mx = 0;
	return json_pack("{s:f, s:f, s:f, s:f, s:I, s:I}", "min", mn, "max",
	    mx, "mean", mean, "std", sqrt(var), "nan", (json_int_t)nan, "inf",
	    (json_int_t)inf);
}

/* Everything the streaming pass needs, freed in one place. */
struct convert_run {
	struct plan	*p;
	struct kh5_writer *w;
	uint8_t		(*sha)[SHA256_LEN];	/* per weight, layout order */
	size_t		*wbase;		/* per layer: first weight number */
	size_t		*cons;		/* consumers, grouped by entry */
	size_t		*cons_off;	/* per entry: start in cons (n+1) */
	float		**held;		/* per entry: decoded data kept */
	uint32_t	*left;		/* per entry: consumers not done */
	uint8_t		*done;		/* per weight */
	float		*cur;		/* the current tensor, decoded */
	size_t		 cur_cap;
	void		*raw;
	size_t		 raw_cap;
	struct xf_scratch scratch;
	uint64_t	 written;
};

static int
convert_grow(void **buf, size_t *cap, size_t want, struct wb_err *err)
{
	void *p;

	if (want <= *cap)
		return 0;
	free(*buf);
	*buf = NULL;
	*cap = 0;
	if ((p = malloc(want ? want : 1)) == NULL)
		return wb_err_set(err, WB_E_NOMEM, "out of memory allocating "
		    "%zu bytes", want);
	*buf = p;
	*cap = want;
	return 0;
}

/* Index consumers: for each entry, the weights (global numbers) reading it. */
static int
convert_consumers(struct convert_run *r, struct wb_err *err)
{
	const struct plan *p = r->p;
	size_t n = p->ix->n, i, j, k = 0, total = 0, *fill = NULL;
	int s, rc = 0;

	r->wbase = calloc(p->nlayers + 1, sizeof(*r->wbase));
	r->cons_off = calloc(n + 1, sizeof(*r->cons_off));
	r->held = calloc(n ? n : 1, sizeof(*r->held));
	r->left = calloc(n ? n : 1, sizeof(*r->left));
	fill = calloc(n ? n : 1, sizeof(*fill));
	if (!r->wbase || !r->cons_off || !r->held || !r->left || !fill) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < p->nlayers; i++) {
		r->wbase[i] = k;
		for (j = 0; j < p->l[i].nw; j++, k++)
			for (s = 0; s < p->l[i].w[j].nsrc; s++) {
				r->cons_off[p->l[i].w[j].src[s] + 1]++;
				total++;
			}
	}
	r->wbase[p->nlayers] = k;
	for (i = 0; i < n; i++)
		r->cons_off[i + 1] += r->cons_off[i];
	r->cons = calloc(total ? total : 1, sizeof(*r->cons));
	r->done = calloc(k ? k : 1, 1);
	r->sha = calloc(k ? k : 1, sizeof(*r->sha));
	if (!r->cons || !r->done || !r->sha) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0, k = 0; i < p->nlayers; i++)
		for (j = 0; j < p->l[i].nw; j++, k++)
			for (s = 0; s < p->l[i].w[j].nsrc; s++) {
				size_t e = (size_t)p->l[i].w[j].src[s];

				r->cons[r->cons_off[e] + fill[e]++] = k;
				r->left[e]++;
			}
out:
	free(fill);
	return rc;
}

static struct plan_weight *
convert_weight(struct convert_run *r, size_t k, size_t *layer, size_t *wi)
{
	size_t lo = 0, hi = r->p->nlayers;

	/* wbase is sorted: binary search the layer holding weight k. */
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if (r->wbase[mid] <= k)
			lo = mid;
		else
			hi = mid;
	}
	*layer = lo;
	*wi = k - r->wbase[lo];
	return &r->p->l[lo].w[*wi];
}

/* All sources of weight k available?  Then transform, hash and write. */
static int
convert_emit(struct convert_run *r, size_t k, size_t cur_entry,
    struct wb_err *err)
{
	size_t li, wi;
	struct plan_weight *pw = convert_weight(r, k, &li, &wi);
	float *src[XF_MAX_SOURCES];
	const float *res;
	struct xf_shape out;
	char hex[SHA256_HEXLEN + 1];
	uint64_t n;
	int s, rc;

	for (s = 0; s < pw->nsrc; s++) {
		size_t e = (size_t)pw->src[s];

		if (e == cur_entry)
			src[s] = r->held[e] ? r->held[e] : r->cur;
		else if (r->held[e] != NULL)
			src[s] = r->held[e];
		else
			return 0;	/* a later tensor completes it */
	}
	if ((rc = xf_apply(&pw->recipe, pw->in, src, pw->nsrc, &r->scratch,
	    &res, &out, err)) != 0)
		return rc;
	n = xf_count(&out);
	if (sha256_buf(res, n * sizeof(float), r->sha[k]) != 0)
		return wb_err_set(err, WB_E_INTERNAL, "SHA-256 failed");
	if ((rc = kh5_write(r->w, li, wi, res, err)) != 0)
		return rc;
	sha256_hex(r->sha[k], hex);
	json_object_set_new(pw->jw, "stats", convert_stats(res, n));
	json_object_set_new(pw->jw, "sha256", json_string(hex));
	r->written += n * sizeof(float);
	r->done[k] = 1;
	for (s = 0; s < pw->nsrc; s++) {
		size_t e = (size_t)pw->src[s];

		if (--r->left[e] == 0 && r->held[e] != NULL) {
			free(r->held[e]);
			r->held[e] = NULL;
		}
	}
	return 0;
}

/* Decode member data into r->cur; keep a copy if later weights need it. */
static int
convert_read(struct convert_run *r, struct npz_reader *rd, size_t e,
    struct wb_err *err)
{
	const struct npz_entry *en = &r->p->ix->e[e];
	const struct npy_header *h = &en->hdr;
	size_t nbytes = (size_t)h->nbytes, i, need_keep = 0;
	size_t fbytes = (size_t)h->nelem * sizeof(float);
	int rc;

	if ((uint64_t)nbytes != h->nbytes || h->nelem > SIZE_MAX / sizeof(float))
		return wb_err_set(err, WB_E_LIMIT, "tensor '%s' is too large "
		    "for this machine", en->key);
	if ((rc = convert_grow((void **)&r->cur, &r->cur_cap, fbytes, err)))
		return rc;
	if (h->kind == NPY_FLOAT && h->itemsize == 4 && !h->big_endian &&
	    (!h->fortran_order || h->ndim <= 1)) {
		/* Already what we want: read straight into place. */
		if ((rc = npz_reader_read(rd, r->cur, nbytes, err)) != 0)
			return rc;
	} else {
		if ((rc = convert_grow(&r->raw, &r->raw_cap, nbytes, err)) != 0)
			return rc;
		if ((rc = npz_reader_read(rd, r->raw, nbytes, err)) != 0)
			return rc;
		npy_to_f32(h, r->raw, r->cur);
	}
	/* Keep it if any consumer needs another, not-yet-seen source. */
	for (i = r->cons_off[e]; i < r->cons_off[e + 1]; i++) {
		size_t li, wi;
		struct plan_weight *pw = convert_weight(r, r->cons[i], &li, &wi);

		if (pw->nsrc > 1)
			need_keep = 1;
	}
	if (need_keep) {
		if ((r->held[e] = malloc(fbytes ? fbytes : 1)) == NULL)
			return wb_err_set(err, WB_E_NOMEM, "out of memory");
		memcpy(r->held[e], r->cur, fbytes);
	}
	return 0;
}

static int
convert_fsync_path(const char *path, int dir, struct wb_err *err)
{
	int fd, rc = 0;

	fd = open(path, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return wb_err_set(err, WB_E_IO, "cannot open '%s' to sync: %s",
		    path, strerror(errno));
	if (fsync(fd) != 0)
		rc = wb_err_set(err, WB_E_IO, "fsync '%s': %s", path,
		    strerror(errno));
	close(fd);
	return rc;
}

static int
convert_file_digest(const char *path, uint64_t *size, char hex[65],
    struct wb_err *err)
{
	struct sha256_ctx *c = NULL;
	uint8_t d[SHA256_LEN];
	char *buf = NULL;
	ssize_t got;
	int fd = -1, rc = 0;

	*size = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		rc = wb_err_set(err, WB_E_IO, "cannot read back '%s': %s", path,
		    strerror(errno));
		goto out;
	}
	if ((buf = malloc(1 << 20)) == NULL || sha256_new(&c) != 0) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	while ((got = read(fd, buf, 1 << 20)) > 0) {
		*size += (uint64_t)got;
		if (sha256_update(c, buf, (size_t)got) != 0) {
			rc = wb_err_set(err, WB_E_INTERNAL, "SHA-256 failed");
			goto out;
		}
	}
	if (got < 0) {
		rc = wb_err_set(err, WB_E_IO, "read '%s': %s", path,
		    strerror(errno));
		goto out;
	}
	if (sha256_final(c, d) != 0) {
		rc = wb_err_set(err, WB_E_INTERNAL, "SHA-256 failed");
		goto out;
	}
	sha256_hex(d, hex);
out:
	sha256_free(c);
	free(buf);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* The streaming pass: archive order in, weights out. */
static int
convert_stream(struct convert_run *r, const struct convert_opts *o,
    struct wb_err *err)
{
	const struct plan *p = r->p;
	struct npz_reader *rd = NULL;
	uint64_t done_t = 0, done_b = 0, total_b = 0, total_t = 0;
	size_t e, i, nweights = r->wbase[p->nlayers];
	int rc, more;

	for (e = 0; e < p->ix->n; e++)
		if (p->uses[e] > 0) {
			total_t++;
			total_b += p->ix->e[e].hdr.nbytes;
		}
	if ((rc = npz_reader_open(o->npz_path, p->ix, &o->limits, &rd, err)))
		goto out;
	while ((more = npz_reader_next(rd, &e, err)) == 1) {
		if (p->uses[e] == 0)
			continue;	/* the reader skips unread data */
		if (o->progress != NULL && o->progress(o->progress_arg, done_t,
		    total_t, done_b, total_b) != 0) {
			rc = wb_err_set(err, WB_E_CANCELLED, "cancelled after "
			    "%llu of %llu tensors", (unsigned long long)done_t,
			    (unsigned long long)total_t);
			goto out;
		}
		if ((rc = convert_read(r, rd, e, err)) != 0)
			goto out;
		for (i = r->cons_off[e]; i < r->cons_off[e + 1]; i++)
			if (!r->done[r->cons[i]] &&
			    (rc = convert_emit(r, r->cons[i], e, err)) != 0)
				goto out;
		done_t++;
		done_b += p->ix->e[e].hdr.nbytes;
	}
	if (more < 0) {
		rc = err->code ? err->code : WB_E_ARCHIVE;
		goto out;
	}
	for (i = 0; i < nweights; i++)
		if (!r->done[i]) {
			size_t li, wi;

			convert_weight(r, i, &li, &wi);
			rc = wb_err_set(err, WB_E_ARCHIVE, "weight '%s' of layer "
			    "'%s' was never written: its tensors were missing "
			    "on the second read of the archive (did the file "
			    "change?)", p->l[li].w[wi].name, p->l[li].name);
			goto out;
		}
	if (o->progress != NULL)
		o->progress(o->progress_arg, done_t, total_t, done_b, total_b);
out:
	npz_reader_close(rd);
	return rc;
}

static void
convert_run_free(struct convert_run *r)
{
	size_t i;

	if (r->held != NULL && r->p != NULL)
		for (i = 0; i < r->p->ix->n; i++)
			free(r->held[i]);
	free(r->held);
	free(r->sha);
	free(r->wbase);
	free(r->cons);
	free(r->cons_off);
	free(r->left);
	free(r->done);
	free(r->cur);
	free(r->raw);
	xf_scratch_free(&r->scratch);
}

int
convert_run(const struct convert_opts *o, json_t **report, struct wb_err *err)
{
	struct convert_run r;
	struct npz_index *ix = NULL;
	struct spec *spec = NULL;
	struct kh5_layer *kl = NULL;
	struct kh5_weight *kw = NULL;
	struct kh5_meta meta;
	json_t *problems = json_array(), *rep = NULL;
	char *tmp = NULL, *dircopy = NULL, hex[65];
	uint64_t fsize = 0;
	int rc, fd, tmp_live = 0;

	memset(&r, 0, sizeof(r));
	*report = NULL;
	if (o->npz_path == NULL || o->spec == NULL ||
	    (o->out_path == NULL && !o->dry_run)) {
		rc = wb_err_set(err, WB_E_USAGE, "convert needs an archive, a "
		    "spec and an output path");
		goto out;
	}
	if (o->format != NULL && !spec_format_valid(o->format)) {
		rc = wb_err_set(err, WB_E_USAGE, "unknown format '%s' (use "
		    "keras-h5 or keras3)", o->format);
		goto out;
	}
	if ((rc = spec_parse((json_t *)o->spec, problems, &spec, err)) != 0)
		goto out;
	if ((rc = npz_index_read(o->npz_path, &o->limits, &ix, err)) != 0)
		goto out;
	rc = plan_build(ix, spec, o->format, &r.p, err);
	if (r.p != NULL) {
		rep = plan_take_report(r.p);
		json_object_set_new(rep, "source", json_pack("{s:s, s:I, s:I}",
		    "file", o->npz_path, "tensors", (json_int_t)ix->n, "bytes",
		    (json_int_t)ix->total_bytes));
	}
	if (rc != 0)
		goto out;
	/* The plan's weights point into rep; keep them alive together. */
	r.p->report = rep;
	if (o->dry_run)
		goto done;

	/* Reserve a unique temporary name beside the target. */
	if (asprintf(&tmp, "%s.tmp-XXXXXX", o->out_path) < 0) {
		tmp = NULL;
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	if ((fd = mkstemp(tmp)) < 0) {
		rc = wb_err_set(err, WB_E_IO, "cannot create '%s': %s", tmp,
		    strerror(errno));
		goto out;
	}
	/* mkstemp makes 0600; a weight file follows the umask like any. */
	(void)fchmod(fd, 0666 & ~convert_umask());
	close(fd);
	tmp_live = 1;
	if ((rc = convert_consumers(&r, err)) != 0 ||
	    (rc = plan_layout(r.p, &kl, &kw, err)) != 0)
		goto out;
	meta.keras_version = spec->keras_version;
	meta.backend = spec->backend;
	if ((rc = kh5_create(tmp, r.p->format, kl, r.p->nlayers, &meta, &r.w,
	    err)) != 0)
		goto out;
	rc = convert_stream(&r, o, err);
	if (kh5_close(r.w, err) != 0 && rc == 0)
		rc = err->code;
	r.w = NULL;
	if (rc != 0)
		goto out;
	if ((rc = kh5_verify(tmp, r.p->format, kl, r.p->nlayers,
	    (const uint8_t (*)[32])r.sha, err)) != 0)
		goto out;
	if ((rc = convert_fsync_path(tmp, 0, err)) != 0)
		goto out;
	if ((rc = convert_file_digest(tmp, &fsize, hex, err)) != 0)
		goto out;
	if (rename(tmp, o->out_path) != 0) {
		rc = wb_err_set(err, WB_E_IO, "cannot rename '%s' to '%s': %s",
		    tmp, o->out_path, strerror(errno));
		goto out;
	}
	tmp_live = 0;
	if ((dircopy = strdup(o->out_path)) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = convert_fsync_path(dirname(dircopy), 1, err)) != 0)
		goto out;
	json_object_set_new(rep, "result", json_pack("{s:s, s:I, s:s}",
	    "format", r.p->format == KH5_KERAS3 ? "keras3" : "keras-h5",
	    "bytes", (json_int_t)fsize, "sha256", hex));
done:
	json_object_set_new(rep, "status", json_string("ok"));
	if (o->dry_run)
		json_object_set_new(rep, "dry_run", json_true());
out:
	if (r.w != NULL)
		kh5_close(r.w, NULL);
	if (tmp_live)
		unlink(tmp);
	if (rep == NULL && rc != 0)
		rep = convert_fail_report(o->format ? o->format :
		    spec ? spec->format : NULL, json_incref(problems), err);
	else if (rep != NULL && rc != 0) {
		size_t li, wi;

		json_object_set_new(rep, "status", json_string("failed"));
		/* Say which weights never reached the (removed) file. */
		for (li = 0; r.p != NULL && li < r.p->nlayers; li++)
			for (wi = 0; wi < r.p->l[li].nw; wi++) {
				json_t *jw = r.p->l[li].w[wi].jw;

				if (!o->dry_run && json_object_get(jw,
				    "sha256") == NULL && strcmp(json_string_value(
				    json_object_get(jw, "status")), "ok") == 0)
					json_object_set_new(jw, "status",
					    json_string("not written"));
			}
		if (json_array_size(json_object_get(rep, "problems")) == 0)
			json_array_append_new(json_object_get(rep, "problems"),
			    json_pack("{s:s, s:s}", "code",
			    wb_err_name(err->code), "message", err->msg));
	}
	if (rep != NULL && r.p != NULL)
		convert_totals(rep, r.p, r.written);
	if (r.p != NULL)
		r.p->report = NULL;	/* rep is handed to the caller */
	*report = rep;
	convert_run_free(&r);
	plan_free(r.p);
	free(kl);
	free(kw);
	free(tmp);
	free(dircopy);
	spec_free(spec);
	npz_index_free(ix);
	json_decref(problems);
	return rc;
}

int
convert_inspect(const char *npz_path, const struct npz_limits *lim,
    json_t **out, struct wb_err *err)
{
	struct npz_index *ix = NULL;
	int rc;

	*out = NULL;
	if ((rc = npz_index_read(npz_path, lim, &ix, err)) != 0)
		return rc;
	if ((*out = npz_index_json(ix)) == NULL)
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
	npz_index_free(ix);
	return rc;
}

/* Layer name from a module prefix: "features.0" -> "features_0". */
static void
convert_layer_name(const char *pfx, char *out, size_t len)
{
	size_t i;

	snprintf(out, len, "%s", *pfx ? pfx : "root");
	for (i = 0; out[i] != '\0'; i++)
		if (out[i] == '.' || out[i] == '/')
			out[i] = '_';
}

/* BatchNorm's step counter: never a weight, left out of templates. */
static int
fnmatch_like_nbt(const char *key)
{
	size_t n = strlen(key), m = strlen("num_batches_tracked");

	return n >= m && strcmp(key + n - m, "num_batches_tracked") == 0;
}

int
convert_template(const char *npz_path, const struct npz_limits *lim,
    json_t **out, struct wb_err *err)
{
	struct npz_index *ix = NULL;
	json_t *spec = NULL, *layers_j;
	char **pfx = NULL, name[512], why[256];
	size_t *first = NULL, *count = NULL, np = 0, i, j, strip = 0;
	long *next = NULL, *last = NULL;
	uint64_t conv_out = 0;
	int rc, seen_conv = 0;

	*out = NULL;
	if ((rc = npz_index_read(npz_path, lim, &ix, err)) != 0)
		goto out;
	/* DataParallel exports prefix every key with "module.". */
	for (i = 0; i < ix->n; i++)
		if (strncmp(ix->e[i].key, "module.", 7) == 0)
			strip++;
	strip = ix->n > 0 && strip == ix->n ? 7 : 0;
	pfx = calloc(ix->n + 1, sizeof(*pfx));
	first = calloc(ix->n + 1, sizeof(*first));
	count = calloc(ix->n + 1, sizeof(*count));
	next = calloc(ix->n + 1, sizeof(*next));
	last = calloc(ix->n + 1, sizeof(*last));
	spec = json_pack("{s:i, s:{s:s}, s:{s:[], s:[s]}, s:s, s:[]}",
	    "weightbridge_spec", 1, "target", "format", "keras-h5", "source",
	    "strip_prefixes", "ignore", "*num_batches_tracked", "unmapped",
	    "error", "layers");
	if (!pfx || !first || !count || !next || !last || !spec) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	if (strip)
		json_array_append_new(json_object_get(json_object_get(spec,
		    "source"), "strip_prefixes"), json_string("module."));
	layers_j = json_object_get(spec, "layers");
	for (i = 0; i < ix->n; i++) {
		const char *k = ix->e[i].key + strip;
		const char *dot = strstr(k, ".parametrizations.");
		size_t plen;

		/* A parametrization belongs to the module that owns it. */
		if (dot == NULL)
			dot = strrchr(k, '.');
		plen = dot ? (size_t)(dot - k) : 0;

		next[i] = -1;
		if (fnmatch_like_nbt(k))
			continue;
		/* Modules are contiguous in a state_dict: look back a bit. */
		for (j = np; j > 0 && np - j < 64; j--)
			if (strlen(pfx[j - 1]) == plen &&
			    strncmp(pfx[j - 1], k, plen) == 0)
				break;
		if (j > 0) {
			next[last[j - 1]] = (long)i;
			last[j - 1] = (long)i;
			count[j - 1]++;
			continue;
		}
		if ((pfx[np] = strndup(k, plen)) == NULL) {
			rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
			goto out;
		}
		first[np] = i;
		last[np] = (long)i;
		count[np] = 1;
		np++;
	}
	for (j = 0; j < np; j++) {
		const char *params[64];
		struct xf_shape shapes[64];
		const struct preset *pr;
		json_t *entry;
		size_t n = 0;
		long e;
		int certain;

		if (pfx[j] == NULL)
			continue;	/* taken by an attention layer */
		for (e = (long)first[j]; e >= 0 && n < 64; e = next[e]) {
			const char *k = ix->e[e].key + strip;
			size_t plen = strlen(pfx[j]);

			/* The parameter is what follows "prefix." */
			params[n] = plen > 0 && strlen(k) > plen ? k + plen + 1 :
			    k;
			shapes[n].ndim = ix->e[e].hdr.ndim;
			memcpy(shapes[n].d, ix->e[e].hdr.shape,
			    sizeof(shapes[n].d));
			n++;
		}
		convert_layer_name(pfx[j], name, sizeof(name));
		pr = preset_infer(pfx[j], params, shapes, n, !seen_conv,
		    &certain, why, sizeof(why));
		if (pr == NULL) {
			json_t *ws = json_array();

			for (e = (long)first[j]; e >= 0; e = next[e]) {
				const char *k = ix->e[e].key + strip;
				const char *dot = strrchr(k, '.');

				json_array_append_new(ws, json_pack("{s:s, s:s}",
				    "name", dot ? dot + 1 : k, "from", k));
			}
			entry = json_pack("{s:s, s:s, s:o, s:s}", "name", name,
			    "type", "Custom", "weights", ws, "note", why);
			json_array_append_new(layers_j, entry);
			continue;
		}
		if (pr->build != NULL && strcmp(pr->type, "MultiHeadAttention")
		    && strcmp(pr->type, "SeparableConv2D")) {
			/* A stacked RNN: one Keras layer per PyTorch layer. */
			size_t layers = 0, q;
			char lname[600];

			for (q = 0; q < n; q++) {
				unsigned long kk;

				if (sscanf(params[q], "weight_ih_l%lu", &kk) == 1 &&
				    kk + 1 > layers)
					layers = kk + 1;
			}
			for (q = 0; q < layers; q++) {
				if (layers > 1)
					snprintf(lname, sizeof(lname), "%s_l%zu",
					    name, q);
				else
					snprintf(lname, sizeof(lname), "%s", name);
				entry = json_pack("{s:s, s:s, s:s, s:I}", "name",
				    lname, "type", pr->type, "from", pfx[j],
				    "layer", (json_int_t)q);
				if (why[0] != '\0')
					json_object_set_new(entry, "note",
					    json_string(why));
				json_array_append_new(layers_j, entry);
			}
			continue;
		}
		entry = json_pack("{s:s, s:s, s:s}", "name", name, "type",
		    pr->type, "from", pfx[j]);
		if (!certain)
			json_object_set_new(entry, "note", json_string(why));
		if (strcmp(pr->type, "MultiHeadAttention") == 0) {
			size_t q, plen = strlen(pfx[j]);

			json_object_set_new(entry, "num_heads", json_integer(1));
			/* Its out_proj is part of this layer, not a Dense. */
			for (q = j + 1; q < np; q++)
				if (pfx[q] != NULL &&
				    strncmp(pfx[q], pfx[j], plen) == 0 &&
				    strcmp(pfx[q] + plen, plen ? ".out_proj" :
				    "out_proj") == 0) {
					free(pfx[q]);
					pfx[q] = NULL;
				}
		}
		if (strcmp(pr->type, "PReLU") == 0)
			json_object_set_new(entry, "input_rank", json_integer(4));
		if (pr->kernel_ndim >= 3) {
			seen_conv = 1;
			conv_out = shapes[0].d[0];
		}
		if (strcmp(pr->type, "Dense") == 0 && conv_out > 0 &&
		    shapes[0].ndim == 2) {
			uint64_t in = shapes[0].d[1];

			if (in != conv_out && in % conv_out == 0) {
				char note[320];

				snprintf(note, sizeof(note), "follows "
				    "convolutions with %llu channels: if PyTorch "
				    "flattened an NCHW map here, add \"flatten\": "
				    "{\"chw\": [%llu, H, W]} with H*W = %llu",
				    (unsigned long long)conv_out,
				    (unsigned long long)conv_out,
				    (unsigned long long)(in / conv_out));
				json_object_set_new(entry, "note",
				    json_string(note));
			}
			conv_out = 0;
		}
		if (strcmp(pr->type, "DepthwiseConv2D") == 0)
			json_object_set_new(entry, "depth_multiplier",
			    json_integer(1));
		json_array_append_new(layers_j, entry);
	}
	*out = spec;
	spec = NULL;
out:
	for (j = 0; pfx != NULL && j < np; j++)
		free(pfx[j]);
	free(pfx);
	free(first);
	free(count);
	free(next);
	free(last);
	json_decref(spec);
	npz_index_free(ix);
	return rc;
}
