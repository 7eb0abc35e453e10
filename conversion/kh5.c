/*
 * kh5: the HDF5 writer and verifier for Keras weight files.
 *
 * This is the only file in weightbridge that calls HDF5.  Two reasons keep it
 * that way.  First, HDF5 serialises everything behind one global lock (and a
 * build without thread safety would not be safe at all), so every public
 * function here takes kh5_lock and nothing outside this file can race it.
 * Second, HDF5 failures arrive on a per-thread error stack; automatic
 * printing to stderr is switched off for each thread that enters, and the
 * innermost entry of the stack is folded into the wb_err message next to the
 * layer and weight the caller knows about.
 *
 * kh5_create() checks every name, then lays out the whole file: groups,
 * name-list attributes and every dataset at its final shape, with its space
 * allocated (big ones 4 KiB-aligned).  Tensor bytes then go straight to
 * those places with pwrite(2), the aligned middle of big ones with
 * O_DIRECT and read back from the disk at once (kh5_pwrite), unless the
 * writer was told the file will be read again soon (kh5_through_cache).
 * Object timestamps are switched off, so the same input gives a
 * byte-identical file.  The file keeps the default (oldest) format bounds so
 * HDF5 1.8 and every h5py can read it; see docs/formats.md for what each
 * layout contains.
 *
 * The check (kh5_verify, kh5_verify_crc64, kh5_close_verify) re-opens the
 * file: names, types, shapes and data addresses under the HDF5 lock, then
 * the data bytes read raw from the file on several threads (page cache
 * first, O_DIRECT for the rest).  Without a raw address (a big-endian host)
 * a dataset is hashed through HDF5 in slabs of at most KH5_VERIFY_BLOCK
 * bytes, split at the outermost axis whose trailing sub-array fits.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#include <hdf5.h>

#include "kh5.h"
#include "sha256.h"

#include <isa-l/crc64.h>

#define KH5_DEF_BACKEND		"tensorflow"
#define KH5_DEF_VERSION		"2.15.0"
#define KH5_REASON_MAX		200	/* bytes of HDF5's own message we keep */
#define KH5_SHOW		160	/* bytes of a name shown in a message */
/*
 * Datasets of at least KH5_DIRECT_MIN bytes start on a KH5_DIRECT_ALIGN
 * boundary in the file, and their aligned middle is written and read back
 * with O_DIRECT: bulk bytes go from our buffers to the disk without being
 * copied into fresh page-cache pages (which cost a fault each and, on a
 * virtual machine, run at a fraction of the disk's speed), and the read-back
 * check reads what the disk holds.
 */
#define KH5_DIRECT_MIN		((uint64_t)1 << 20)
#define KH5_DIRECT_ALIGN	((uint64_t)4096)
#define KH5_VERIFY_THREADS	16
#define KH5_MDC_SIZE		((size_t)256 << 10)	/* metadata cache */
#define KH5_RAW_BLOCK		((uint64_t)16 << 20)	/* bytes per read-back */
#define KH5_RB_MAX		KH5_VERIFY_THREADS

struct kh5_dset {
	hid_t		 id;
	int		 ndim;
	hsize_t		 dims[KH5_MAX_DIMS];
	uint64_t	 nelem;
	uint64_t	 row_elems;	/* elements per leading-axis row */
	uint64_t	 rows;		/* leading dimension (1 for a scalar) */
	uint64_t	 rows_done;	/* rows written so far, capped at rows */
	uint64_t	 addr;		/* file offset of its data, or KH5_NOADDR */
	uint64_t	 checked;	/* bytes read back as written (w->mu) */
	char		*layer;		/* for messages */
	char		*path;
	/*
	 * Chunked (chunk > 0): chunk i of nchunks is cbytes at caddr[i];
	 * cstate[i] is KH5_C_* (w->mu), ccrc[i] the CRC-64 of what was
	 * written into a chunk that was not read back.
	 */
	uint64_t	 chunk, nchunks, cbytes, cdone;
	uint64_t	*caddr, *ccrc;
	uint8_t		*cstate;
};

enum { KH5_C_NONE = 0, KH5_C_WRITTEN = 1, KH5_C_READBACK = 2 };

/* What close_verify() knows of where a dataset's bytes went. */
struct kh5_wrote {
	uint64_t	 addr;		/* read back there when written, or
					   KH5_NOADDR */
	uint64_t	 chunk, nchunks, cbytes;	/* chunk 0: contiguous */
	uint64_t	*caddr, *ccrc;
	uint8_t		*cstate;
};

#define KH5_NOADDR	UINT64_MAX

struct kh5_writer {
	hid_t		 file;
	enum kh5_format	 fmt;
	size_t		 nlayers;
	size_t		*first;		/* layer i's weights are ds[first[i]..] */
	size_t		*count;
	size_t		 nds;
	struct kh5_dset	*ds;
	int		 rawfd;		/* for tensor bytes; see kh5_write() */
	int		 dfd;		/* the same file with O_DIRECT, or -1 */
	pthread_mutex_t	 mu;		/* rows_done, checked, rb */
	char		*rb[KH5_RB_MAX];	/* free read-back buffers */
	int		 nrb;
	pthread_mutex_t	 iomu;		/* writes to rawfd */
};

/* A name the layout needs, for the conflict check in kh5_check_layers(). */
struct kh5_node {
	char		*path;
	int		 is_dataset;
};

static pthread_mutex_t	kh5_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t	kh5_once = PTHREAD_ONCE_INIT;
static char		kh5_version[32] = "unknown";
static int		kh5_init_ok;
/*
 * HDF5 built thread-safe keeps the error stack, and with it the automatic
 * printing switch, per thread: silencing it once for the process is not
 * enough, so each thread does it on its first entry.
 */
static _Thread_local int kh5_quiet;

#define KH5_FAIL(err, code, ...) \
	kh5_fail_at((err), __FILE__, __LINE__, (code), __VA_ARGS__)

static int	kh5_fail_at(struct wb_err *, const char *, int, enum wb_code,
		    const char *, ...) __attribute__((format(printf, 5, 6)));
static int	kh5_pread_fd(int, char *, uint64_t, uint64_t, uint64_t *);

static void
kh5_init(void)
{
	unsigned maj, min, rel;

	/*
	 * No library cleanup at exit: a file whose close failed (a full
	 * disk) stays in HDF5's tables, and closing it again from an atexit
	 * handler crashes a daemon that is otherwise shutting down cleanly.
	 * The process is exiting; the kernel reclaims everything.  (It only
	 * works before HDF5's first use, which is the case in our binaries.)
	 */
	(void)H5dont_atexit();	/* refused if HDF5 is already open: fine */
	if (H5open() < 0 || H5get_libversion(&maj, &min, &rel) < 0)
		return;
	snprintf(kh5_version, sizeof(kh5_version), "%u.%u.%u", maj, min, rel);
	kh5_init_ok = 1;
}

/*
 * Take the lock.  Fails (without the lock) only if HDF5 never initialised,
 * in which case no writer can exist either.
 */
static int
kh5_enter(struct wb_err *err)
{
	pthread_once(&kh5_once, kh5_init);
	if (!kh5_init_ok)
		return wb_err_set(err, WB_E_OUTPUT,
		    "the HDF5 library failed to initialise");
	pthread_mutex_lock(&kh5_lock);
	/* Best effort: a failure only means noise on stderr; retry next time. */
	if (!kh5_quiet && H5Eset_auto2(H5E_DEFAULT, NULL, NULL) >= 0)
		kh5_quiet = 1;
	return 0;
}

static void
kh5_leave(void)
{
	pthread_mutex_unlock(&kh5_lock);
}

/*
 * HDF5's own message, for people.  A system call's failure comes as "file
 * write failed: time = <date>\n, filename = '<path>', file descriptor =
 * 13, errno = 28, error message = 'No space left on device', buf = ..."
 * which would put a server's paths and a line break into an API's
 * answer and lose the cause past our length cap: keep "file write failed"
 * and say strerror(errno) instead.  Other messages are kept whole.
 */
static void
kh5_reason(const char *desc, char *out, size_t len)
{
	const char *e = strstr(desc, "errno = ");
	size_t head;
	long n;

	if (e == NULL || (n = strtol(e + 8, NULL, 10)) <= 0) {
		snprintf(out, len, "%s", desc);
		return;
	}
	head = strcspn(desc, ":,");
	snprintf(out, len, "%.*s: %s", (int)head, desc, strerror((int)n));
}

static herr_t
kh5_walk_cb(unsigned n, const H5E_error2_t *e, void *arg)
{
	char *reason = arg;

	/* Walking upward, entry 0 is where the failure was first noticed. */
	if (n == 0 && e->desc != NULL)
		kh5_reason(e->desc, reason, KH5_REASON_MAX);
	return 0;
}

/*
 * Set err from a formatted message plus the innermost HDF5 error, if the
 * thread's stack holds one, then clear the stack.
 */
static int
kh5_fail_at(struct wb_err *err, const char *file, int line, enum wb_code code,
    const char *fmt, ...)
{
	char msg[WB_ERR_MSG_MAX], reason[KH5_REASON_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reason[0] = '\0';
	if (H5Eget_num(H5E_DEFAULT) > 0) {
		H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, kh5_walk_cb, reason);
		H5Eclear2(H5E_DEFAULT);
	}
	if (reason[0] != '\0')
		return wb_err_set_at(err, file, line, code, "%s (HDF5: %s)",
		    msg, reason);
	return wb_err_set_at(err, file, line, code, "%s", msg);
}

static char *
kh5_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s;

	if ((s = malloc(la + lb + 2)) == NULL)
		return NULL;
	memcpy(s, a, la);
	s[la] = '/';
	memcpy(s + la + 1, b, lb + 1);
	return s;
}

/* Check one layer name or weight path against the rules in kh5.h. */
static int
kh5_check_name(const char *s, const char *what, size_t layer,
    struct wb_err *err)
{
	const char *p, *end;
	size_t len, n;

