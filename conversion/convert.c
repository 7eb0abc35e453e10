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
#include <time.h>
#include <unistd.h>

#include "convert.h"
#include "kh5.h"
#include "plan.h"
#include "preset.h"
#include "sha256.h"
#include "spec.h"
#include "stream.h"
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

/*
 * WB_TRACE=1 in the environment prints how long each phase took, for
 * performance work (bench/); it costs nothing when unset.
 */
static int convert_trace_on;

static void
convert_trace_init(void)
{
	convert_trace_on = getenv("WB_TRACE") != NULL;
}

static void
convert_trace(const char *phase)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	static __thread double last;
	struct timespec ts;
	double now;

	pthread_once(&once, convert_trace_init);
	if (!convert_trace_on)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	if (phase != NULL && last > 0) {
		FILE *f = fopen("/proc/self/status", "re");
		char line[128], rss[160] = "";

		while (f != NULL && fgets(line, sizeof(line), f) != NULL)
			if (strncmp(line, "VmRSS:", 6) == 0)
				snprintf(rss, sizeof(rss), "%s", line + 6);
		if (f != NULL)
			fclose(f);
		rss[strcspn(rss, "\n")] = '\0';
		fprintf(stderr, "trace: %-8s %8.3f s  rss%s\n", phase,
		    now - last, rss);
	}
	last = now;
}

void
convert_opts_init(struct convert_opts *o)
{
	memset(o, 0, sizeof(*o));
	npz_limits_default(&o->limits);
	o->file_digest = 1;
	o->weight_digests = 1;
	o->weight_stats = 1;
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
	for (i = 0; p->uses != NULL && i < p->ix->n; i++)
		used += p->uses[i] > 0;
	json_object_set_new(report, "totals", json_pack("{s:I, s:I, s:I, s:I, "
	    "s:I, s:I}", "layers", (json_int_t)p->nlayers, "weights",
	    (json_int_t)nw, "tensors_used", (json_int_t)used, "bytes_written",
	    (json_int_t)written, "problems",
	    (json_int_t)json_array_size(json_object_get(report, "problems")),
	    "warnings",
	    (json_int_t)json_array_size(json_object_get(report, "warnings"))));
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
	uint8_t d[SHA256_LEN];
	int rc, errnum;

	if ((rc = sha256_file(path, d, size, &errnum)) == WB_E_IO)
		return wb_err_set(err, WB_E_IO, "cannot read back '%s': %s",
		    path, strerror(errnum));
	if (rc != 0)
		return wb_err_set(err, rc, "hashing '%s' failed", path);
	sha256_hex(d, hex);
	return 0;
}

struct convert_flush {
	const char	*path;
	struct wb_err	 err;
	int		 rc;
};

static void *
convert_flush_main(void *arg)
{
	struct convert_flush *f = arg;

	f->rc = convert_fsync_path(f->path, 0, &f->err);
	return NULL;
}

static int
convert_fsync_and_digest(const char *path, uint64_t *size, char hex[65],
    struct wb_err *err)
{
	struct convert_flush f = { path, { 0 }, 0 };
	pthread_t tid;
	int started, rc;

	started = pthread_create(&tid, NULL, convert_flush_main, &f) == 0;
	if (!started)
		f.rc = convert_fsync_path(path, 0, &f.err);
	rc = convert_file_digest(path, size, hex, err);
	if (started)
		pthread_join(tid, NULL);
	if (f.rc != 0 && rc == 0) {
		*err = f.err;
		rc = f.rc;
	}
	return rc;
}

/* Per-weight results into the report, in layout order. */
static void
convert_fill_report(const struct plan *p, const struct stream_weight *out,
    int weight_digests, int weight_stats)
{
	char hex[SHA256_HEXLEN + 1];
	size_t li, wi, k = 0;

	for (li = 0; li < p->nlayers; li++)
		for (wi = 0; wi < p->l[li].nw; wi++, k++) {
			json_t *jw = p->l[li].w[wi].jw;
			const char *st = json_string_value(json_object_get(jw,
			    "status"));

			if (jw == NULL)
				continue;	/* the report ran out of memory */
			if (out == NULL || !out[k].done) {
				if (st != NULL && strcmp(st, "ok") == 0)
					json_object_set_new(jw, "status",
					    json_string("not written"));
				continue;
			}
			if (weight_stats)
				json_object_set_new(jw, "stats",
				    stream_stats_json(&out[k].st));
			if (weight_digests) {
				sha256_hex(out[k].sha, hex);
				json_object_set_new(jw, "sha256",
				    json_string(hex));
			}
		}
}

