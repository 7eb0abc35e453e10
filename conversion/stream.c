/*
 * stream: tensors in, weights out, on worker threads.  See stream.h.
 *
 * Work is cut into jobs: the connected groups of tensors and the weights
 * that read them (almost always one tensor and one weight; an LSTM bias
 * joins two tensors, an attention in_proj feeds three weights).  Jobs are
 * taken in archive order by the workers, so reads stay mostly sequential,
 * except that a worker whose next job does not fit in memory beside what
 * the others hold takes a later one that does (within a short window)
 * rather than wait.
 *
 * Memory: each job declares what it needs (its decoded tensors, a decode
 * buffer, an output buffer or a slab) and waits until that fits in the
 * budget beside what the other workers hold; a worker keeps its buffers
 * from job to job (fresh pages are slow to fault in) unless a job needs
 * less than it holds by a wide margin.  The budget is 1.25 times the
 * largest tensor plus a little, so the peak stays near one copy of the
 * largest tensor however many workers run.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stream.h"

#define STREAM_SLAB_MIN		(64ULL << 20)	/* outputs this big go in slabs */
#define STREAM_SLAB_ELEMS	(2ULL << 20)	/* 8 MiB of float32 per slab */
#define STREAM_CHUNK_MIN	(64ULL << 20)	/* stored in chunks from this */
#define STREAM_CHUNK_BYTES	(8ULL << 20)	/* at most this per chunk */
#define STREAM_CHUNK_LEAST	(1ULL << 20)	/* and at least this */
#define STREAM_DIGEST_CHUNK	(256u << 10)	/* hash in cache-sized pieces */
#define STREAM_BUDGET_SLACK	(32ULL << 20)
#define STREAM_TRIM_MIN		(32ULL << 20)
#define STREAM_MAX_THREADS	64
#define STREAM_LOOKAHEAD	256	/* jobs a worker may skip over */

struct stream_job {
	int		 taken;
	size_t		 t0, nt;	/* tensors: jt[t0 .. t0+nt) */
	size_t		 w0, nw;	/* weights: jw[w0 .. w0+nw) */
	uint64_t	 need;		/* bytes of buffers it needs */
	uint64_t	 bytes;		/* source bytes, for progress */
	int		 piecewise;	/* one tensor, one chunked weight: the
					   tensor is read a chunk at a time */
};

struct stream_run {
	const struct plan *p;
	struct kh5_writer *w;
	const struct stream_opts *o;
	struct stream_weight *out;
	size_t		 nweights;
	size_t		*wlayer, *wslot;	/* weight -> (layer, index) */
	size_t		 njobs;
	struct stream_job *jobs;
	size_t		*jt, *jw;
	size_t		*tjob;		/* entry -> its job, or SIZE_MAX */

	pthread_mutex_t	 lock;
	pthread_cond_t	 cv;
	size_t		 next;		/* next job to start */
	int		 stop;
	struct wb_err	 err;		/* the first failure */
	uint64_t	 budget, held;	/* bytes of buffers held by workers */
	int		 active;	/* workers holding memory */
	int		 waiting;	/* workers waiting for memory */
	uint64_t	 done_t, done_b, total_t, total_b, written;
};

struct stream_worker {
	struct stream_run *r;
	struct npz_cursor *cur;
	struct sha256_ctx *sha;
	struct xf_scratch scratch;
	void		*raw;
	size_t		 raw_cap;
	float		*one;		/* a one-tensor job's data */
	size_t		 one_cap;	/* bytes */
	float		*slab;
	size_t		 slab_cap;	/* bytes */
	uint64_t	 account;	/* what r->held counts for us */
	struct wb_err	 err;
};

/* ---- statistics --------------------------------------------------------- */

/*
 * Lane-wise partial sums in float over short blocks (they vectorise), then
 * double across blocks.  A block with a NaN or an infinity is recounted
 * one value at a time.
 */
static void
stream_stats_add(struct stream_stats *s, const float *d, uint64_t n)
{
	enum { L = 8, B = 1024 };
	uint64_t i, j;
	int l;

	for (i = 0; i < n; i += B) {
		uint64_t m = n - i < B ? n - i : B;
		float sum[L] = { 0 }, sq[L] = { 0 }, mn[L], mx[L];
		double bs = 0, bq = 0;
		float bmn = INFINITY, bmx = -INFINITY;

		for (l = 0; l < L; l++) {
			mn[l] = INFINITY;
			mx[l] = -INFINITY;
		}
		for (j = 0; j + L <= m; j += L)
			for (l = 0; l < L; l++) {
				float v = d[i + j + (uint64_t)l];

				sum[l] += v;
				sq[l] += v * v;
				mn[l] = v < mn[l] ? v : mn[l];
				mx[l] = v > mx[l] ? v : mx[l];
			}
		for (; j < m; j++) {
			float v = d[i + j];

			sum[0] += v;
			sq[0] += v * v;
			mn[0] = v < mn[0] ? v : mn[0];
			mx[0] = v > mx[0] ? v : mx[0];
		}
		for (l = 0; l < L; l++) {
			bs += sum[l];
			bq += sq[l];
			bmn = mn[l] < bmn ? mn[l] : bmn;
			bmx = mx[l] > bmx ? mx[l] : bmx;
		}
		if (isfinite(bs) && isfinite(bq)) {
			s->sum += bs;
			s->sq += bq;
			s->fin += m;
			if (bmn < s->min)
				s->min = bmn;
			if (bmx > s->max)
				s->max = bmx;
			continue;
		}
		for (j = 0; j < m; j++) {
			double v = d[i + j];

			if (isnan(v)) {
				s->nan++;
			} else if (isinf(v)) {
				s->inf++;
			} else {
				s->sum += v;
				s->sq += v * v;
				s->fin++;
				if (v < s->min)
					s->min = v;
				if (v > s->max)
					s->max = v;
			}
		}
	}
}