	if (s == NULL || s[0] == '\0')
		return wb_err_set(err, WB_E_USAGE,
		    "layer #%zu: empty %s", layer, what);
	if ((len = strlen(s)) > KH5_MAX_NAME)
		return wb_err_set(err, WB_E_LIMIT,
		    "layer #%zu: %s '%.*s...' is %zu bytes, more than %d",
		    layer, what, KH5_SHOW, s, len, KH5_MAX_NAME);
	if (s[0] == '/')
		return wb_err_set(err, WB_E_USAGE,
		    "layer #%zu: %s '%.*s' must not start with '/'",
		    layer, what, KH5_SHOW, s);
	for (p = s; ; p = end + 1) {
		if ((end = strchr(p, '/')) == NULL)
			end = p + strlen(p);
		n = (size_t)(end - p);
		if (n == 0 || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return wb_err_set(err, WB_E_USAGE,
			    "layer #%zu: %s '%.*s' has an empty, '.' or '..' "
			    "component", layer, what, KH5_SHOW, s);
		if (*end == '\0')
			break;
	}
	return 0;
}

/* Byte order with '/' lowest, so every "p/..." sorts right after "p". */
static int
kh5_node_cmp(const void *va, const void *vb)
{
	const unsigned char *a = (const unsigned char *)
	    ((const struct kh5_node *)va)->path;
	const unsigned char *b = (const unsigned char *)
	    ((const struct kh5_node *)vb)->path;
	unsigned ca, cb;

	for (;; a++, b++) {
		ca = *a == '/' ? 1 : *a;
		cb = *b == '/' ? 1 : *b;
		if (ca != cb || ca == 0)
			return (int)ca - (int)cb;
	}
}

/*
 * Validate layers: names, shapes, counts, and that the layout is a tree (no
 * duplicate paths, no dataset where a group is needed).  *total receives the
 * number of weights.
 */
/* A chunked weight: rank >= 2, no zero axis, a chunk that fits. */
static int
kh5_check_chunk(const struct kh5_weight *wt, const char *lname,
    struct wb_err *err)
{
	uint64_t bytes = sizeof(float);
	int d;

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
	return wb_err_set(err, WB_E_USAGE, "layer '%.*s' weight '%.*s': "
	    "chunks are written raw, little-endian hosts only", KH5_SHOW,
	    lname, KH5_SHOW, wt->path);
#endif
	if (wt->ndim < 2 || wt->chunk > wt->shape[wt->ndim - 1])
		goto bad;
	for (d = 0; d < wt->ndim; d++) {
		uint64_t n = d == wt->ndim - 1 ? wt->chunk : wt->shape[d];

		if (wt->shape[d] == 0 || n > KH5_CHUNK_MAX / bytes)
			goto bad;
		bytes *= n;
	}
	return 0;
bad:
	return wb_err_set(err, WB_E_USAGE, "layer '%.*s' weight '%.*s': "
	    "cannot store it in chunks of %llu", KH5_SHOW, lname, KH5_SHOW,
	    wt->path, (unsigned long long)wt->chunk);
}

static int
kh5_check_layers(const struct kh5_layer *layers, size_t nlayers,
    size_t *total, struct wb_err *err)
{
	struct kh5_node *nodes = NULL;
	const struct kh5_weight *wt;
	size_t i, j, k, nw = 0, nn = 0, plen;
	uint64_t nelem;
	int d, rc = 0;

	*total = 0;
	if (nlayers > 0 && layers == NULL) {
		rc = wb_err_set(err, WB_E_INTERNAL, "kh5: layers is NULL");
		goto out;
	}
	if (nlayers > KH5_MAX_LAYERS) {
		rc = wb_err_set(err, WB_E_LIMIT,
		    "%zu layers, more than the limit of %d", nlayers,
		    KH5_MAX_LAYERS);
		goto out;
	}
	for (i = 0; i < nlayers; i++) {
		if ((rc = kh5_check_name(layers[i].name, "layer name", i,
		    err)) != 0)
			goto out;
		if (layers[i].nweights > KH5_MAX_WEIGHTS - nw) {
			rc = wb_err_set(err, WB_E_LIMIT,
			    "more than %d weights in one file",
			    KH5_MAX_WEIGHTS);
			goto out;
		}
		nw += layers[i].nweights;
		if (layers[i].nweights > 0 && layers[i].w == NULL) {
			rc = wb_err_set(err, WB_E_INTERNAL,
			    "kh5: layer '%.*s' has no weight array", KH5_SHOW,
			    layers[i].name);
			goto out;
		}
		for (j = 0; j < layers[i].nweights; j++) {
			wt = &layers[i].w[j];
			if ((rc = kh5_check_name(wt->path, "weight path", i,
			    err)) != 0)
				goto out;
			if (wt->ndim < 0 || wt->ndim > KH5_MAX_DIMS ||
			    (wt->ndim > 0 && wt->shape == NULL)) {
				rc = wb_err_set(err, WB_E_USAGE,
				    "layer '%.*s' weight '%.*s': bad rank %d",
				    KH5_SHOW, layers[i].name, KH5_SHOW,
				    wt->path, wt->ndim);
				goto out;
			}
			/*
			 * Elements times 4 bytes must fit a size_t buffer.
			 * Zero dimensions are skipped so that a zero-size
			 * tensor cannot hide huge others (its row size is
			 * still computed).
			 */
			nelem = 1;
			for (d = 0; d < wt->ndim; d++) {
				if (wt->shape[d] == 0)
					continue;
				if (nelem > SIZE_MAX / 4 / wt->shape[d]) {
					rc = wb_err_set(err, WB_E_LIMIT,
					    "layer '%.*s' weight '%.*s': shape "
					    "too large", KH5_SHOW,
					    layers[i].name, KH5_SHOW, wt->path);
					goto out;
				}
				nelem *= wt->shape[d];
			}
			if (wt->chunk > 0 &&
			    (rc = kh5_check_chunk(wt, layers[i].name, err)) != 0)
				goto out;
		}
	}

	/* One node per layer group and per dataset; KH5_MAX_* bound nn. */
	if ((nodes = calloc(nlayers + nw + 1, sizeof(*nodes))) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "kh5: out of memory");
		goto out;
	}
	for (i = 0; i < nlayers; i++) {
		if ((nodes[nn].path = strdup(layers[i].name)) == NULL) {
			rc = wb_err_set(err, WB_E_NOMEM, "kh5: out of memory");
			goto out;
		}
		nodes[nn++].is_dataset = 0;
		for (j = 0; j < layers[i].nweights; j++) {
			nodes[nn].path = kh5_join(layers[i].name,
			    layers[i].w[j].path);
			if (nodes[nn].path == NULL) {
				rc = wb_err_set(err, WB_E_NOMEM,
				    "kh5: out of memory");
				goto out;
			}
			nodes[nn++].is_dataset = 1;
		}
	}
	qsort(nodes, nn, sizeof(*nodes), kh5_node_cmp);
	for (k = 0; k + 1 < nn; k++) {
		plen = strlen(nodes[k].path);
		if (strcmp(nodes[k].path, nodes[k + 1].path) == 0) {
			rc = wb_err_set(err, WB_E_USAGE,
			    "'%.*s' is named twice (duplicate layer or weight)",
			    KH5_SHOW, nodes[k].path);
			goto out;
		}
		if (nodes[k].is_dataset &&
		    strncmp(nodes[k].path, nodes[k + 1].path, plen) == 0 &&
		    nodes[k + 1].path[plen] == '/') {
			rc = wb_err_set(err, WB_E_USAGE,
			    "'%.*s' is a weight but '%.*s' needs it to be a "
			    "group", KH5_SHOW, nodes[k].path, KH5_SHOW,
			    nodes[k + 1].path);
			goto out;
		}
	}
	*total = nw;
out:
	if (nodes != NULL)
		for (k = 0; k < nn; k++)
			free(nodes[k].path);
	free(nodes);
	return rc;
}

/*
 * Open group `path` below loc, creating it and any missing parents.  Unlike
 * H5Gcreate2 with an intermediate-group lcpl, this accepts a group that
 * already exists: Keras 3 layer "layers/seq" may come after the parent of
 * "layers/seq/layers/dense" was made.  The tree check in kh5_check_layers()
 * guarantees no dataset is in the way.
 */