int
convert_run(const struct convert_opts *o, json_t **report, struct wb_err *err)
{
	struct npz_index *ix = NULL;
	struct spec *spec = NULL;
	struct plan *p = NULL;
	struct kh5_writer *w = NULL;
	struct kh5_layer *kl = NULL;
	struct kh5_weight *kw = NULL;
	struct kh5_meta meta;
	struct stream_opts so;
	struct stream_weight *out = NULL;
	json_t *problems = json_array(), *rep = NULL;
	char *tmp = NULL, *dircopy = NULL, hex[65];
	uint64_t fsize = 0, written = 0, *crc = NULL;
	size_t nweights = 0, li, k;
	int rc, fd, tmp_live = 0, streamed = 0;

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
	convert_trace(NULL);
	if ((rc = npz_index_read(o->npz_path, &o->limits, &ix, err)) != 0)
		goto out;
	convert_trace("index");
	rc = plan_build(ix, spec, o->format, &p, err);
	convert_trace("plan");
	if (p != NULL) {
		/* The plan's until the end: its weights will point into it. */
		rep = p->report;
		json_object_set_new(rep, "source", json_pack("{s:s, s:I, s:I}",
		    "file", o->npz_path, "tensors", (json_int_t)ix->n, "bytes",
		    (json_int_t)ix->total_bytes));
	}
	if (rc != 0)
		goto out;
	if (o->dry_run) {
		if (!o->no_report && (rc = plan_report_layers(p, err)) != 0)
			goto out;
		goto done;
	}

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
	for (li = 0; li < p->nlayers; li++)
		nweights += p->l[li].nw;
	out = calloc(nweights + 1, sizeof(*out));
	crc = calloc(nweights + 1, sizeof(*crc));
	if (out == NULL || crc == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = plan_layout(p, &kl, &kw, err)) != 0)
		goto out;
	/* Big transposes are stored in chunks, so they can be streamed. */
	for (li = 0, k = 0; li < p->nlayers; li++)
		for (size_t wi = 0; wi < p->l[li].nw; wi++, k++)
			kw[k].chunk = stream_chunk(p, &p->l[li].w[wi]);
	meta.keras_version = spec->keras_version;
	meta.backend = spec->backend;
	if ((rc = kh5_create(tmp, p->format, kl, p->nlayers, &meta, &w,
	    err)) != 0)
		goto out;
	if (o->cache_output)
		kh5_through_cache(w);
	convert_trace("create");
	memset(&so, 0, sizeof(so));
	so.npz_path = o->npz_path;
	so.limits = &o->limits;
	so.threads = o->threads;
	so.no_sha = !o->weight_digests;
	so.no_stats = !o->weight_stats;
	so.progress = o->progress;
	so.progress_arg = o->progress_arg;
	rc = stream_run(p, w, &so, out, &written, err);
	streamed = 1;
	convert_trace("stream");
	if (rc != 0) {
		(void)kh5_close(w, err);	/* err keeps the first failure */
		w = NULL;
		goto out;
	}
	/*
	 * Close, and re-read every byte written and check it against what we
	 * meant (big tensors were read back from the disk as they were
	 * written; the rest, and every name and shape, now).
	 */
	for (k = 0; k < nweights; k++)
		crc[k] = out[k].crc;
	rc = kh5_close_verify(w, tmp, kl, p->nlayers, crc, o->threads, err);
	w = NULL;
	convert_trace("verify");
	if (rc != 0)
		goto out;
	/*
	 * The per-layer report is made now, when the HDF5 library has given
	 * back its memory, and before the file is published, so that a
	 * report we cannot make fails the conversion cleanly.
	 */
	if (!o->no_report) {
		if ((rc = plan_report_layers(p, err)) != 0)
			goto out;
		convert_trace("report");
	}
	if (o->file_digest) {
		/* Hash while the file is flushed: neither waits for the other. */
		if ((rc = convert_fsync_and_digest(tmp, &fsize, hex, err)) != 0)
			goto out;
		convert_trace("fsync+digest");
	} else {
		struct stat st;

		if ((rc = convert_fsync_path(tmp, 0, err)) != 0)
			goto out;
		convert_trace("fsync");
		if (stat(tmp, &st) != 0) {
			rc = wb_err_set(err, WB_E_IO, "stat '%s': %s", tmp,
			    strerror(errno));
			goto out;
		}
		fsize = (uint64_t)st.st_size;
	}
	if ((dircopy = strdup(o->out_path)) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	if (rename(tmp, o->out_path) != 0) {
		rc = wb_err_set(err, WB_E_IO, "cannot rename '%s' to '%s': %s",
		    tmp, o->out_path, strerror(errno));
		goto out;
	}
	tmp_live = 0;
	/* Not durable unless the directory is: then it is not published. */
	if ((rc = convert_fsync_path(dirname(dircopy), 1, err)) != 0) {
		unlink(o->out_path);
		goto out;
	}
	json_object_set_new(rep, "result", json_pack("{s:s, s:I}", "format",
	    p->format == KH5_KERAS3 ? "keras3" : "keras-h5", "bytes",
	    (json_int_t)fsize));
	if (o->file_digest)
		json_object_set_new(json_object_get(rep, "result"), "sha256",
		    json_string(hex));
done:
	json_object_set_new(rep, "status", json_string("ok"));
	if (o->dry_run)
		json_object_set_new(rep, "dry_run", json_true());
out:
	if (w != NULL)
		kh5_close(w, NULL);
	if (tmp_live)
		unlink(tmp);
	if (o->no_report)
		rep = NULL;	/* nobody reads it: the plan frees it */
	/* A failed conversion still reports every layer it planned. */
	if (rep != NULL && p != NULL)
		(void)plan_report_layers(p, NULL);
	/* Every weight says whether it reached the file (none did if we
	 * failed before streaming: then there are no results at all). */
	if (rep != NULL && p != NULL && !o->dry_run && (streamed || rc != 0))
		convert_fill_report(p, out, o->weight_digests,
		    o->weight_stats);
	if (rep == NULL && rc != 0 && !o->no_report)
		rep = convert_fail_report(o->format ? o->format :
		    spec ? spec->format : NULL, json_incref(problems), err);
	else if (rep != NULL && rc != 0) {
		json_object_set_new(rep, "status", json_string("failed"));
		if (json_array_size(json_object_get(rep, "problems")) == 0)
			json_array_append_new(json_object_get(rep, "problems"),
			    json_pack("{s:s, s:s}", "code",
			    wb_err_name(err->code), "message", err->msg));
	}
	if (rep != NULL && p != NULL)
		convert_totals(rep, p, written);
	if (p != NULL && !o->no_report)
		p->report = NULL;	/* rep is handed to the caller */
	*report = rep;
	plan_free(p);
	free(out);
	free(crc);
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
			shapes[n].ndim = ix->e[e].hdr.ndim <= XF_MAX_DIMS ?
			    ix->e[e].hdr.ndim : -1;
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