json_t *
stream_stats_json(const struct stream_stats *s)
{
	double mean = s->fin ? s->sum / (double)s->fin : 0;
	double var = s->fin ? s->sq / (double)s->fin - mean * mean : 0;

	return json_pack("{s:f, s:f, s:f, s:f, s:I, s:I}",
	    "min", s->fin ? s->min : 0.0, "max", s->fin ? s->max : 0.0,
	    "mean", mean, "std", var > 0 ? sqrt(var) : 0.0,
	    "nan", (json_int_t)s->nan, "inf", (json_int_t)s->inf);
}

/* ---- errors and memory ------------------------------------------------- */

static void
stream_fail(struct stream_run *r, const struct wb_err *e)
{
	pthread_mutex_lock(&r->lock);
	if (r->err.code == WB_OK)
		r->err = *e;
	r->stop = 1;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->lock);
}

/* Buffers are kept from tensor to tensor: fresh pages cost a fault each. */
static int
stream_grow(void **buf, size_t *cap, size_t want, struct wb_err *err)
{
	void *p;

	if (want <= *cap)
		return 0;
	xf_buf_free(*buf, *cap);
	*buf = NULL;
	*cap = 0;
	if ((p = xf_buf_alloc(want)) == NULL)
		return wb_err_set(err, WB_E_NOMEM, "out of memory allocating "
		    "%zu bytes", want);
	*buf = p;
	*cap = want;
	return 0;
}

static void
stream_trim(struct stream_worker *wk)
{
	xf_buf_free(wk->raw, wk->raw_cap);
	xf_buf_free(wk->one, wk->one_cap);
	xf_buf_free(wk->slab, wk->slab_cap);
	xf_scratch_free(&wk->scratch);
	wk->raw = wk->one = wk->slab = NULL;
	wk->raw_cap = wk->one_cap = wk->slab_cap = 0;
}

static uint64_t
stream_holding(const struct stream_worker *wk)
{
	return wk->raw_cap + wk->one_cap + wk->slab_cap +
	    (wk->scratch.cap[0] + wk->scratch.cap[1]) * sizeof(float);
}

/*
 * Wait until `need` more bytes fit in the budget beside what the other
 * workers hold.  A lone worker always proceeds (the budget is at least
 * the largest job's need).  Returns 0, or 1 if the run is stopping.
 */
static int
stream_acquire(struct stream_worker *wk, uint64_t need)
{
	struct stream_run *r = wk->r;
	uint64_t mine = stream_holding(wk);
	int stop;

	/*
	 * Holding far more than this job needs while another worker waits
	 * for memory: give it back.  Otherwise keep it for the next big
	 * tensor: zeroing fresh pages costs more than the copy into them.
	 */
	pthread_mutex_lock(&r->lock);
	if (mine > STREAM_TRIM_MIN && mine > 2 * need && r->waiting > 0) {
		pthread_mutex_unlock(&r->lock);
		stream_trim(wk);
		mine = 0;
		pthread_mutex_lock(&r->lock);
	}
	r->held -= wk->account;
	wk->account = 0;
	pthread_cond_broadcast(&r->cv);	/* we may have given memory back */
	if (mine < need) {
		while (!r->stop && r->held > 0 &&
		    r->held + (need > mine ? need : mine) > r->budget) {
			if (mine > 0) {
				/* Don't sit on memory while waiting. */
				pthread_mutex_unlock(&r->lock);
				stream_trim(wk);
				mine = 0;
				pthread_mutex_lock(&r->lock);
				continue;
			}
			r->waiting++;
			pthread_cond_wait(&r->cv, &r->lock);
			r->waiting--;
		}
	}
	wk->account = need > mine ? need : mine;
	r->held += wk->account;
	stop = r->stop;		/* read under the lock: others set it */
	pthread_mutex_unlock(&r->lock);
	return stop;
}

static void
stream_release(struct stream_worker *wk)
{
	struct stream_run *r = wk->r;
	int waiting;

	/* Someone waits for memory: do not make them wait for our next job. */
	pthread_mutex_lock(&r->lock);
	waiting = r->waiting;
	pthread_mutex_unlock(&r->lock);
	if (waiting > 0)
		stream_trim(wk);
	pthread_mutex_lock(&r->lock);
	r->held -= wk->account;
	wk->account = stream_holding(wk);
	r->held += wk->account;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->lock);
}

/* ---- weights ------------------------------------------------------------ */

/* Hash, checksum and count in cache-sized pieces, one pass over the data. */
static int
stream_digest(struct stream_worker *wk, struct stream_weight *o,
    const float *d, uint64_t n)
{
	const uint8_t *b = (const uint8_t *)d;
	uint64_t len = n * sizeof(float), off;

	for (off = 0; off < len; off += STREAM_DIGEST_CHUNK) {
		size_t c = len - off < STREAM_DIGEST_CHUNK ?
		    (size_t)(len - off) : STREAM_DIGEST_CHUNK;

		if (wk->sha != NULL && sha256_update(wk->sha, b + off, c) != 0)
			return wb_err_set(&wk->err, WB_E_INTERNAL,
			    "SHA-256 failed");
		o->crc = kh5_crc64(o->crc, b + off, c);
		if (!wk->r->o->no_stats)
			stream_stats_add(&o->st, (const float *)(b + off),
			    c / sizeof(float));
	}
	return 0;
}