static hid_t
kh5_group(hid_t loc, const char *path, hid_t gcpl)
{
	char *buf = NULL, *p, c;
	htri_t ex;
	hid_t g = H5I_INVALID_HID, ng;

	if ((buf = strdup(path)) == NULL)
		goto out;
	for (p = buf; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		c = *p;
		*p = '\0';
		if ((ex = H5Lexists(loc, buf, H5P_DEFAULT)) < 0)
			goto out;
		if (ex == 0) {
			ng = H5Gcreate2(loc, buf, H5P_DEFAULT, gcpl,
			    H5P_DEFAULT);
			if (ng >= 0 && c == '\0') {
				g = ng;	/* the group asked for: keep it open */
				goto out;
			}
			if (ng < 0 || H5Gclose(ng) < 0)
				goto out;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	g = H5Gopen2(loc, path, H5P_DEFAULT);
out:
	free(buf);
	return g;
}

/* Write a fixed-length NULLPAD string array attribute (numpy S<n>). */
static herr_t
kh5_attr_fixed(hid_t obj, const char *aname, const char *const *items,
    size_t n, size_t width, int utf8)
{
	hid_t type = H5I_INVALID_HID, space = H5I_INVALID_HID;
	hid_t attr = H5I_INVALID_HID;
	hsize_t dim = n;
	char *buf = NULL;
	herr_t rc = -1;
	size_t i;

	/* n * width <= KH5_ATTR_LIMIT by construction in kh5_attr_names(). */
	if ((buf = calloc(n, width)) == NULL)
		goto out;
	for (i = 0; i < n; i++)
		memcpy(buf + i * width, items[i], strlen(items[i]));
	if ((type = H5Tcopy(H5T_C_S1)) < 0 ||
	    H5Tset_size(type, width) < 0 ||
	    H5Tset_strpad(type, H5T_STR_NULLPAD) < 0 ||
	    H5Tset_cset(type, utf8 ? H5T_CSET_UTF8 : H5T_CSET_ASCII) < 0)
		goto out;
	if ((space = H5Screate_simple(1, &dim, NULL)) < 0)
		goto out;
	if ((attr = H5Acreate2(obj, aname, type, space, H5P_DEFAULT,
	    H5P_DEFAULT)) < 0)
		goto out;
	if (H5Awrite(attr, type, buf) < 0)
		goto out;
	rc = 0;
out:
	if (attr >= 0 && H5Aclose(attr) < 0)
		rc = -1;
	if (space >= 0)
		H5Sclose(space);
	if (type >= 0)
		H5Tclose(type);
	free(buf);
	return rc;
}

/*
 * Write the string list `aname` the way Keras's
 * save_attributes_to_hdf5_group() does: numpy's nbytes is n * longest; over
 * KH5_ATTR_LIMIT the list is split into aname0, aname1, ... with numpy's
 * array_split rule (the first n % k chunks get one extra item) and the
 * smallest k whose largest chunk fits.  An empty list becomes what h5py
 * writes for np.asarray([]): an empty float64 array.
 */
static int
kh5_attr_names(hid_t obj, const char *aname, const char *const *items,
    size_t n, const char *where, struct wb_err *err)
{
	hid_t space = H5I_INVALID_HID, attr = H5I_INVALID_HID;
	hsize_t zero = 0;
	size_t i, len, width = 1, per, k, c, base, extra, at, cnt;
	char cname[64];
	int utf8 = 0, rc = 0;
	const unsigned char *p;

	if (n == 0) {
		if ((space = H5Screate_simple(1, &zero, NULL)) < 0 ||
		    (attr = H5Acreate2(obj, aname, H5T_IEEE_F64LE, space,
		    H5P_DEFAULT, H5P_DEFAULT)) < 0) {
			rc = KH5_FAIL(err, WB_E_OUTPUT,
			    "cannot write empty attribute '%s' on '%.*s'",
			    aname, KH5_SHOW, where);
		}
		goto out;
	}
	for (i = 0; i < n; i++) {
		/* kh5_check_name() capped each at KH5_MAX_NAME < the limit. */
		if ((len = strlen(items[i])) > width)
			width = len;
		for (p = (const unsigned char *)items[i]; *p != '\0'; p++)
			if (*p >= 0x80)
				utf8 = 1;
	}
	if (n <= KH5_ATTR_LIMIT / width) {
		if (kh5_attr_fixed(obj, aname, items, n, width, utf8) < 0)
			rc = KH5_FAIL(err, WB_E_OUTPUT,
			    "cannot write attribute '%s' on '%.*s'", aname,
			    KH5_SHOW, where);
		goto out;
	}
	per = KH5_ATTR_LIMIT / width;
	k = n / per + (n % per != 0);
	base = n / k;
	extra = n % k;
	for (c = 0, at = 0; c < k; c++) {
		cnt = base + (c < extra);
		snprintf(cname, sizeof(cname), "%s%zu", aname, c);
		if (kh5_attr_fixed(obj, cname, items + at, cnt, width,
		    utf8) < 0) {
			rc = KH5_FAIL(err, WB_E_OUTPUT,
			    "cannot write attribute '%s' on '%.*s'", cname,
			    KH5_SHOW, where);
			goto out;
		}
		at += cnt;
	}
out:
	if (attr >= 0 && H5Aclose(attr) < 0)
		rc = KH5_FAIL(err, WB_E_OUTPUT,
		    "closing attribute '%s' on '%.*s'", aname, KH5_SHOW, where);
	if (space >= 0)
		H5Sclose(space);
	return rc;
}

/* A scalar variable-length ASCII string attribute, as h5py writes bytes. */
static int
kh5_attr_scalar(hid_t obj, const char *aname, const char *value,
    struct wb_err *err)
{
	hid_t type = H5I_INVALID_HID, space = H5I_INVALID_HID;
	hid_t attr = H5I_INVALID_HID;
	int rc = 0;

	if ((type = H5Tcopy(H5T_C_S1)) < 0 ||
	    H5Tset_size(type, H5T_VARIABLE) < 0 ||
	    H5Tset_cset(type, H5T_CSET_ASCII) < 0 ||
	    (space = H5Screate(H5S_SCALAR)) < 0 ||
	    (attr = H5Acreate2(obj, aname, type, space, H5P_DEFAULT,
	    H5P_DEFAULT)) < 0 ||
	    H5Awrite(attr, type, &value) < 0) {
		rc = KH5_FAIL(err, WB_E_OUTPUT,
		    "cannot write root attribute '%s'", aname);
		goto out;
	}
out:
	if (attr >= 0 && H5Aclose(attr) < 0)
		rc = KH5_FAIL(err, WB_E_OUTPUT,
		    "closing root attribute '%s'", aname);
	if (space >= 0)
		H5Sclose(space);
	if (type >= 0)
		H5Tclose(type);
	return rc;
}

static int
kh5_check_meta(const struct kh5_meta *meta, const char **backend,
    const char **version, struct wb_err *err)
{
	*backend = KH5_DEF_BACKEND;
	*version = KH5_DEF_VERSION;
	if (meta != NULL && meta->backend != NULL)
		*backend = meta->backend;
	if (meta != NULL && meta->keras_version != NULL)
		*version = meta->keras_version;
	if (strlen(*backend) > KH5_MAX_NAME || strlen(*version) > KH5_MAX_NAME)
		return wb_err_set(err, WB_E_LIMIT,
		    "backend or keras_version longer than %d bytes",
		    KH5_MAX_NAME);
	return 0;
}

/* Close every id the writer holds; the first failure sets err. */
static int
kh5_writer_free(struct kh5_writer *w, struct wb_err *err)
{
	size_t k;
	int rc = 0;

	if (w == NULL)
		return 0;
	for (k = 0; k < w->nds; k++) {
		if (w->ds[k].id >= 0 && H5Dclose(w->ds[k].id) < 0 && rc == 0)
			rc = KH5_FAIL(err, WB_E_OUTPUT,
			    "closing layer '%.*s' weight '%.*s'", KH5_SHOW,
			    w->ds[k].layer, KH5_SHOW, w->ds[k].path);
		free(w->ds[k].layer);
		free(w->ds[k].path);
		free(w->ds[k].caddr);
		free(w->ds[k].ccrc);
		free(w->ds[k].cstate);
	}
	if (w->rawfd >= 0 && close(w->rawfd) != 0 && rc == 0)
		rc = wb_err_set(err, WB_E_IO, "closing the weight file: %s",
		    strerror(errno));
	if (w->dfd >= 0 && close(w->dfd) != 0 && rc == 0)
		rc = wb_err_set(err, WB_E_IO, "closing the weight file: %s",
		    strerror(errno));
	if (w->file >= 0 && H5Fclose(w->file) < 0 && rc == 0)
		rc = KH5_FAIL(err, WB_E_OUTPUT, "closing the weight file");
	while (w->nrb > 0)
		free(w->rb[--w->nrb]);
	pthread_mutex_destroy(&w->mu);
	pthread_mutex_destroy(&w->iomu);
	free(w->ds);
	free(w->first);
	free(w->count);
	free(w);
	return rc;
}

/*
 * Where each chunk of a chunked dataset just created went.  Allocated at
 * creation in chunk order, so the places do not depend on the order the
 * chunks are written in.
 */
static int
kh5_chunk_places(struct kh5_dset *ds, const struct kh5_weight *wt,
    struct wb_err *err)
{
	hsize_t off[KH5_MAX_DIMS] = { 0 }, size;
	haddr_t a;
	unsigned mask;
	uint64_t i, last = wt->shape[wt->ndim - 1];

	ds->addr = KH5_NOADDR;
	ds->chunk = wt->chunk;
	ds->nchunks = (last + wt->chunk - 1) / wt->chunk;
	ds->cbytes = ds->nelem / last * wt->chunk * sizeof(float);
	ds->caddr = calloc(ds->nchunks, sizeof(*ds->caddr));
	ds->ccrc = calloc(ds->nchunks, sizeof(*ds->ccrc));
	ds->cstate = calloc(ds->nchunks, sizeof(*ds->cstate));
	if (ds->caddr == NULL || ds->ccrc == NULL || ds->cstate == NULL)
		return wb_err_set(err, WB_E_NOMEM, "kh5: out of memory");
	for (i = 0; i < ds->nchunks; i++) {
		off[wt->ndim - 1] = i * wt->chunk;
		if (H5Dget_chunk_info_by_coord(ds->id, off, &mask, &a,
		    &size) < 0 || a == HADDR_UNDEF || mask != 0 ||
		    size != ds->cbytes)
			return KH5_FAIL(err, WB_E_OUTPUT, "layer '%.*s' weight "
			    "'%.*s': chunk %llu has no place in the file",
			    KH5_SHOW, ds->layer, KH5_SHOW, ds->path,
			    (unsigned long long)i);
		ds->caddr[i] = (uint64_t)a;
	}
	return 0;
}

/* Create weight k (layer li, weight wi) as a dataset below group g. */
static int
kh5_dataset(struct kh5_writer *w, size_t k, hid_t g, const char *name,
    const char *lname, const struct kh5_weight *wt, hid_t lcpl, hid_t dcpl,
    struct wb_err *err)
{
	struct kh5_dset *ds = &w->ds[k];
	hid_t space = H5I_INVALID_HID, cdcpl = H5I_INVALID_HID;
	int d, rc = 0;

	ds->layer = strdup(lname);
	ds->path = strdup(wt->path);
	if (ds->layer == NULL || ds->path == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "kh5: out of memory");
		goto out;
	}
	ds->ndim = wt->ndim;
	ds->nelem = 1;
	for (d = 0; d < wt->ndim; d++) {
		ds->dims[d] = wt->shape[d];
		ds->nelem *= wt->shape[d];	/* checked in kh5_check_layers */
	}
	ds->rows = wt->ndim > 0 ? wt->shape[0] : 1;
	ds->row_elems = 1;
	for (d = 1; d < wt->ndim; d++)
		ds->row_elems *= wt->shape[d];
	if (wt->ndim == 0)
		space = H5Screate(H5S_SCALAR);
	else
		space = H5Screate_simple(wt->ndim, ds->dims, NULL);
	if (space < 0) {
		rc = KH5_FAIL(err, WB_E_OUTPUT,
		    "layer '%.*s' weight '%.*s': cannot make its dataspace",
		    KH5_SHOW, lname, KH5_SHOW, wt->path);
		goto out;
	}
	if (wt->chunk > 0) {
		hsize_t cd[KH5_MAX_DIMS];

		for (d = 0; d < wt->ndim; d++)
			cd[d] = d == wt->ndim - 1 ? wt->chunk : wt->shape[d];
		if ((cdcpl = H5Pcopy(dcpl)) < 0 ||
		    H5Pset_chunk(cdcpl, wt->ndim, cd) < 0) {
			rc = KH5_FAIL(err, WB_E_OUTPUT, "layer '%.*s' weight "
			    "'%.*s': cannot set up its chunks", KH5_SHOW,
			    lname, KH5_SHOW, wt->path);
			goto out;
		}
	}
	if ((ds->id = H5Dcreate2(g, name, H5T_IEEE_F32LE, space, lcpl,
	    cdcpl >= 0 ? cdcpl : dcpl, H5P_DEFAULT)) < 0) {
		rc = KH5_FAIL(err, WB_E_OUTPUT,
		    "layer '%.*s' weight '%.*s': cannot create the dataset",
		    KH5_SHOW, lname, KH5_SHOW, wt->path);
		goto out;
	}
	/* Allocated at creation: its bytes have a fixed place in the file. */
	if (wt->chunk > 0) {
		if ((rc = kh5_chunk_places(ds, wt, err)) != 0)
			goto out;
	} else {
		haddr_t a = H5Dget_offset(ds->id);

		ds->addr = a == HADDR_UNDEF ? KH5_NOADDR : (uint64_t)a;
	}
	/*
	 * An open dataset costs kilobytes of library state; with tens of
	 * thousands of small tensors that is hundreds of megabytes.  Close it
	 * now (its space is allocated) and reopen it when it is written.
	 */
	if (H5Dclose(ds->id) < 0) {
		ds->id = H5I_INVALID_HID;
		rc = KH5_FAIL(err, WB_E_OUTPUT,
		    "layer '%.*s' weight '%.*s': cannot close the dataset",
		    KH5_SHOW, lname, KH5_SHOW, wt->path);
		goto out;
	}
	ds->id = H5I_INVALID_HID;
out:
	if (cdcpl >= 0)
		H5Pclose(cdcpl);
	if (space >= 0)
		H5Sclose(space);
	return rc;
}

/*
 * Bound the metadata cache.  Its default grows to hold every object
 * header touched, which for tens of thousands of small tensors is a few
 * hundred megabytes; we visit each object once or twice, so a small cache
 * costs nothing.  A fixed 256 KiB is even faster than a bigger one
 * (measured on 20,000 tensors: creating 0.33 s and checking 0.29 s, where
 * 2-8 MiB took 0.40-0.45 s and 0.42-0.48 s, and 28 MB more memory).
 */
static herr_t
kh5_small_cache(hid_t fapl)
{
	H5AC_cache_config_t c;

	memset(&c, 0, sizeof(c));
	c.version = H5AC__CURR_CACHE_CONFIG_VERSION;
	if (H5Pget_mdc_config(fapl, &c) < 0)
		return -1;
	c.set_initial_size = 1;
	c.initial_size = KH5_MDC_SIZE;
	c.min_size = KH5_MDC_SIZE;
	c.max_size = KH5_MDC_SIZE;
	return H5Pset_mdc_config(fapl, &c);
}

/*
 * Reserve the space the tensors will take before anything else is
 * written, so a disk too small fails at once, naming the size, instead of
 * after the tensors are read and converted, and HDF5's own writes at close
 * do not run out of it (a failed close leaves a file id in HDF5's table).
 * The file holds at least that many bytes, so nothing stays allocated past
 * its end, and reserving before HDF5 writes any metadata keeps the space
 * in a few extents.  File systems without fallocate(2) just go on.
 */
static int
kh5_reserve(int fd, const struct kh5_layer *layers, size_t nlayers,
    struct wb_err *err)
{
	uint64_t total = 0, n;
	size_t i, j;
	int d;

	for (i = 0; i < nlayers; i++)
		for (j = 0; j < layers[i].nweights; j++) {
			const struct kh5_weight *wt = &layers[i].w[j];

			/* Each fits a size_t: checked in kh5_check_layers. */
			n = sizeof(float);
			for (d = 0; d < wt->ndim; d++)
				n *= wt->shape[d];
			if (n > (uint64_t)INT64_MAX - total)
				return 0;	/* no file is that big */
			total += n;
		}
	if (total == 0 || fallocate(fd, FALLOC_FL_KEEP_SIZE, 0,
	    (off_t)total) == 0 || errno == EOPNOTSUPP || errno == ENOSYS ||
	    errno == EINVAL)
		return 0;
	return wb_err_set(err, WB_E_IO, "the weight file needs at least %llu "
	    "bytes: %s", (unsigned long long)total, strerror(errno));
}

static int
kh5_create_locked(const char *path, enum kh5_format fmt,
    const struct kh5_layer *layers, size_t nlayers,
    const struct kh5_meta *meta, struct kh5_writer **out, struct wb_err *err)
{
	struct kh5_writer *w = NULL;
	hid_t fapl = H5I_INVALID_HID, lcpl = H5I_INVALID_HID;
	hid_t gcpl = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
	hid_t g = H5I_INVALID_HID, pg = H5I_INVALID_HID;
	const char **names = NULL;
	char *pname = NULL;
	const char *backend, *version;
	size_t total, i, j, k, maxw = 0;
	int rc = 0;

	*out = NULL;
	if (path == NULL || (fmt != KH5_LEGACY && fmt != KH5_KERAS3)) {
		rc = wb_err_set(err, WB_E_INTERNAL, "kh5: bad path or format");
		goto out;
	}
	if ((rc = kh5_check_layers(layers, nlayers, &total, err)) != 0)
		goto out;
	if ((rc = kh5_check_meta(meta, &backend, &version, err)) != 0)
		goto out;
	for (i = 0; i < nlayers; i++)
		if (layers[i].nweights > maxw)
			maxw = layers[i].nweights;

	if ((w = calloc(1, sizeof(*w))) != NULL) {
		w->file = H5I_INVALID_HID;
		w->rawfd = -1;
		w->dfd = -1;
		pthread_mutex_init(&w->mu, NULL);
		pthread_mutex_init(&w->iomu, NULL);
	}
	if (w == NULL ||
	    (w->first = calloc(nlayers + 1, sizeof(*w->first))) == NULL ||
	    (w->count = calloc(nlayers + 1, sizeof(*w->count))) == NULL ||
	    (w->ds = calloc(total + 1, sizeof(*w->ds))) == NULL ||
	    (names = calloc((nlayers > maxw ? nlayers : maxw) + 1,
	    sizeof(*names))) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "kh5: out of memory");
		goto out;
	}
	w->file = H5I_INVALID_HID;
	w->fmt = fmt;
	w->nlayers = nlayers;
	w->nds = total;
	for (k = 0; k < total; k++)
		w->ds[k].id = H5I_INVALID_HID;

	/*
	 * STRONG close: even after a failure, H5Fclose releases every object
	 * still open in the file, so a long-running daemon leaks nothing.
	 * Timestamps off: identical input, identical bytes (datasets would
	 * carry them otherwise; version-1 group headers never do, so the
	 * intermediate groups lcpl creates for "conv1/kernel:0" are fine).
	 * Space is allocated when each dataset is created, in layout order,
	 * so the file's bytes do not depend on the order tensors are
	 * written in (the converter writes from several threads); nothing
	 * is pre-filled, since every byte is written exactly once.
	 */
	if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 ||
	    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
	    kh5_small_cache(fapl) < 0 ||
	    H5Pset_alignment(fapl, KH5_DIRECT_MIN, KH5_DIRECT_ALIGN) < 0 ||
	    (lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0 ||
	    H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
	    (gcpl = H5Pcreate(H5P_GROUP_CREATE)) < 0 ||
	    H5Pset_obj_track_times(gcpl, 0) < 0 ||
	    (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 ||
	    H5Pset_obj_track_times(dcpl, 0) < 0 ||
	    H5Pset_layout(dcpl, H5D_CONTIGUOUS) < 0 ||
	    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 ||
	    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0) {
		rc = KH5_FAIL(err, WB_E_OUTPUT,
		    "cannot set up HDF5 property lists");
		goto out;
	}
	if ((w->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT,
	    fapl)) < 0) {
		rc = KH5_FAIL(err, WB_E_OUTPUT, "cannot create '%.*s'",
		    KH5_SHOW, path);
		goto out;
	}
	if ((w->rawfd = open(path, O_RDWR | O_CLOEXEC)) < 0) {
		rc = wb_err_set(err, WB_E_IO, "cannot open '%.*s' for data: "
		    "%s", KH5_SHOW, path, strerror(errno));
		goto out;
	}
	/* Not every file system does O_DIRECT; then all writes are buffered. */
	w->dfd = open(path, O_RDWR | O_CLOEXEC | O_DIRECT);
	if ((rc = kh5_reserve(w->rawfd, layers, nlayers, err)) != 0)
		goto out;

	if (fmt == KH5_LEGACY) {
		for (i = 0; i < nlayers; i++)
			names[i] = layers[i].name;
		if ((rc = kh5_attr_names(w->file, "layer_names", names,
		    nlayers, "/", err)) != 0 ||
		    (rc = kh5_attr_scalar(w->file, "backend", backend,
		    err)) != 0 ||
		    (rc = kh5_attr_scalar(w->file, "keras_version", version,
		    err)) != 0)
			goto out;
	} else {
		/* The model's own variables; Keras 3 expects the group. */
		if ((g = kh5_group(w->file, "vars", gcpl)) < 0 ||
		    H5Gclose(g) < 0) {
			g = H5I_INVALID_HID;
			rc = KH5_FAIL(err, WB_E_OUTPUT,
			    "cannot create the root 'vars' group");
			goto out;
		}
		g = H5I_INVALID_HID;
	}

	for (i = 0, k = 0; i < nlayers; i++) {
		w->first[i] = k;
		w->count[i] = layers[i].nweights;
		if ((g = kh5_group(w->file, layers[i].name, gcpl)) < 0) {
			rc = KH5_FAIL(err, WB_E_OUTPUT,
			    "layer '%.*s': cannot create its group", KH5_SHOW,
			    layers[i].name);
			goto out;
		}
		if (fmt == KH5_LEGACY) {
			for (j = 0; j < layers[i].nweights; j++)
				names[j] = layers[i].w[j].path;
			if ((rc = kh5_attr_names(g, "weight_names", names,
			    layers[i].nweights, layers[i].name, err)) != 0)
				goto out;
		}
		for (j = 0; j < layers[i].nweights; j++, k++) {
			const char *wp = layers[i].w[j].path;
			const char *leaf = strrchr(wp, '/');

			/*
			 * "conv1/kernel:0": make and keep the inner group once
			 * for the weights that share it, and create each
			 * dataset in it by its last name.
			 */
			if (leaf != NULL && (pg < 0 || strncmp(wp, pname,
			    (size_t)(leaf - wp)) != 0 ||
			    pname[leaf - wp] != '\0')) {
				if (pg >= 0 && H5Gclose(pg) < 0) {
					pg = H5I_INVALID_HID;
					rc = KH5_FAIL(err, WB_E_OUTPUT, "layer "
					    "'%.*s': closing a group", KH5_SHOW,
					    layers[i].name);
					goto out;
				}
				free(pname);
				pg = H5I_INVALID_HID;
				if ((pname = strndup(wp, (size_t)(leaf - wp))) ==
				    NULL) {
					rc = wb_err_set(err, WB_E_NOMEM,
					    "kh5: out of memory");
					goto out;
				}
				if ((pg = kh5_group(g, pname, gcpl)) < 0) {
					rc = KH5_FAIL(err, WB_E_OUTPUT, "layer "
					    "'%.*s' weight '%.*s': cannot create "
					    "its group", KH5_SHOW,
					    layers[i].name, KH5_SHOW, wp);
					goto out;
				}
			}
			if ((rc = kh5_dataset(w, k, leaf != NULL ? pg : g,
			    leaf != NULL ? leaf + 1 : wp, layers[i].name,
			    &layers[i].w[j], lcpl, dcpl, err)) != 0)
				goto out;
		}
		if (pg >= 0 && H5Gclose(pg) < 0) {
			pg = H5I_INVALID_HID;
			rc = KH5_FAIL(err, WB_E_OUTPUT, "layer '%.*s': closing "
			    "a group", KH5_SHOW, layers[i].name);
			goto out;
		}
		pg = H5I_INVALID_HID;
		free(pname);
		pname = NULL;
		if (H5Gclose(g) < 0) {
			g = H5I_INVALID_HID;
			rc = KH5_FAIL(err, WB_E_OUTPUT,
			    "layer '%.*s': closing its group", KH5_SHOW,
			    layers[i].name);
			goto out;
		}
		g = H5I_INVALID_HID;
	}
	*out = w;
	w = NULL;
out:
	if (pg >= 0)
		H5Gclose(pg);
	free(pname);
	if (g >= 0)
		H5Gclose(g);
	if (dcpl >= 0)
		H5Pclose(dcpl);
	if (gcpl >= 0)
		H5Pclose(gcpl);
	if (lcpl >= 0)
		H5Pclose(lcpl);
	if (fapl >= 0)
		H5Pclose(fapl);
	free(names);
	kh5_writer_free(w, NULL);
	return rc;
}

int
kh5_create(const char *path, enum kh5_format fmt,
    const struct kh5_layer *layers, size_t nlayers,
    const struct kh5_meta *meta, struct kh5_writer **out, struct wb_err *err)
{
	int rc;

	if (out == NULL)
		return wb_err_set(err, WB_E_INTERNAL, "kh5: out is NULL");
	*out = NULL;
	if ((rc = kh5_enter(err)) != 0)
		return rc;
	rc = kh5_create_locked(path, fmt, layers, nlayers, meta, out, err);
	kh5_leave();
	return rc;
}

/* Find dataset (layer, weight) of w or set err. */
/*
 * Tensor bytes go straight to their place in the file with pwrite(2):
 * every dataset is contiguous, unfiltered little-endian float32 whose
 * space was allocated when it was created, so HDF5 has nothing to add,
 * and writes from several threads need no library lock.  (On a big-endian
 * host the bytes would need swapping; there HDF5 writes them.)
 */
static int
kh5_pwrite_fd(int fd, const struct kh5_dset *ds, uint64_t off,
    const char *p, uint64_t len, struct wb_err *err)
{
	while (len > 0) {
		size_t n = len > (1u << 30) ? (1u << 30) : (size_t)len;
		ssize_t got = pwrite(fd, p, n, (off_t)off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return wb_err_set(err, WB_E_IO, "layer '%.*s' weight "
			    "'%.*s': writing the data failed: %s", KH5_SHOW,
			    ds->layer, KH5_SHOW, ds->path,
			    got < 0 ? strerror(errno) : "short write");
		p += got;
		off += (uint64_t)got;
		len -= (uint64_t)got;
	}
	return 0;
}

/*
 * Buffered writes go one at a time: writes to one file serialise on its
 * inode lock anyway, and contending for it costs more than the wait
 * (measured: two threads writing were slower than one).  Direct writes
 * wait on the disk, not the lock, so they run side by side.
 */
static int
kh5_pwrite_buffered(struct kh5_writer *w, const struct kh5_dset *ds,
    uint64_t off, const char *p, uint64_t len, struct wb_err *err)
{
	int rc;

	if (len == 0)
		return 0;
	pthread_mutex_lock(&w->iomu);
	rc = kh5_pwrite_fd(w->rawfd, ds, off, p, len, err);
	pthread_mutex_unlock(&w->iomu);
	return rc;
}

/* A read-back buffer from the writer's pool (or a new one), and back. */
static char *
kh5_rb_get(struct kh5_writer *w)
{
	void *p = NULL;

	pthread_mutex_lock(&w->mu);
	if (w->nrb > 0)
		p = w->rb[--w->nrb];
	pthread_mutex_unlock(&w->mu);
	if (p == NULL && posix_memalign(&p, KH5_DIRECT_ALIGN,
	    KH5_RAW_BLOCK) != 0)
		p = NULL;
	return p;
}

static void
kh5_rb_put(struct kh5_writer *w, char *p)
{
	pthread_mutex_lock(&w->mu);
	if (w->nrb < KH5_RB_MAX) {
		w->rb[w->nrb++] = p;
		p = NULL;
	}
	pthread_mutex_unlock(&w->mu);
	free(p);
}

/*
 * Read back what a direct write just put at [off, off + len) and compare
 * it with the source: the aligned middle with O_DIRECT (what the disk now
 * holds), the ragged ends from the page cache.  This is the read-back
 * check of kh5_close_verify() done while the data is at hand and the disk
 * is otherwise idle (converting is CPU-bound), instead of one more pass.
 */
static int
kh5_readback(struct kh5_writer *w, struct kh5_dset *ds, uint64_t off,
    const char *p, uint64_t len, uint64_t head, uint64_t body,
    struct wb_err *err)
{
	uint64_t pos = 0, n, got;
	char *buf;
	int fd, rc = 0;

	if ((buf = kh5_rb_get(w)) == NULL)
		return wb_err_set(err, WB_E_NOMEM, "kh5: out of memory");
	while (pos < len) {
		if (pos < head) {
			n = head - pos;
			fd = w->rawfd;
		} else if (pos < head + body) {
			n = head + body - pos;
			fd = w->dfd;
		} else {
			n = len - pos;
			fd = w->rawfd;
		}
		if (n > KH5_RAW_BLOCK)
			n = KH5_RAW_BLOCK;
		if (kh5_pread_fd(fd, buf, off + pos, n, &got) != 0) {
			rc = wb_err_set(err, WB_E_IO, "verify: layer '%.*s' "
			    "weight '%.*s': reading it back failed: %s",
			    KH5_SHOW, ds->layer, KH5_SHOW, ds->path,
			    strerror(errno));
			goto out;
		}
		if (got != n || memcmp(buf, p + pos, (size_t)n) != 0) {
			rc = wb_err_set(err, WB_E_OUTPUT, "verify: layer '%.*s' "
			    "weight '%.*s': the file does not hold what was "
			    "written (bytes %llu..%llu)", KH5_SHOW, ds->layer,
			    KH5_SHOW, ds->path, (unsigned long long)pos,
			    (unsigned long long)(pos + n));
			goto out;
		}
		pos += n;
	}
	pthread_mutex_lock(&w->mu);
	ds->checked += len;
	pthread_mutex_unlock(&w->mu);
out:
	kh5_rb_put(w, buf);
	return rc;
}

static int
kh5_pwrite(struct kh5_writer *w, struct kh5_dset *ds, uint64_t off,
    const void *data, uint64_t len, int *readback, struct wb_err *err)
{
	const char *p = data;
	uint64_t head, body, a = KH5_DIRECT_ALIGN;
	int rc;

	if (readback != NULL)
		*readback = 0;
	/* The direct part must be aligned in memory and in the file alike. */
	head = (a - off % a) % a;
	if (w->dfd < 0 || len < KH5_DIRECT_MIN || head >= len ||
	    ((uintptr_t)p + head) % a != 0)
		return kh5_pwrite_buffered(w, ds, off, p, len, err);
	body = (len - head) & ~(a - 1);
	if ((rc = kh5_pwrite_buffered(w, ds, off, p, head, err)) != 0)
		return rc;
	if ((rc = kh5_pwrite_fd(w->dfd, ds, off + head, p + head, body,
	    err)) != 0 ||
	    (rc = kh5_pwrite_buffered(w, ds, off + head + body, p + head +
	    body, len - head - body, err)) != 0)
		return rc;
	if ((rc = kh5_readback(w, ds, off, p, len, head, body, err)) != 0)
		return rc;
	if (readback != NULL)
		*readback = 1;
	return 0;
}

static int
kh5_raw_ok(const struct kh5_dset *ds)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return ds->addr != KH5_NOADDR;
#else
	return 0;
#endif
}