static void
stream_weight_begin(struct stream_weight *o)
{
	memset(o, 0, sizeof(*o));
	o->st.min = INFINITY;
	o->st.max = -INFINITY;
}

static int
stream_plain_f32(const struct npy_header *h)
{
	return h->kind == NPY_FLOAT && h->itemsize == 4 && !h->big_endian &&
	    (!h->fortran_order || h->ndim <= 1);
}

/*
 * A recipe that is reshapes around one transpose, with a big output, can
 * be written in slabs of the transposed tensor's leading axis: each slab
 * is a run of whole rows of the final shape.
 */
struct stream_slabs {
	struct xf_shape	 tin;		/* shape entering the transpose */
	const int64_t	*perm;
	uint64_t	 rows;		/* leading extent after the transpose */
	uint64_t	 row_elems;	/* elements per such row */
	uint64_t	 out_row_elems;	/* elements per row of the final shape */
	uint64_t	 per;		/* rows per slab */
};

static int
stream_slabbable(const struct plan_weight *pw, struct stream_slabs *sl)
{
	struct xf_recipe head;
	struct wb_err e = { 0 };
	uint64_t n = xf_count(&pw->out);
	int i, t = -1;

	if (pw->recipe.combine != XF_ONE || pw->nsrc != 1 ||
	    pw->out.ndim < 1 || pw->out.d[0] == 0 ||
	    n * sizeof(float) < STREAM_SLAB_MIN)
		return 0;
	for (i = 0; i < pw->recipe.nops; i++) {
		if (pw->recipe.ops[i].kind == XF_TRANSPOSE) {
			if (t >= 0)
				return 0;
			t = i;
		} else if (pw->recipe.ops[i].kind != XF_RESHAPE) {
			return 0;
		}
	}
	if (t < 0)
		return 0;
	head = pw->recipe;
	head.nops = t;
	if (xf_plan(&head, pw->in, 1, &sl->tin, &e) != 0 || sl->tin.ndim < 1)
		return 0;
	sl->perm = pw->recipe.ops[t].a;
	sl->rows = sl->tin.d[sl->perm[0]];
	if (sl->rows < 2)
		return 0;
	sl->row_elems = n / sl->rows;
	sl->out_row_elems = n / pw->out.d[0];
	if (sl->out_row_elems == 0 || sl->row_elems % sl->out_row_elems)
		return 0;
	sl->per = STREAM_SLAB_ELEMS / sl->row_elems;
	if (sl->per == 0)
		sl->per = 1;
	return 1;
}

uint64_t
stream_chunk(const struct plan *p, const struct plan_weight *pw)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	struct stream_slabs sl;
	uint64_t o, col, c;

	if (pw->out.ndim < 2 || !stream_slabbable(pw, &sl) ||
	    xf_count(&pw->out) * sizeof(float) < STREAM_CHUNK_MIN ||
	    pw->src[0] < 0 || (size_t)pw->src[0] >= p->ix->n ||
	    !stream_plain_f32(&p->ix->e[pw->src[0]].hdr))
		return 0;
	/* The axis read first must become the last: chunks are its runs. */
	o = sl.tin.d[0];
	if (sl.perm[sl.tin.ndim - 1] != 0 || o < 2 ||
	    pw->out.d[pw->out.ndim - 1] != o)
		return 0;
	col = xf_count(&pw->out) / o * sizeof(float);
	for (c = STREAM_CHUNK_BYTES / col; c > 0; c--)
		if (o % c == 0)
			break;
	if (c == 0 || c == o || c * col < STREAM_CHUNK_LEAST)
		return 0;
	return c;
#else
	(void)p;
	(void)pw;
	return 0;
#endif
}

/* Bytes of output buffer a weight needs beyond its sources. */
static uint64_t
stream_out_need(const struct plan *p, const struct plan_weight *pw)
{
	struct stream_slabs sl;
	uint64_t bytes = xf_count(&pw->out) * sizeof(float), c;
	int i, moving = pw->recipe.combine != XF_ONE;

	if ((c = stream_chunk(p, pw)) > 0)
		return 3 * (bytes / pw->out.d[pw->out.ndim - 1]) * c;
	if (stream_slabbable(pw, &sl))
		return 2 * sl.per * sl.row_elems * sizeof(float);
	for (i = 0; i < pw->recipe.nops; i++)
		moving += pw->recipe.ops[i].kind != XF_RESHAPE;
	return moving == 0 ? 0 : moving == 1 ? bytes : 2 * bytes;
}

/*
 * Slabs and chunks are written by a second thread while the next one is
 * made: two buffers, filled and written in turn, so the transposes
 * overlap the disk (big ones are written with O_DIRECT and read back).
 */
struct stream_io {
	struct kh5_writer *w;
	size_t		 li, wi;
	int		 chunks;	/* at[] are chunk indices, not rows */
	pthread_t	 tid;
	int		 started;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 full[2];
	const float	*buf[2];
	uint64_t	 at[2], nrows[2];
	int		 quit;
	int		 rc;
	struct wb_err	 err;
};