/* Open a dataset for writing (once), by its path from the file root. */
static int
kh5_ds_open(struct kh5_writer *w, struct kh5_dset *ds, struct wb_err *err)
{
	char *full;
	int rc = 0;

	if (ds->id >= 0)
		return 0;
	if ((full = kh5_join(ds->layer, ds->path)) == NULL)
		return wb_err_set(err, WB_E_NOMEM, "kh5: out of memory");
	if ((ds->id = H5Dopen2(w->file, full, H5P_DEFAULT)) < 0)
		rc = KH5_FAIL(err, WB_E_OUTPUT, "layer '%.*s' weight '%.*s': "
		    "cannot open the dataset", KH5_SHOW, ds->layer, KH5_SHOW,
		    ds->path);
	free(full);
	return rc;
}

/* Close it once every row is written. */
static int
kh5_ds_done(struct kh5_dset *ds, struct wb_err *err)
{
	hid_t id = ds->id;

	if (ds->rows_done < ds->rows || id < 0)
		return 0;
	ds->id = H5I_INVALID_HID;
	if (H5Dclose(id) < 0)
		return KH5_FAIL(err, WB_E_OUTPUT, "layer '%.*s' weight '%.*s': "
		    "closing the dataset failed", KH5_SHOW, ds->layer,
		    KH5_SHOW, ds->path);
	return 0;
}

static struct kh5_dset *
kh5_lookup(struct kh5_writer *w, size_t layer, size_t weight,
    struct wb_err *err)
{
	if (w == NULL) {
		wb_err_set(err, WB_E_INTERNAL, "kh5: writer is NULL");
		return NULL;
	}
	if (layer >= w->nlayers || weight >= w->count[layer]) {
		wb_err_set(err, WB_E_INTERNAL,
		    "kh5: no weight #%zu in layer #%zu", weight, layer);
		return NULL;
	}
	return &w->ds[w->first[layer] + weight];
}

void
kh5_through_cache(struct kh5_writer *w)
{
	if (w != NULL && w->dfd >= 0) {
		close(w->dfd);
		w->dfd = -1;
	}
}

int
kh5_write(struct kh5_writer *w, size_t layer, size_t weight,
    const float *data, struct wb_err *err)
{
	static const float none;
	struct kh5_dset *ds;
	int rc;

	if ((ds = kh5_lookup(w, layer, weight, err)) == NULL)
		return WB_E_INTERNAL;
	if (data != NULL && kh5_raw_ok(ds)) {
		if ((rc = kh5_pwrite(w, ds, ds->addr, data,
		    ds->nelem * sizeof(float), NULL, err)) != 0)
			return rc;
		pthread_mutex_lock(&w->mu);
		ds->rows_done = ds->rows;
		pthread_mutex_unlock(&w->mu);
		return 0;
	}
	if ((rc = kh5_enter(err)) != 0)
		return rc;
	if (data == NULL && ds->nelem > 0) {
		rc = wb_err_set(err, WB_E_INTERNAL,
		    "kh5: layer '%.*s' weight '%.*s': no data", KH5_SHOW,
		    ds->layer, KH5_SHOW, ds->path);
		goto out;
	}
	if ((rc = kh5_ds_open(w, ds, err)) != 0)
		goto out;
	/* HDF5 wants a buffer even when a zero-size tensor selects nothing. */
	if (H5Dwrite(ds->id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
	    data != NULL ? data : &none) < 0) {
		rc = KH5_FAIL(err, WB_E_OUTPUT,
		    "layer '%.*s' weight '%.*s': writing the data failed",
		    KH5_SHOW, ds->layer, KH5_SHOW, ds->path);
		goto out;
	}
	ds->rows_done = ds->rows;
	rc = kh5_ds_done(ds, err);
out:
	kh5_leave();
	return rc;
}

int
kh5_write_rows(struct kh5_writer *w, size_t layer, size_t weight,
    uint64_t row0, uint64_t nrows, const float *data, struct wb_err *err)
{
	struct kh5_dset *ds;
	hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
	hsize_t start[KH5_MAX_DIMS], count[KH5_MAX_DIMS], mdim;
	int d, rc;

	if ((ds = kh5_lookup(w, layer, weight, err)) == NULL)
		return WB_E_INTERNAL;
	if (data != NULL && kh5_raw_ok(ds) && ds->ndim > 0 &&
	    row0 <= ds->rows && nrows <= ds->rows - row0) {
		if ((rc = kh5_pwrite(w, ds, ds->addr + row0 * ds->row_elems *
		    sizeof(float), data, nrows * ds->row_elems * sizeof(float),
		    NULL, err)) != 0)
			return rc;
		pthread_mutex_lock(&w->mu);
		ds->rows_done += nrows;
		if (ds->rows_done > ds->rows)
			ds->rows_done = ds->rows;
		pthread_mutex_unlock(&w->mu);
		return 0;
	}
	if ((rc = kh5_enter(err)) != 0)
		return rc;
	if (ds->ndim == 0 || row0 > ds->rows || nrows > ds->rows - row0) {
		rc = wb_err_set(err, WB_E_INTERNAL,
		    "kh5: layer '%.*s' weight '%.*s': rows %llu+%llu outside "
		    "its leading dimension %llu", KH5_SHOW, ds->layer,
		    KH5_SHOW, ds->path, (unsigned long long)row0,
		    (unsigned long long)nrows,
		    (unsigned long long)(ds->ndim > 0 ? ds->rows : 0));
		goto out;
	}
	if (nrows == 0)
		goto out;
	if (ds->row_elems == 0)
		goto done;	/* nothing to store; rows still count */
	if (data == NULL) {
		rc = wb_err_set(err, WB_E_INTERNAL,
		    "kh5: layer '%.*s' weight '%.*s': no data", KH5_SHOW,
		    ds->layer, KH5_SHOW, ds->path);
		goto out;
	}
	start[0] = row0;
	count[0] = nrows;
	for (d = 1; d < ds->ndim; d++) {
		start[d] = 0;
		count[d] = ds->dims[d];
	}
	mdim = nrows * ds->row_elems;	/* <= nelem, which fits */
	if ((rc = kh5_ds_open(w, ds, err)) != 0)
		goto out;
	if ((fspace = H5Dget_space(ds->id)) < 0 ||
	    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count,
	    NULL) < 0 ||
	    (mspace = H5Screate_simple(1, &mdim, NULL)) < 0 ||
	    H5Dwrite(ds->id, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT,
	    data) < 0) {
		rc = KH5_FAIL(err, WB_E_OUTPUT,
		    "layer '%.*s' weight '%.*s': writing rows %llu+%llu failed",
		    KH5_SHOW, ds->layer, KH5_SHOW, ds->path,
		    (unsigned long long)row0, (unsigned long long)nrows);
		goto out;
	}
done:
	ds->rows_done += nrows;
	if (ds->rows_done > ds->rows)
		ds->rows_done = ds->rows;
	rc = kh5_ds_done(ds, err);
out:
	if (mspace >= 0)
		H5Sclose(mspace);
	if (fspace >= 0)
		H5Sclose(fspace);
	kh5_leave();
	return rc;
}

int
kh5_write_chunk(struct kh5_writer *w, size_t layer, size_t weight,
    uint64_t index, const float *data, struct wb_err *err)
{
	struct kh5_dset *ds;
	uint64_t crc = 0;
	int rc, rb;

	if ((ds = kh5_lookup(w, layer, weight, err)) == NULL)
		return WB_E_INTERNAL;
	if (ds->chunk == 0 || index >= ds->nchunks || data == NULL)
		return wb_err_set(err, WB_E_INTERNAL, "kh5: layer '%.*s' "
		    "weight '%.*s': no chunk %llu", KH5_SHOW, ds->layer,
		    KH5_SHOW, ds->path, (unsigned long long)index);
	if ((rc = kh5_pwrite(w, ds, ds->caddr[index], data, ds->cbytes, &rb,
	    err)) != 0)
		return rc;
	/* Not read back from the disk: remember what it should hold. */
	if (!rb)
		crc = kh5_crc64(0, data, (size_t)ds->cbytes);
	pthread_mutex_lock(&w->mu);
	if (ds->cstate[index] == KH5_C_NONE)
		ds->cdone++;
	ds->cstate[index] = rb ? KH5_C_READBACK : KH5_C_WRITTEN;
	ds->ccrc[index] = crc;
	if (ds->cdone == ds->nchunks)
		ds->rows_done = ds->rows;
	pthread_mutex_unlock(&w->mu);
	return 0;
}

int
kh5_read_rows(struct kh5_writer *w, size_t layer, size_t weight,
    uint64_t row0, uint64_t nrows, float *data, struct wb_err *err)
{
	struct kh5_dset *ds;
	uint64_t last, m, c, i, r, got = 0, len, done;
	float *tmp = NULL;
	int rc = 0;

	if ((ds = kh5_lookup(w, layer, weight, err)) == NULL)
		return WB_E_INTERNAL;
	pthread_mutex_lock(&w->mu);
	done = ds->cdone;
	pthread_mutex_unlock(&w->mu);
	if (ds->chunk == 0 || done < ds->nchunks || row0 > ds->rows ||
	    nrows > ds->rows - row0)
		return wb_err_set(err, WB_E_INTERNAL, "kh5: layer '%.*s' weight "
		    "'%.*s': cannot read rows %llu+%llu", KH5_SHOW, ds->layer,
		    KH5_SHOW, ds->path, (unsigned long long)row0,
		    (unsigned long long)nrows);
	if (nrows == 0)
		return 0;
	last = ds->dims[ds->ndim - 1];
	m = ds->row_elems / last;	/* runs of the last axis per row */
	c = ds->chunk;
	len = nrows * m * c * sizeof(float);
	if ((tmp = malloc((size_t)len)) == NULL)
		return wb_err_set(err, WB_E_NOMEM, "kh5: out of memory");
	for (i = 0; i < ds->nchunks; i++) {
		uint64_t cols = last - i * c < c ? last - i * c : c;

		if (kh5_pread_fd(w->rawfd, (char *)tmp, ds->caddr[i] + row0 *
		    m * c * sizeof(float), len, &got) != 0) {
			rc = wb_err_set(err, WB_E_IO, "layer '%.*s' weight "
			    "'%.*s': reading it back failed: %s", KH5_SHOW,
			    ds->layer, KH5_SHOW, ds->path, strerror(errno));
			goto out;
		}
		if (got != len) {
			rc = wb_err_set(err, WB_E_OUTPUT, "layer '%.*s' weight "
			    "'%.*s': chunk %llu ends past the end of the file",
			    KH5_SHOW, ds->layer, KH5_SHOW, ds->path,
			    (unsigned long long)i);
			goto out;
		}
		for (r = 0; r < nrows * m; r++)
			memcpy(data + r * last + i * c, tmp + r * c,
			    (size_t)cols * sizeof(float));
	}
out:
	free(tmp);
	return rc;
}

int
kh5_close(struct kh5_writer *w, struct wb_err *err)
{
	size_t k;
	int rc, frc;

	if (w == NULL)
		return 0;
	if ((rc = kh5_enter(err)) != 0)
		return rc;	/* cannot happen once kh5_create succeeded */
	for (k = 0; k < w->nds; k++)
		if (w->ds[k].rows_done < w->ds[k].rows) {
			rc = wb_err_set(err, WB_E_INTERNAL,
			    "kh5: layer '%.*s' weight '%.*s' was not fully "
			    "written (%llu of %llu rows)", KH5_SHOW,
			    w->ds[k].layer, KH5_SHOW, w->ds[k].path,
			    (unsigned long long)w->ds[k].rows_done,
			    (unsigned long long)w->ds[k].rows);
			break;
		}
	frc = kh5_writer_free(w, err);
	if (rc == 0)
		rc = frc;
	kh5_leave();
	return rc;
}

/*
 * Verification.
 */

/*
 * Read one string-list attribute (fixed-length, as we write it) and compare
 * its items with want[*at ..]; *at advances past them.
 */
static int
kh5_verify_attr(hid_t obj, const char *aname, const char *const *want,
    size_t n, size_t *at, const char *where, struct wb_err *err)
{
	hid_t attr = H5I_INVALID_HID, type = H5I_INVALID_HID;
	hid_t space = H5I_INVALID_HID;
	hssize_t npoints;
	size_t m, width, i, len;
	char *buf = NULL;
	int rc = 0;

	if ((attr = H5Aopen(obj, aname, H5P_DEFAULT)) < 0 ||
	    (space = H5Aget_space(attr)) < 0 ||
	    (type = H5Aget_type(attr)) < 0 ||
	    (npoints = H5Sget_simple_extent_npoints(space)) < 0) {
		rc = KH5_FAIL(err, WB_E_OUTPUT,
		    "verify: group '%.*s': cannot read attribute '%s'",
		    KH5_SHOW, where, aname);
		goto out;
	}
	if (H5Sget_simple_extent_ndims(space) != 1) {
		rc = wb_err_set(err, WB_E_OUTPUT,
		    "verify: group '%.*s': attribute '%s' is not a 1-D array",
		    KH5_SHOW, where, aname);
		goto out;
	}
	m = (size_t)npoints;
	if (m > n - *at) {
		rc = wb_err_set(err, WB_E_OUTPUT,
		    "verify: group '%.*s': attribute '%s' holds more names "
		    "than the %zu written", KH5_SHOW, where, aname, n);
		goto out;
	}
	if (m == 0)
		goto out;
	if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) != 0 ||
	    (width = H5Tget_size(type)) == 0 || width > KH5_ATTR_LIMIT / m) {
		rc = wb_err_set(err, WB_E_OUTPUT,
		    "verify: group '%.*s': attribute '%s' is not a "
		    "fixed-length string array within %d bytes", KH5_SHOW,
		    where, aname, KH5_ATTR_LIMIT);
		goto out;
	}
	if ((buf = calloc(m, width)) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "kh5: out of memory");
		goto out;
	}
	if (H5Aread(attr, type, buf) < 0) {
		rc = KH5_FAIL(err, WB_E_OUTPUT,
		    "verify: group '%.*s': cannot read attribute '%s'",
		    KH5_SHOW, where, aname);
		goto out;
	}
	for (i = 0; i < m; i++, (*at)++) {
		len = strnlen(buf + i * width, width);
		if (len != strlen(want[*at]) ||
		    memcmp(buf + i * width, want[*at], len) != 0) {
			rc = wb_err_set(err, WB_E_OUTPUT,
			    "verify: group '%.*s': attribute '%s' item %zu is "
			    "'%.*s', expected '%.*s'", KH5_SHOW, where, aname, i,
			    (int)(len < KH5_SHOW ? len : KH5_SHOW),
			    buf + i * width, KH5_SHOW, want[*at]);
			goto out;
		}
	}
out:
	free(buf);
	if (type >= 0)
		H5Tclose(type);
	if (space >= 0)
		H5Sclose(space);
	if (attr >= 0)
		H5Aclose(attr);
	return rc;
}

/* Check the list `aname` (or its chunks aname0, aname1, ...) equals want. */
static int
kh5_verify_names(hid_t obj, const char *aname, const char *const *want,
    size_t n, const char *where, struct wb_err *err)
{
	char cname[64];
	size_t at = 0, c;
	htri_t ex;
	int rc = 0;

	if ((ex = H5Aexists(obj, aname)) < 0) {
		rc = KH5_FAIL(err, WB_E_OUTPUT,
		    "verify: group '%.*s': attribute '%s'", KH5_SHOW, where,
		    aname);
		goto out;
	}
	if (ex > 0) {
		if ((rc = kh5_verify_attr(obj, aname, want, n, &at, where,
		    err)) != 0)
			goto out;
	} else {
		/* Chunks are never empty, so there are at most n of them. */
		for (c = 0; c <= n; c++) {
			snprintf(cname, sizeof(cname), "%s%zu", aname, c);
			if ((ex = H5Aexists(obj, cname)) < 0) {
				rc = KH5_FAIL(err, WB_E_OUTPUT,
				    "verify: group '%.*s': attribute '%s'",
				    KH5_SHOW, where, cname);
				goto out;
			}
			if (ex == 0)
				break;
			if ((rc = kh5_verify_attr(obj, cname, want, n, &at,
			    where, err)) != 0)
				goto out;
		}
		if (c == 0) {
			rc = wb_err_set(err, WB_E_OUTPUT,
			    "verify: group '%.*s': attribute '%s' is missing",
			    KH5_SHOW, where, aname);
			goto out;
		}
	}
	if (at != n)
		rc = wb_err_set(err, WB_E_OUTPUT,
		    "verify: group '%.*s': attribute '%s' holds %zu names, "
		    "expected %zu", KH5_SHOW, where, aname, at, n);
out:
	return rc;
}

/*
 * Hash dataset d (dims/ndim already checked) in C order, reading slabs of at
 * most KH5_VERIFY_BLOCK bytes.
 */
/* Verification digests: SHA-256, or the much cheaper CRC-64. */
struct kh5_digest {
	int		 crc;		/* 1: crc64 below; 0: SHA-256 */
	uint64_t	 crc64;
	uint8_t		 sha[SHA256_LEN];
};

static int
kh5_digest_update(struct sha256_ctx *ctx, struct kh5_digest *dg,
    const void *buf, size_t len)
{
	if (dg->crc) {
		dg->crc64 = crc64_ecma_refl(dg->crc64, buf, (uint64_t)len);
		return 0;
	}
	return sha256_update(ctx, buf, len);
}

/*
 * The data pass of the check.  The metadata pass (under the HDF5 lock)
 * checks names, types and shapes and, for each dataset stored as one
 * contiguous run of little-endian float32 (all of ours), notes the run's
 * address from the re-opened file's own metadata.  The runs are then read
 * straight from the file, outside the lock and on several threads: their
 * bytes are exactly what H5Dread would return.  The aligned middle of a
 * big run is read with O_DIRECT (what the disk holds; no page cache
 * filled for it).
 */
struct kh5_vitem {
	const struct kh5_wrote *wr;	/* how it was written, or NULL */
	uint64_t	 addr;
	uint64_t	 len;		/* 0: nothing left for the data pass */
	const char	*lname;
	const struct kh5_weight *wt;
	const uint8_t	*want_sha;	/* NULL: compare want_crc */
	uint64_t	 want_crc;
};

struct kh5_vdata {
	const char	*path;
	struct kh5_vitem *items;
	size_t		 n;
	pthread_mutex_t	 mu;
	size_t		 next;
	size_t		 fail_at;	/* item of the first failure found */
	struct wb_err	 err;
};

struct kh5_reader {
	int		 fd;		/* buffered */
	int		 dfd;		/* O_DIRECT, or -1 */
	char		*buf;		/* KH5_RAW_BLOCK bytes, page-aligned */
};

/* Whether dataset d's bytes can be read raw; if so fill vi's range. */
static int
kh5_defer(hid_t d, const struct kh5_weight *wt, struct kh5_vitem *vi)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	uint64_t total = 1;
	haddr_t addr;
	int k;

	if (vi == NULL)
		return 0;
	for (k = 0; k < wt->ndim; k++)
		total *= wt->shape[k];	/* checked by kh5_check_layers */
	if (total == 0 || (addr = H5Dget_offset(d)) == HADDR_UNDEF ||
	    total > (UINT64_MAX - (uint64_t)addr) / sizeof(float))
		return 0;
	vi->addr = (uint64_t)addr;
	vi->len = total * sizeof(float);
	return 1;
#else
	return 0;
#endif
}