static int
stream_io_write(struct stream_io *io, int i, struct wb_err *e)
{
	if (io->chunks)
		return kh5_write_chunk(io->w, io->li, io->wi, io->at[i],
		    io->buf[i], e);
	return kh5_write_rows(io->w, io->li, io->wi, io->at[i], io->nrows[i],
	    io->buf[i], e);
}

static void *
stream_io_main(void *arg)
{
	struct stream_io *io = arg;
	struct wb_err e = { 0 };
	int i = 0, rc;

	pthread_mutex_lock(&io->mu);
	for (;;) {
		while (!io->full[i] && !io->quit)
			pthread_cond_wait(&io->cv, &io->mu);
		if (!io->full[i])
			break;
		rc = 0;
		if (io->rc == 0) {
			pthread_mutex_unlock(&io->mu);
			rc = stream_io_write(io, i, &e);
			pthread_mutex_lock(&io->mu);
		}
		if (rc != 0 && io->rc == 0) {
			io->rc = rc;
			io->err = e;
		}
		io->full[i] = 0;
		pthread_cond_broadcast(&io->cv);
		i ^= 1;
	}
	pthread_mutex_unlock(&io->mu);
	return NULL;
}

static void
stream_io_start(struct stream_io *io, struct kh5_writer *w, size_t li,
    size_t wi, int chunks)
{
	memset(io, 0, sizeof(*io));
	io->w = w;
	io->li = li;
	io->wi = wi;
	io->chunks = chunks;
	pthread_mutex_init(&io->mu, NULL);
	pthread_cond_init(&io->cv, NULL);
	io->started = pthread_create(&io->tid, NULL, stream_io_main, io) == 0;
}

/* Wait until buffer i may be filled again; the writer's failure, if any. */
static int
stream_io_wait(struct stream_io *io, int i)
{
	int rc;

	pthread_mutex_lock(&io->mu);
	while (io->full[i])
		pthread_cond_wait(&io->cv, &io->mu);
	rc = io->rc;
	pthread_mutex_unlock(&io->mu);
	return rc;
}

/* Hand buffer i over to be written (here and now, without a thread). */
static int
stream_io_put(struct stream_io *io, int i, const float *buf, uint64_t at,
    uint64_t nrows, struct wb_err *err)
{
	io->buf[i] = buf;
	io->at[i] = at;
	io->nrows[i] = nrows;
	if (!io->started)
		return stream_io_write(io, i, err);
	pthread_mutex_lock(&io->mu);
	io->full[i] = 1;
	pthread_cond_broadcast(&io->cv);
	pthread_mutex_unlock(&io->mu);
	return 0;
}

/* Let the writes finish; rc, or the writer's failure. */
static int
stream_io_stop(struct stream_io *io, int rc, struct wb_err *err)
{
	if (io->started) {
		pthread_mutex_lock(&io->mu);
		io->quit = 1;
		pthread_cond_broadcast(&io->cv);
		pthread_mutex_unlock(&io->mu);
		pthread_join(io->tid, NULL);
		if (rc == 0 && io->rc != 0) {
			*err = io->err;
			rc = io->rc;
		}
	}
	pthread_mutex_destroy(&io->mu);
	pthread_cond_destroy(&io->cv);
	return rc;
}

static int
stream_slabs_emit(struct stream_worker *wk, struct stream_weight *o,
    size_t li, size_t wi, const struct stream_slabs *sl, const float *src)
{
	struct stream_io io;
	uint64_t per = sl->per * sl->row_elems, r0, r1, n;
	int i, rc;

	if ((rc = stream_grow((void **)&wk->slab, &wk->slab_cap,
	    (size_t)(2 * per * sizeof(float)), &wk->err)) != 0)
		return rc;
	stream_io_start(&io, wk->r->w, li, wi, 0);
	for (r0 = 0, i = 0; r0 < sl->rows; r0 = r1, i ^= 1) {
		float *dst = wk->slab + (size_t)i * per;

		r1 = r0 + sl->per < sl->rows ? r0 + sl->per : sl->rows;
		if ((rc = stream_io_wait(&io, i)) != 0)
			break;
		xf_transpose_rows(src, dst, sl->tin.ndim, sl->tin.d, sl->perm,
		    r0, r1);
		n = (r1 - r0) * sl->row_elems;
		if ((rc = stream_digest(wk, o, dst, n)) != 0 ||
		    (rc = stream_io_put(&io, i, dst, r0 * sl->row_elems /
		    sl->out_row_elems, n / sl->out_row_elems, &wk->err)) != 0)
			break;
	}
	return stream_io_stop(&io, rc, &wk->err);
}

/*
 * A weight stored in chunks of its last axis (see stream_chunk()): chunk
 * j is rows [j*c, (j+1)*c) of the tensor entering the transpose,
 * transposed.  The rows come from src when the tensor is in memory, else
 * straight from the member the worker's cursor has begun, a piece at a
 * time, so a tensor of any size needs three chunks of memory.  The
 * digests and statistics are of the weight as loaders see it, in C order,
 * so they are taken afterwards from the file when anyone wants them.
 */
static int
stream_chunks_emit(struct stream_worker *wk, struct stream_weight *o,
    size_t li, size_t wi, const struct stream_slabs *sl, uint64_t c,
    const float *src)
{
	const struct plan_weight *pw = &wk->r->p->l[li].w[wi];
	struct stream_io io;
	struct xf_shape piece = sl->tin;
	uint64_t o_dim = sl->tin.d[0], per_row, cel, j, nch, r0, nr, rows, re;
	size_t need;
	int i, rc;

	per_row = xf_count(&sl->tin) / o_dim;
	cel = c * per_row;		/* elements in a chunk */
	nch = o_dim / c;
	piece.d[0] = c;
	need = (size_t)(3 * cel * sizeof(float));
	if ((rc = stream_grow((void **)&wk->slab, &wk->slab_cap, need,
	    &wk->err)) != 0)
		return rc;
	stream_io_start(&io, wk->r->w, li, wi, 1);
	for (j = 0, i = 0; j < nch; j++, i ^= 1) {
		float *dst = wk->slab + (size_t)i * cel;
		const float *in = src != NULL ? src + j * cel :
		    wk->slab + 2 * cel;

		if (src == NULL && (rc = npz_cursor_part(wk->cur, wk->slab +
		    2 * cel, (size_t)(cel * sizeof(float)), &wk->err)) != 0)
			break;
		if ((rc = stream_io_wait(&io, i)) != 0)
			break;
		xf_transpose_rows(in, dst, piece.ndim, piece.d, sl->perm, 0,
		    piece.d[sl->perm[0]]);
		if ((rc = stream_io_put(&io, i, dst, j, 0, &wk->err)) != 0)
			break;
	}
	if ((rc = stream_io_stop(&io, rc, &wk->err)) != 0)
		return rc;
	if (wk->sha == NULL && wk->r->o->no_stats)
		return 0;
	/* The weight in C order, a slab of rows at a time, from the file. */
	rows = pw->out.d[0];
	re = xf_count(&pw->out) / rows;
	nr = (3 * cel) / re;
	if (nr == 0)
		nr = 1;
	if ((rc = stream_grow((void **)&wk->slab, &wk->slab_cap,
	    (size_t)(nr * re * sizeof(float)), &wk->err)) != 0)
		return rc;
	for (r0 = 0; r0 < rows; r0 += nr) {
		uint64_t k = rows - r0 < nr ? rows - r0 : nr;

		if ((rc = kh5_read_rows(wk->r->w, li, wi, r0, k, wk->slab,
		    &wk->err)) != 0 ||
		    (rc = stream_digest(wk, o, wk->slab, k * re)) != 0)
			return rc;
	}
	return 0;
}

static int
stream_emit(struct stream_worker *wk, size_t k, float *const *src)
{
	struct stream_run *r = wk->r;
	const struct plan_weight *pw;
	struct stream_weight *o = &r->out[k];
	struct stream_slabs sl;
	struct xf_shape shape;
	const float *res;
	size_t li = r->wlayer[k], wi = r->wslot[k];
	uint64_t n, c;
	int rc;

	pw = &r->p->l[li].w[wi];
	stream_weight_begin(o);
	if (!r->o->no_sha && sha256_new(&wk->sha) != 0)
		return wb_err_set(&wk->err, WB_E_NOMEM, "out of memory");
	if ((c = stream_chunk(r->p, pw)) > 0) {
		/* stream_chunk() checked that it is slabbable: fill sl. */
		(void)stream_slabbable(pw, &sl);
		if ((rc = stream_chunks_emit(wk, o, li, wi, &sl, c,
		    src != NULL ? src[0] : NULL)) != 0)
			goto out;
		n = xf_count(&pw->out);
	} else if (stream_slabbable(pw, &sl)) {
		if ((rc = stream_slabs_emit(wk, o, li, wi, &sl, src[0])) != 0)
			goto out;
		n = xf_count(&pw->out);
	} else {
		if ((rc = xf_apply(&pw->recipe, pw->in, src, pw->nsrc,
		    &wk->scratch, &res, &shape, &wk->err)) != 0)
			goto out;
		n = xf_count(&shape);
		if ((rc = stream_digest(wk, o, res, n)) != 0 ||
		    (rc = kh5_write(r->w, li, wi, res, &wk->err)) != 0)
			goto out;
	}
	if (wk->sha != NULL && sha256_final(wk->sha, o->sha) != 0) {
		rc = wb_err_set(&wk->err, WB_E_INTERNAL, "SHA-256 failed");
		goto out;
	}
	o->done = 1;
	pthread_mutex_lock(&r->lock);
	r->written += n * sizeof(float);
	pthread_mutex_unlock(&r->lock);
out:
	sha256_free(wk->sha);
	wk->sha = NULL;
	return rc;
}

/* ---- reading ------------------------------------------------------------ */

/* Read entry e (via the cursor) as float32 into dst. */
static int
stream_load(struct stream_worker *wk, size_t e, float *dst)
{
	const struct npz_entry *en = &wk->r->p->ix->e[e];
	size_t nbytes = (size_t)en->hdr.nbytes;
	int rc;

	if (stream_plain_f32(&en->hdr))
		return npz_cursor_read(wk->cur, e, dst, nbytes, &wk->err);
	if ((rc = stream_grow(&wk->raw, &wk->raw_cap, nbytes, &wk->err)) != 0 ||
	    (rc = npz_cursor_read(wk->cur, e, wk->raw, nbytes, &wk->err)) != 0)
		return rc;
	npy_to_f32(&en->hdr, wk->raw, dst);
	return 0;
}