static int
kh5_pread_fd(int fd, char *p, uint64_t off, uint64_t len, uint64_t *got)
{
	*got = 0;
	while (*got < len) {
		ssize_t n = pread(fd, p + *got, (size_t)(len - *got),
		    (off_t)(off + *got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		*got += (uint64_t)n;
	}
	return 0;
}

/*
 * Whether the first byte at pos is in the page cache (preadv2 with
 * RWF_NOWAIT never waits for the disk).  Data written through the cache
 * is read back from it: an O_DIRECT read would first flush it and then
 * read the disk.  The probe reads one byte into buf.
 */
static int
kh5_cached(int fd, char *buf, uint64_t pos)
{
	struct iovec iov = { buf, 1 };

	return preadv2(fd, &iov, 1, (off_t)pos, RWF_NOWAIT) == 1;
}

/* Digest the len bytes at file offset addr. */
static int
kh5_hash_raw(struct kh5_reader *rd, uint64_t addr, uint64_t len,
    const char *full, struct kh5_digest *dg, struct sha256_ctx *ctx,
    struct wb_err *err)
{
	const uint64_t a = KH5_DIRECT_ALIGN;
	uint64_t pos = addr, end = addr + len;

	while (pos < end) {
		uint64_t lo, n, got, skip;
		int fd;

		if (rd->dfd >= 0 && len >= KH5_DIRECT_MIN &&
		    !kh5_cached(rd->fd, rd->buf, pos)) {
			/* Whole aligned blocks around [pos, end). */
			lo = pos & ~(a - 1);
			n = ((end + a - 1) & ~(a - 1)) - lo;
			fd = rd->dfd;
		} else {
			lo = pos;
			n = end - pos;
			fd = rd->fd;
		}
		if (n > KH5_RAW_BLOCK)
			n = KH5_RAW_BLOCK;
		skip = pos - lo;
		if (kh5_pread_fd(fd, rd->buf, lo, n, &got) != 0)
			return wb_err_set(err, WB_E_IO, "verify: dataset "
			    "'%.*s': reading it back failed: %s", KH5_SHOW,
			    full, strerror(errno));
		if (got > n)
			got = n;
		if (got <= skip)
			return wb_err_set(err, WB_E_OUTPUT, "verify: dataset "
			    "'%.*s' ends past the end of the file", KH5_SHOW,
			    full);
		got -= skip;
		if (got > end - pos)
			got = end - pos;
		if (kh5_digest_update(ctx, dg, rd->buf + skip, (size_t)got) !=
		    0)
			return wb_err_set(err, WB_E_INTERNAL,
			    "verify: hashing '%.*s'", KH5_SHOW, full);
		pos += got;
	}
	return 0;
}

/* The chunks of a chunked dataset not read back when written. */
static int
kh5_check_chunks_raw(struct kh5_reader *rd, const struct kh5_wrote *wr,
    const char *full, struct wb_err *err)
{
	struct kh5_digest got = { 1, 0, { 0 } };
	uint64_t i;
	int rc;

	for (i = 0; i < wr->nchunks; i++) {
		if (wr->cstate[i] == KH5_C_READBACK)
			continue;
		got.crc64 = 0;
		if ((rc = kh5_hash_raw(rd, wr->caddr[i], wr->cbytes, full,
		    &got, NULL, err)) != 0)
			return rc;
		if (got.crc64 != wr->ccrc[i])
			return wb_err_set(err, WB_E_OUTPUT, "verify: dataset "
			    "'%.*s' chunk %llu CRC-64 is %016llx, expected "
			    "%016llx: the file does not hold what was written",
			    KH5_SHOW, full, (unsigned long long)i,
			    (unsigned long long)got.crc64,
			    (unsigned long long)wr->ccrc[i]);
	}
	return 0;
}

static int
kh5_check_item(struct kh5_reader *rd, const struct kh5_vitem *vi,
    struct wb_err *err)
{
	struct sha256_ctx *ctx = NULL;
	struct kh5_digest got = { vi->want_sha == NULL, 0, { 0 } };
	char *full = NULL, hg[SHA256_HEXLEN + 1], hw[SHA256_HEXLEN + 1];
	int rc = 0;

	if ((full = kh5_join(vi->lname, vi->wt->path)) == NULL ||
	    (!got.crc && sha256_new(&ctx) != 0)) {
		rc = wb_err_set(err, WB_E_NOMEM, "verify: out of memory");
		goto out;
	}
	if (vi->wr != NULL && vi->wr->chunk > 0) {
		rc = kh5_check_chunks_raw(rd, vi->wr, full, err);
		goto out;
	}
	if ((rc = kh5_hash_raw(rd, vi->addr, vi->len, full, &got, ctx,
	    err)) != 0)
		goto out;
	if (got.crc && got.crc64 != vi->want_crc) {
		rc = wb_err_set(err, WB_E_OUTPUT,
		    "verify: dataset '%.*s' CRC-64 is %016llx, expected "
		    "%016llx: the file does not hold what was written",
		    KH5_SHOW, full, (unsigned long long)got.crc64,
		    (unsigned long long)vi->want_crc);
		goto out;
	}
	if (!got.crc) {
		if (sha256_final(ctx, got.sha) != 0) {
			rc = wb_err_set(err, WB_E_INTERNAL,
			    "verify: hashing '%.*s'", KH5_SHOW, full);
			goto out;
		}
		if (memcmp(got.sha, vi->want_sha, SHA256_LEN) != 0) {
			sha256_hex(got.sha, hg);
			sha256_hex(vi->want_sha, hw);
			rc = wb_err_set(err, WB_E_OUTPUT,
			    "verify: dataset '%.*s' SHA-256 is %.16s..., "
			    "expected %.16s...", KH5_SHOW, full, hg, hw);
		}
	}
out:
	sha256_free(ctx);
	free(full);
	return rc;
}

static void *
kh5_data_worker(void *arg)
{
	struct kh5_vdata *vd = arg;
	struct kh5_reader rd = { -1, -1, NULL };
	struct wb_err err = { 0 };
	size_t i = SIZE_MAX;
	int rc = 0;

	if ((rd.fd = open(vd->path, O_RDONLY | O_CLOEXEC)) < 0) {
		rc = wb_err_set(&err, WB_E_IO, "verify: cannot open '%.*s': "
		    "%s", KH5_SHOW, vd->path, strerror(errno));
		goto out;
	}
	/* Not every file system does O_DIRECT; then everything is buffered. */
	rd.dfd = open(vd->path, O_RDONLY | O_CLOEXEC | O_DIRECT);
	if (posix_memalign((void **)&rd.buf, KH5_DIRECT_ALIGN,
	    KH5_RAW_BLOCK) != 0) {
		rd.buf = NULL;
		rc = wb_err_set(&err, WB_E_NOMEM, "verify: out of memory");
		goto out;
	}
	for (;;) {
		pthread_mutex_lock(&vd->mu);
		i = vd->fail_at == SIZE_MAX ? vd->next++ : vd->n;
		pthread_mutex_unlock(&vd->mu);
		if (i >= vd->n)
			break;
		if (vd->items[i].len > 0 &&
		    (rc = kh5_check_item(&rd, &vd->items[i], &err)) != 0)
			break;
	}
out:
	if (rc != 0) {
		pthread_mutex_lock(&vd->mu);
		if (i == SIZE_MAX)
			i = 0;
		if (vd->fail_at == SIZE_MAX || i < vd->fail_at) {
			vd->fail_at = i;
			vd->err = err;
		}
		pthread_mutex_unlock(&vd->mu);
	}
	if (rd.fd >= 0)
		close(rd.fd);
	if (rd.dfd >= 0)
		close(rd.dfd);
	free(rd.buf);
	return NULL;
}

/* Check the deferred runs on up to `threads` threads (0: one per CPU). */
static int
kh5_verify_data(const char *path, struct kh5_vitem *items, size_t n,
    int threads, struct wb_err *err)
{
	struct kh5_vdata vd;
	pthread_t tid[KH5_VERIFY_THREADS];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int i, nt, started = 0;

	memset(&vd, 0, sizeof(vd));
	vd.path = path;
	vd.items = items;
	vd.n = n;
	vd.fail_at = SIZE_MAX;
	pthread_mutex_init(&vd.mu, NULL);
	nt = threads > 0 ? threads : ncpu > 0 ? (int)ncpu : 1;
	if (nt > KH5_VERIFY_THREADS)
		nt = KH5_VERIFY_THREADS;
	if ((size_t)nt > n)
		nt = n > 0 ? (int)n : 1;
	for (i = 1; i < nt; i++) {
		if (pthread_create(&tid[i], NULL, kh5_data_worker, &vd) != 0)
			break;	/* fewer threads: still correct */
		started++;
	}
	kh5_data_worker(&vd);
	for (i = 1; i <= started; i++)
		pthread_join(tid[i], NULL);
	pthread_mutex_destroy(&vd.mu);
	if (vd.fail_at != SIZE_MAX) {
		*err = vd.err;
		return vd.err.code ? vd.err.code : WB_E_OUTPUT;
	}
	return 0;
}

static int
kh5_hash_dataset(hid_t d, int ndim, const hsize_t *dims, const char *full,
    struct kh5_digest *dg, struct wb_err *err)
{
	struct sha256_ctx *ctx = NULL;
	hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
	hsize_t inner[KH5_MAX_DIMS], idx[KH5_MAX_DIMS];
	hsize_t start[KH5_MAX_DIMS], count[KH5_MAX_DIMS];
	hsize_t step, pos, n, mdim, total = 1;
	float *buf = NULL;
	int a, k, rc = 0;

	dg->crc64 = 0;
	if (!dg->crc && sha256_new(&ctx) != 0) {
		rc = wb_err_set(err, WB_E_NOMEM, "verify: hashing '%.*s'",
		    KH5_SHOW, full);
		goto out;
	}
	for (k = 0; k < ndim; k++)
		total *= dims[k];
	if (total == 0)
		goto final;
	if (ndim == 0) {
		float v;

		if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL,
		    H5P_DEFAULT, &v) < 0) {
			rc = KH5_FAIL(err, WB_E_OUTPUT,
			    "verify: dataset '%.*s': read failed", KH5_SHOW,
			    full);
			goto out;
		}
		if (kh5_digest_update(ctx, dg, &v, sizeof(v)) != 0) {
			rc = wb_err_set(err, WB_E_INTERNAL,
			    "verify: hashing '%.*s'", KH5_SHOW, full);
			goto out;
		}
		goto final;
	}
	/* inner[k]: elements in one index of axis k. */
	inner[ndim - 1] = 1;
	for (k = ndim - 2; k >= 0; k--)
		inner[k] = inner[k + 1] * dims[k + 1];
	/* Split at the outermost axis a whose one index fits in a slab. */
	for (a = 0; a < ndim - 1; a++)
		if (inner[a] <= KH5_VERIFY_BLOCK / sizeof(float))
			break;
	/* inner[a] <= the slab (a == ndim - 1 gives 1), so step >= 1. */
	step = KH5_VERIFY_BLOCK / sizeof(float) / inner[a];
	if (step > dims[a])
		step = dims[a];
	if ((buf = malloc(step * inner[a] * sizeof(float))) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "verify: out of memory");
		goto out;
	}
	if ((fspace = H5Dget_space(d)) < 0) {
		rc = KH5_FAIL(err, WB_E_OUTPUT, "verify: dataset '%.*s'",
		    KH5_SHOW, full);
		goto out;
	}
	for (k = 0; k < ndim; k++) {
		idx[k] = 0;
		count[k] = k < a ? 1 : dims[k];
		start[k] = 0;
	}
	for (;;) {
		for (pos = 0; pos < dims[a]; pos += n) {
			n = dims[a] - pos < step ? dims[a] - pos : step;
			for (k = 0; k < a; k++)
				start[k] = idx[k];
			start[a] = pos;
			count[a] = n;
			mdim = n * inner[a];
			if (mspace >= 0)
				H5Sclose(mspace);
			if ((mspace = H5Screate_simple(1, &mdim, NULL)) < 0 ||
			    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start,
			    NULL, count, NULL) < 0 ||
			    H5Dread(d, H5T_NATIVE_FLOAT, mspace, fspace,
			    H5P_DEFAULT, buf) < 0) {
				rc = KH5_FAIL(err, WB_E_OUTPUT,
				    "verify: dataset '%.*s': read failed",
				    KH5_SHOW, full);
				goto out;
			}
			if (kh5_digest_update(ctx, dg, buf,
			    mdim * sizeof(float)) != 0) {
				rc = wb_err_set(err, WB_E_INTERNAL,
				    "verify: hashing '%.*s'", KH5_SHOW, full);
				goto out;
			}
		}
		/* Next index tuple over the axes before a, C order. */
		for (k = a - 1; k >= 0; k--) {
			if (++idx[k] < dims[k])
				break;
			idx[k] = 0;
		}
		if (k < 0)
			break;
	}
final:
	if (!dg->crc && sha256_final(ctx, dg->sha) != 0)
		rc = wb_err_set(err, WB_E_INTERNAL, "verify: hashing '%.*s'",
		    KH5_SHOW, full);
out:
	if (mspace >= 0)
		H5Sclose(mspace);
	if (fspace >= 0)
		H5Sclose(fspace);
	free(buf);
	sha256_free(ctx);
	return rc;
}

/*
 * A dataset written in chunks must be stored in exactly those chunks,
 * unfiltered, each where it was written.
 */
static int
kh5_check_chunks(hid_t d, const char *full, const struct kh5_weight *wt,
    const struct kh5_wrote *wr, struct wb_err *err)
{
	hid_t dcpl = H5I_INVALID_HID;
	hsize_t cd[KH5_MAX_DIMS], off[KH5_MAX_DIMS] = { 0 }, size;
	haddr_t a;
	unsigned mask;
	uint64_t i;
	int k, rc = 0;

	if ((dcpl = H5Dget_create_plist(d)) < 0) {
		rc = KH5_FAIL(err, WB_E_OUTPUT, "verify: dataset '%.*s' cannot "
		    "be inspected", KH5_SHOW, full);
		goto out;
	}
	if (H5Pget_layout(dcpl) != H5D_CHUNKED || H5Pget_nfilters(dcpl) != 0 ||
	    H5Pget_chunk(dcpl, KH5_MAX_DIMS, cd) != wt->ndim) {
		rc = wb_err_set(err, WB_E_OUTPUT, "verify: dataset '%.*s' is "
		    "not stored in the chunks it was written in", KH5_SHOW,
		    full);
		goto out;
	}
	for (k = 0; k < wt->ndim; k++)
		if (cd[k] != (k == wt->ndim - 1 ? wr->chunk : wt->shape[k])) {
			rc = wb_err_set(err, WB_E_OUTPUT, "verify: dataset "
			    "'%.*s' has chunks of another shape", KH5_SHOW,
			    full);
			goto out;
		}
	for (i = 0; i < wr->nchunks; i++) {
		off[wt->ndim - 1] = i * wr->chunk;
		if (H5Dget_chunk_info_by_coord(d, off, &mask, &a, &size) < 0 ||
		    a == HADDR_UNDEF || (uint64_t)a != wr->caddr[i] ||
		    mask != 0 || size != wr->cbytes) {
			rc = wb_err_set(err, WB_E_OUTPUT, "verify: dataset "
			    "'%.*s' chunk %llu is not where it was written",
			    KH5_SHOW, full, (unsigned long long)i);
			goto out;
		}
	}
out:
	if (dcpl >= 0)
		H5Pclose(dcpl);
	return rc;
}

/* Check one dataset's type, shape and digest. */
static int
kh5_verify_dataset(hid_t lg, const char *lname, const struct kh5_weight *wt,
    struct kh5_vitem *vi, const uint8_t *want_sha, uint64_t want_crc,
    struct wb_err *err)
{
	hid_t d = H5I_INVALID_HID, type = H5I_INVALID_HID;
	hid_t space = H5I_INVALID_HID;
	hsize_t dims[KH5_MAX_DIMS];
	struct kh5_digest got = { want_sha == NULL, 0, { 0 } };
	char *full = NULL, hg[SHA256_HEXLEN + 1], hw[SHA256_HEXLEN + 1];
	int d_ndim, k, rc = 0;