static int
stream_job(struct stream_worker *wk, const struct stream_job *j)
{
	struct stream_run *r = wk->r;
	const struct npz_index *ix = r->p->ix;
	float *data[XF_MAX_SOURCES * 4] = { 0 }, **many = NULL;
	float *src[XF_MAX_SOURCES];
	size_t i, k;
	int s, rc = 0;

	if (j->piecewise) {
		size_t w = r->jw[j->w0];

		if ((rc = npz_cursor_begin(wk->cur, r->jt[j->t0],
		    &wk->err)) == 0 && (rc = stream_emit(wk, w, NULL)) == 0)
			rc = npz_cursor_end(wk->cur, &wk->err);
		goto out;
	}
	if (j->nt == 1) {
		size_t e = r->jt[j->t0];
		size_t fb = (size_t)ix->e[e].hdr.nelem * sizeof(float);

		if ((rc = stream_grow((void **)&wk->one, &wk->one_cap, fb,
		    &wk->err)) != 0 || (rc = stream_load(wk, e, wk->one)) != 0)
			goto out;
		data[0] = wk->one;
		many = data;
	} else {
		many = j->nt <= sizeof(data) / sizeof(data[0]) ? data :
		    calloc(j->nt, sizeof(*many));
		if (many == NULL) {
			rc = wb_err_set(&wk->err, WB_E_NOMEM, "out of memory");
			goto out;
		}
		for (i = 0; i < j->nt; i++) {
			size_t e = r->jt[j->t0 + i];
			size_t fb = (size_t)ix->e[e].hdr.nelem * sizeof(float);

			if ((many[i] = malloc(fb ? fb : 1)) == NULL) {
				rc = wb_err_set(&wk->err, WB_E_NOMEM,
				    "out of memory");
				goto out;
			}
			if ((rc = stream_load(wk, e, many[i])) != 0)
				goto out;
		}
	}
	for (i = 0; i < j->nw; i++) {
		size_t w = r->jw[j->w0 + i];
		const struct plan_weight *pw =
		    &r->p->l[r->wlayer[w]].w[r->wslot[w]];

		for (s = 0; s < pw->nsrc; s++)
			for (k = 0; k < j->nt; k++)
				if (r->jt[j->t0 + k] == (size_t)pw->src[s])
					src[s] = many[k];
		if ((rc = stream_emit(wk, w, src)) != 0)
			goto out;
	}
out:
	if (j->nt > 1 && many != NULL) {
		for (i = 0; i < j->nt; i++)
			free(many[i]);
		if (many != data)
			free(many);
	}
	return rc;
}

/*
 * The next job for wk: the first one not taken whose memory fits beside
 * what the other workers hold, within STREAM_LOOKAHEAD jobs of the oldest
 * one not taken; that oldest one if none does (stream_acquire() then
 * waits).  NULL when every job is taken or the run is stopping.
 */
static struct stream_job *
stream_pick(struct stream_worker *wk)
{
	struct stream_run *r = wk->r;
	struct stream_job *j = NULL;
	uint64_t mine = stream_holding(wk), others;
	size_t i, end;

	pthread_mutex_lock(&r->lock);
	while (r->next < r->njobs && r->jobs[r->next].taken)
		r->next++;
	if (r->stop || r->next >= r->njobs)
		goto out;
	others = r->held - wk->account;
	end = r->njobs - r->next > STREAM_LOOKAHEAD ?
	    r->next + STREAM_LOOKAHEAD : r->njobs;
	for (i = r->next; i < end; i++) {
		uint64_t need = r->jobs[i].need;

		if (r->jobs[i].taken)
			continue;
		if (others == 0 || need <= mine ||
		    others + need <= r->budget) {
			j = &r->jobs[i];
			break;
		}
	}
	if (j == NULL)
		j = &r->jobs[r->next];
	j->taken = 1;
out:
	pthread_mutex_unlock(&r->lock);
	return j;
}

static void *
stream_worker_main(void *arg)
{
	struct stream_worker *wk = arg;
	struct stream_run *r = wk->r;
	const struct stream_opts *o = r->o;
	const struct stream_job *j;

	if (npz_cursor_open(o->npz_path, r->p->ix, o->limits, &wk->cur,
	    &wk->err) != 0) {
		stream_fail(r, &wk->err);
		return NULL;
	}
	for (;;) {
		if ((j = stream_pick(wk)) == NULL)
			break;
		if (stream_acquire(wk, j->need))
			break;
		if (stream_job(wk, j) != 0) {
			stream_fail(r, &wk->err);
			break;
		}
		stream_release(wk);
		pthread_mutex_lock(&r->lock);
		r->done_t += j->nt;
		r->done_b += j->bytes;
		if (!r->stop && o->progress != NULL &&
		    o->progress(o->progress_arg, r->done_t, r->total_t,
		    r->done_b, r->total_b) != 0) {
			wb_err_set(&r->err, WB_E_CANCELLED, "cancelled after "
			    "%llu of %llu tensors",
			    (unsigned long long)r->done_t,
			    (unsigned long long)r->total_t);
			r->stop = 1;
			pthread_cond_broadcast(&r->cv);
		}
		pthread_mutex_unlock(&r->lock);
	}
	stream_trim(wk);
	pthread_mutex_lock(&r->lock);
	r->held -= wk->account;
	wk->account = 0;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->lock);
	npz_cursor_close(wk->cur);
	wk->cur = NULL;
	return NULL;
}

/* ---- jobs --------------------------------------------------------------- */

static size_t
stream_find(size_t *parent, size_t x)
{
	while (parent[x] != x) {
		parent[x] = parent[parent[x]];
		x = parent[x];
	}
	return x;
}