	if ((full = kh5_join(lname, wt->path)) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "verify: out of memory");
		goto out;
	}
	/* Relative to its open layer group: no second walk from the root. */
	if ((d = H5Dopen2(lg, wt->path, H5P_DEFAULT)) < 0) {
		rc = KH5_FAIL(err, WB_E_OUTPUT,
		    "verify: dataset '%.*s' is missing", KH5_SHOW, full);
		goto out;
	}
	if ((type = H5Dget_type(d)) < 0 || (space = H5Dget_space(d)) < 0) {
		rc = KH5_FAIL(err, WB_E_OUTPUT,
		    "verify: dataset '%.*s' cannot be inspected", KH5_SHOW,
		    full);
		goto out;
	}
	if (H5Tequal(type, H5T_IEEE_F32LE) <= 0) {
		rc = wb_err_set(err, WB_E_OUTPUT,
		    "verify: dataset '%.*s' is not little-endian float32",
		    KH5_SHOW, full);
		goto out;
	}
	d_ndim = H5Sget_simple_extent_ndims(space);
	if (d_ndim != wt->ndim || (wt->ndim == 0 &&
	    H5Sget_simple_extent_type(space) != H5S_SCALAR)) {
		rc = wb_err_set(err, WB_E_OUTPUT,
		    "verify: dataset '%.*s' has rank %d, expected %d",
		    KH5_SHOW, full, d_ndim, wt->ndim);
		goto out;
	}
	if (H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
		rc = KH5_FAIL(err, WB_E_OUTPUT,
		    "verify: dataset '%.*s' has no readable shape", KH5_SHOW,
		    full);
		goto out;
	}
	for (k = 0; k < wt->ndim; k++)
		if (dims[k] != wt->shape[k]) {
			rc = wb_err_set(err, WB_E_OUTPUT,
			    "verify: dataset '%.*s' axis %d is %llu, expected "
			    "%llu", KH5_SHOW, full, k,
			    (unsigned long long)dims[k],
			    (unsigned long long)wt->shape[k]);
			goto out;
		}
	if (vi != NULL && vi->wr != NULL && vi->wr->chunk > 0) {
		uint64_t i;

		if ((rc = kh5_check_chunks(d, full, wt, vi->wr, err)) != 0)
			goto out;
		vi->lname = lname;
		vi->wt = wt;
		vi->len = 0;
		for (i = 0; i < vi->wr->nchunks; i++)
			if (vi->wr->cstate[i] != KH5_C_READBACK)
				vi->len = vi->wr->cbytes;	/* data pass */
		goto out;
	}
	if (kh5_defer(d, wt, vi)) {
		vi->lname = lname;
		vi->wt = wt;
		vi->want_sha = want_sha;
		vi->want_crc = want_crc;
		if (vi->wr == NULL || vi->wr->addr == KH5_NOADDR)
			goto out;	/* checked by kh5_verify_data() */
		/* Already read back: it must be where it was written. */
		if (vi->addr != vi->wr->addr) {
			rc = wb_err_set(err, WB_E_OUTPUT,
			    "verify: dataset '%.*s' is at offset %llu of the "
			    "file, its bytes were written at %llu", KH5_SHOW,
			    full, (unsigned long long)vi->addr,
			    (unsigned long long)vi->wr->addr);
			goto out;
		}
		vi->len = 0;
		goto out;
	}
	if (vi != NULL && vi->wr != NULL && vi->wr->addr != KH5_NOADDR) {
		rc = wb_err_set(err, WB_E_OUTPUT, "verify: dataset '%.*s' has "
		    "no data where it was written", KH5_SHOW, full);
		goto out;
	}
	if ((rc = kh5_hash_dataset(d, wt->ndim, dims, full, &got, err)) != 0)
		goto out;
	if (want_sha == NULL && got.crc64 != want_crc) {
		rc = wb_err_set(err, WB_E_OUTPUT,
		    "verify: dataset '%.*s' CRC-64 is %016llx, expected "
		    "%016llx: the file does not hold what was written",
		    KH5_SHOW, full, (unsigned long long)got.crc64,
		    (unsigned long long)want_crc);
		goto out;
	}
	if (want_sha != NULL && memcmp(got.sha, want_sha, SHA256_LEN) != 0) {
		sha256_hex(got.sha, hg);
		sha256_hex(want_sha, hw);
		rc = wb_err_set(err, WB_E_OUTPUT,
		    "verify: dataset '%.*s' SHA-256 is %.16s..., expected "
		    "%.16s...", KH5_SHOW, full, hg, hw);
		goto out;
	}
out:
	if (space >= 0)
		H5Sclose(space);
	if (type >= 0)
		H5Tclose(type);
	if (d >= 0)
		H5Dclose(d);
	free(full);
	return rc;
}

static int
kh5_verify_locked(const char *path, enum kh5_format fmt,
    const struct kh5_layer *layers, size_t nlayers,
    const uint8_t (*sha)[32], const uint64_t *crc, struct kh5_vitem *items,
    struct wb_err *err)
{
	hid_t fapl = H5I_INVALID_HID, file = H5I_INVALID_HID;
	hid_t g = H5I_INVALID_HID;
	const char **names = NULL;
	size_t total, i, j, k, maxw = 0;
	htri_t ex;
	int rc = 0;

	if (path == NULL || (fmt != KH5_LEGACY && fmt != KH5_KERAS3)) {
		rc = wb_err_set(err, WB_E_INTERNAL, "kh5: bad path or format");
		goto out;
	}
	if ((rc = kh5_check_layers(layers, nlayers, &total, err)) != 0)
		goto out;
	if (total > 0 && sha == NULL && crc == NULL) {
		rc = wb_err_set(err, WB_E_INTERNAL, "kh5: no digests given");
		goto out;
	}
	for (i = 0; i < nlayers; i++)
		if (layers[i].nweights > maxw)
			maxw = layers[i].nweights;
	if ((names = calloc((nlayers > maxw ? nlayers : maxw) + 1,
	    sizeof(*names))) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "verify: out of memory");
		goto out;
	}
	if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 ||
	    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
	    kh5_small_cache(fapl) < 0) {
		rc = KH5_FAIL(err, WB_E_OUTPUT,
		    "cannot set up HDF5 property lists");
		goto out;
	}
	if ((file = H5Fopen(path, H5F_ACC_RDONLY, fapl)) < 0) {
		rc = KH5_FAIL(err, WB_E_OUTPUT, "verify: cannot open '%.*s'",
		    KH5_SHOW, path);
		goto out;
	}
	if (fmt == KH5_LEGACY) {
		for (i = 0; i < nlayers; i++)
			names[i] = layers[i].name;
		if ((rc = kh5_verify_names(file, "layer_names", names,
		    nlayers, "/", err)) != 0)
			goto out;
		/* Without it tf-keras applies Keras 1 conversions. */
		if ((ex = H5Aexists(file, "keras_version")) <= 0) {
			rc = KH5_FAIL(err, WB_E_OUTPUT,
			    "verify: root attribute 'keras_version' is "
			    "missing");
			goto out;
		}
	} else {
		if ((g = H5Gopen2(file, "vars", H5P_DEFAULT)) < 0) {
			rc = KH5_FAIL(err, WB_E_OUTPUT,
			    "verify: root group 'vars' is missing");
			goto out;
		}
		H5Gclose(g);
		g = H5I_INVALID_HID;
	}
	for (i = 0, k = 0; i < nlayers; i++) {
		if ((g = H5Gopen2(file, layers[i].name, H5P_DEFAULT)) < 0) {
			rc = KH5_FAIL(err, WB_E_OUTPUT,
			    "verify: layer group '%.*s' is missing", KH5_SHOW,
			    layers[i].name);
			goto out;
		}
		if (fmt == KH5_LEGACY) {
			for (j = 0; j < layers[i].nweights; j++)
				names[j] = layers[i].w[j].path;
			if ((rc = kh5_verify_names(g, "weight_names", names,
			    layers[i].nweights, layers[i].name, err)) != 0)
				goto out;
		}
		for (j = 0; j < layers[i].nweights; j++, k++)
			if ((rc = kh5_verify_dataset(g, layers[i].name,
			    &layers[i].w[j], &items[k], sha ? sha[k] : NULL,
			    crc ? crc[k] : 0, err)) != 0)
				goto out;
		H5Gclose(g);
		g = H5I_INVALID_HID;
	}
	if (H5Fclose(file) < 0) {
		file = H5I_INVALID_HID;
		rc = KH5_FAIL(err, WB_E_OUTPUT, "verify: closing '%.*s'",
		    KH5_SHOW, path);
		goto out;
	}
	file = H5I_INVALID_HID;
out:
	if (g >= 0)
		H5Gclose(g);
	if (file >= 0)
		H5Fclose(file);
	if (fapl >= 0)
		H5Pclose(fapl);
	free(names);
	return rc;
}

/* The metadata pass under the HDF5 lock, then the data pass without it. */
static int
kh5_verify_both(const char *path, enum kh5_format fmt,
    const struct kh5_layer *layers, size_t nlayers,
    const uint8_t (*sha)[32], const uint64_t *crc,
    const struct kh5_wrote *wrote, int threads, struct wb_err *err)
{
	struct kh5_vitem *items = NULL;
	size_t i, total = 0;
	int rc;

	for (i = 0; layers != NULL && i < nlayers; i++)
		if (layers[i].nweights > SIZE_MAX / 2 - total)
			return wb_err_set(err, WB_E_LIMIT, "verify: too many "
			    "weights");
		else
			total += layers[i].nweights;
	if ((items = calloc(total + 1, sizeof(*items))) == NULL)
		return wb_err_set(err, WB_E_NOMEM, "verify: out of memory");
	for (i = 0; i < total; i++)
		items[i].wr = wrote != NULL ? &wrote[i] : NULL;
	if ((rc = kh5_enter(err)) != 0)
		goto out;
	rc = kh5_verify_locked(path, fmt, layers, nlayers, sha, crc, items,
	    err);
	kh5_leave();
	if (rc == 0)
		rc = kh5_verify_data(path, items, total, threads, err);
out:
	free(items);
	return rc;
}

int
kh5_verify(const char *path, enum kh5_format fmt,
    const struct kh5_layer *layers, size_t nlayers,
    const uint8_t (*sha)[32], struct wb_err *err)
{
	return kh5_verify_both(path, fmt, layers, nlayers, sha, NULL, NULL, 0,
	    err);
}

int
kh5_verify_crc64(const char *path, enum kh5_format fmt,
    const struct kh5_layer *layers, size_t nlayers, const uint64_t *crc,
    int threads, struct wb_err *err)
{
	return kh5_verify_both(path, fmt, layers, nlayers, NULL, crc, NULL,
	    threads, err);
}

int
kh5_close_verify(struct kh5_writer *w, const char *path,
    const struct kh5_layer *layers, size_t nlayers, const uint64_t *crc,
    int threads, struct wb_err *err)
{
	enum kh5_format fmt;
	struct kh5_wrote *wrote = NULL;
	size_t k, nds;
	int rc;

	if (w == NULL)
		return wb_err_set(err, WB_E_INTERNAL, "kh5: writer is NULL");
	fmt = w->fmt;
	if ((wrote = calloc(w->nds + 1, sizeof(*wrote))) == NULL) {
		kh5_close(w, NULL);
		return wb_err_set(err, WB_E_NOMEM, "verify: out of memory");
	}
	nds = w->nds;
	for (k = 0; k < nds; k++) {
		struct kh5_dset *ds = &w->ds[k];

		wrote[k].addr = ds->nelem > 0 && ds->checked ==
		    ds->nelem * sizeof(float) ? ds->addr : KH5_NOADDR;
		if (ds->chunk == 0)
			continue;
		/* The chunk records outlive the writer: take them. */
		wrote[k].chunk = ds->chunk;
		wrote[k].nchunks = ds->nchunks;
		wrote[k].cbytes = ds->cbytes;
		wrote[k].caddr = ds->caddr;
		wrote[k].ccrc = ds->ccrc;
		wrote[k].cstate = ds->cstate;
		ds->caddr = ds->ccrc = NULL;
		ds->cstate = NULL;
	}
	if ((rc = kh5_close(w, err)) == 0)
		rc = kh5_verify_both(path, fmt, layers, nlayers, NULL, crc,
		    wrote, threads, err);
	for (k = 0; k < nds; k++) {
		free(wrote[k].caddr);
		free(wrote[k].ccrc);
		free(wrote[k].cstate);
	}
	free(wrote);
	return rc;
}

uint64_t
kh5_crc64(uint64_t crc, const void *buf, size_t len)
{
	return crc64_ecma_refl(crc, buf, (uint64_t)len);
}

const char *
kh5_lib_version(void)
{
	pthread_once(&kh5_once, kh5_init);
	return kh5_version;
}