/* Group entries and weights into jobs, in archive order. */
static int
stream_jobs(struct stream_run *r, struct wb_err *err)
{
	const struct plan *p = r->p;
	size_t n = p->ix->n, i, k, li, wi, nj = 0, t = 0, wpos = 0;
	size_t *parent = NULL, *jid = NULL, *cnt_t = NULL, *cnt_w = NULL;
	uint64_t largest = 0, max_need = 0;
	int s, rc = 0;

	parent = calloc(n + 1, sizeof(*parent));
	jid = calloc(n + 1, sizeof(*jid));
	r->tjob = calloc(n + 1, sizeof(*r->tjob));
	r->wlayer = calloc(r->nweights + 1, sizeof(*r->wlayer));
	r->wslot = calloc(r->nweights + 1, sizeof(*r->wslot));
	if (!parent || !jid || !r->tjob || !r->wlayer || !r->wslot) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		parent[i] = i;
		jid[i] = SIZE_MAX;
		r->tjob[i] = SIZE_MAX;
	}
	for (li = 0, k = 0; li < p->nlayers; li++)
		for (wi = 0; wi < p->l[li].nw; wi++, k++) {
			const struct plan_weight *pw = &p->l[li].w[wi];

			r->wlayer[k] = li;
			r->wslot[k] = wi;
			for (s = 1; s < pw->nsrc; s++) {
				size_t a = stream_find(parent,
				    (size_t)pw->src[0]);
				size_t b = stream_find(parent,
				    (size_t)pw->src[s]);

				if (a != b)
					parent[a > b ? a : b] = a < b ? a : b;
			}
		}
	/* One job per root with users, numbered in archive order. */
	for (i = 0; i < n; i++) {
		size_t root;

		if (p->uses[i] == 0)
			continue;
		root = stream_find(parent, i);
		if (jid[root] == SIZE_MAX)
			jid[root] = nj++;
		r->tjob[i] = jid[root];
	}
	r->njobs = nj;
	r->jobs = calloc(nj + 1, sizeof(*r->jobs));
	r->jt = calloc(n + 1, sizeof(*r->jt));
	r->jw = calloc(r->nweights + 1, sizeof(*r->jw));
	cnt_t = calloc(nj + 1, sizeof(*cnt_t));
	cnt_w = calloc(nj + 1, sizeof(*cnt_w));
	if (!r->jobs || !r->jt || !r->jw || !cnt_t || !cnt_w) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		if (r->tjob[i] != SIZE_MAX)
			cnt_t[r->tjob[i]]++;
	for (k = 0; k < r->nweights; k++)
		cnt_w[r->tjob[p->l[r->wlayer[k]].w[r->wslot[k]].src[0]]]++;
	for (i = 0; i < nj; i++) {
		r->jobs[i].t0 = t;
		r->jobs[i].w0 = wpos;
		t += cnt_t[i];
		wpos += cnt_w[i];
	}
	for (i = 0; i < n; i++) {
		struct stream_job *j;
		const struct npz_entry *e = &p->ix->e[i];
		uint64_t fb = e->hdr.nelem * sizeof(float);

		if (r->tjob[i] == SIZE_MAX)
			continue;
		j = &r->jobs[r->tjob[i]];
		r->jt[j->t0 + j->nt++] = i;
		j->bytes += e->hdr.nbytes;
		j->need += fb + (stream_plain_f32(&e->hdr) ? 0 : e->hdr.nbytes);
		if (fb > largest)
			largest = fb;
		r->total_t++;
		r->total_b += e->hdr.nbytes;
	}
	for (k = 0; k < r->nweights; k++) {
		const struct plan_weight *pw =
		    &p->l[r->wlayer[k]].w[r->wslot[k]];
		struct stream_job *j = &r->jobs[r->tjob[pw->src[0]]];

		r->jw[j->w0 + j->nw++] = k;
		/* Weights of a job are emitted one after another. */
		if (stream_out_need(p, pw) > 0)
			j->need += stream_out_need(p, pw);
	}
	for (i = 0; i < nj; i++) {
		struct stream_job *j = &r->jobs[i];
		const struct plan_weight *pw;

		if (j->nt != 1 || j->nw != 1)
			continue;
		pw = &p->l[r->wlayer[r->jw[j->w0]]].w[r->wslot[r->jw[j->w0]]];
		if (stream_chunk(p, pw) == 0)
			continue;
		/* No copy of the tensor: three chunks is all it needs. */
		j->piecewise = 1;
		j->need = stream_out_need(p, pw);
	}
	for (i = 0; i < nj; i++)
		if (r->jobs[i].need > max_need)
			max_need = r->jobs[i].need;
	r->budget = largest + largest / 4 + STREAM_BUDGET_SLACK;
	if (r->budget < max_need)
		r->budget = max_need;
out:
	free(parent);
	free(jid);
	free(cnt_t);
	free(cnt_w);
	return rc;
}

/* ---- the pipe path ------------------------------------------------------ */

/*
 * An archive read from a pipe can only be read in order: one thread, and
 * a job's tensors are held until its last one has arrived.
 */
static int
stream_sequential(struct stream_run *r, struct stream_worker *wk)
{
	const struct plan *p = r->p;
	const struct stream_opts *o = r->o;
	struct npz_reader *rd = NULL;
	float **held = NULL;
	size_t *arrived = NULL, e, i;
	int more, rc = 0;

	held = calloc(p->ix->n + 1, sizeof(*held));
	arrived = calloc(r->njobs + 1, sizeof(*arrived));
	if (held == NULL || arrived == NULL) {
		rc = wb_err_set(&wk->err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = npz_reader_open(o->npz_path, p->ix, o->limits, &rd,
	    &wk->err)) != 0)
		goto out;
	while ((more = npz_reader_next(rd, &e, &wk->err)) == 1) {
		const struct npz_entry *en = &p->ix->e[e];
		const struct stream_job *j;
		size_t fb = (size_t)en->hdr.nelem * sizeof(float);
		float *src[XF_MAX_SOURCES];

		if (r->tjob[e] == SIZE_MAX)
			continue;	/* the reader skips unread data */
		j = &r->jobs[r->tjob[e]];
		if (o->progress != NULL && o->progress(o->progress_arg,
		    r->done_t, r->total_t, r->done_b, r->total_b) != 0) {
			rc = wb_err_set(&wk->err, WB_E_CANCELLED, "cancelled "
			    "after %llu of %llu tensors",
			    (unsigned long long)r->done_t,
			    (unsigned long long)r->total_t);
			goto out;
		}
		if ((held[e] = malloc(fb ? fb : 1)) == NULL) {
			rc = wb_err_set(&wk->err, WB_E_NOMEM, "out of memory");
			goto out;
		}
		if (stream_plain_f32(&en->hdr)) {
			rc = npz_reader_read(rd, held[e], fb, &wk->err);
		} else if ((rc = stream_grow(&wk->raw, &wk->raw_cap,
		    (size_t)en->hdr.nbytes, &wk->err)) == 0 &&
		    (rc = npz_reader_read(rd, wk->raw, (size_t)en->hdr.nbytes,
		    &wk->err)) == 0) {
			npy_to_f32(&en->hdr, wk->raw, held[e]);
		}
		if (rc != 0)
			goto out;
		r->done_t++;
		r->done_b += en->hdr.nbytes;
		if (++arrived[r->tjob[e]] < j->nt)
			continue;
		for (i = 0; i < j->nw; i++) {
			size_t w = r->jw[j->w0 + i];
			const struct plan_weight *pw =
			    &p->l[r->wlayer[w]].w[r->wslot[w]];
			int s;

			for (s = 0; s < pw->nsrc; s++)
				src[s] = held[pw->src[s]];
			if ((rc = stream_emit(wk, w, src)) != 0)
				goto out;
		}
		for (i = 0; i < j->nt; i++) {
			free(held[r->jt[j->t0 + i]]);
			held[r->jt[j->t0 + i]] = NULL;
		}
	}
	if (more < 0)
		rc = wk->err.code ? wk->err.code : WB_E_ARCHIVE;
out:
	for (i = 0; held != NULL && i < p->ix->n; i++)
		free(held[i]);
	free(held);
	free(arrived);
	npz_reader_close(rd);
	stream_trim(wk);
	return rc;
}

/* ---- the front ---------------------------------------------------------- */

int
stream_run(const struct plan *p, struct kh5_writer *w,
    const struct stream_opts *o, struct stream_weight *out,
    uint64_t *written, struct wb_err *err)
{
	struct stream_run r;
	struct stream_worker *wk = NULL;
	pthread_t *tid = NULL;
	size_t li, k;
	long ncpu;
	int nt, i, started = 0, rc = 0;

	memset(&r, 0, sizeof(r));
	r.p = p;
	r.w = w;
	r.o = o;
	r.out = out;
	for (li = 0; li < p->nlayers; li++)
		r.nweights += p->l[li].nw;
	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.cv, NULL);
	if ((rc = stream_jobs(&r, err)) != 0)
		goto out;

	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	nt = o->threads > 0 ? o->threads : ncpu > 0 ? (int)ncpu : 1;
	if (nt > STREAM_MAX_THREADS)
		nt = STREAM_MAX_THREADS;
	if ((size_t)nt > r.njobs)
		nt = r.njobs > 0 ? (int)r.njobs : 1;
	if ((wk = calloc((size_t)nt, sizeof(*wk))) == NULL ||
	    (tid = calloc((size_t)nt, sizeof(*tid))) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < nt; i++)
		wk[i].r = &r;

	if (!npz_index_random_access(p->ix)) {
		if ((rc = stream_sequential(&r, &wk[0])) != 0)
			*err = wk[0].err;
		goto check;
	}
	for (i = 0; i < nt; i++) {
		if (pthread_create(&tid[i], NULL, stream_worker_main,
		    &wk[i]) != 0) {
			struct wb_err e = { 0 };

			wb_err_set(&e, WB_E_INTERNAL, "cannot start a worker "
			    "thread");
			stream_fail(&r, &e);
			break;
		}
		started++;
	}
	for (i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	if (r.err.code != WB_OK) {
		*err = r.err;
		rc = r.err.code;
		goto out;
	}
check:
	if (rc != 0)
		goto out;
	for (k = 0; k < r.nweights; k++)
		if (!out[k].done) {
			rc = wb_err_set(err, WB_E_ARCHIVE, "weight '%s' of layer "
			    "'%s' was never written: its tensors were missing "
			    "on the second read of the archive (did the file "
			    "change?)", p->l[r.wlayer[k]].w[r.wslot[k]].name,
			    p->l[r.wlayer[k]].name);
			goto out;
		}
	if (o->progress != NULL)
		o->progress(o->progress_arg, r.total_t, r.total_t, r.total_b,
		    r.total_b);
out:
	*written = r.written;
	free(wk);
	free(tid);
	free(r.wlayer);
	free(r.wslot);
	free(r.jobs);
	free(r.jt);
	free(r.jw);
	free(r.tjob);
	pthread_mutex_destroy(&r.lock);
	pthread_cond_destroy(&r.cv);
	return rc;
}
