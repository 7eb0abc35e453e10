/*
 * xform: primitive tensor transforms (see xform.h).
 *
 * Planning (xf_plan) does all the checking: every op validates its argument
 * against the shape it receives, so a mistake in a spec is reported with the
 * op and shape that disagree, and applying never has to fail except for
 * memory.  The transpose collapses axes that stay adjacent and copies the
 * last two output axes in cache-sized tiles, which is what makes conv kernel
 * and large matrix transposes run near memory speed instead of one cache
 * miss per element.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "xform.h"

#define XF_TILE 32

uint64_t
xf_count(const struct xf_shape *s)
{
	uint64_t n = 1;
	int i;

	for (i = 0; i < s->ndim; i++)
		n *= s->d[i];
	return n;
}

char *
xf_shape_str(const struct xf_shape *s, char *buf, size_t len)
{
	return npy_shape_str(s->ndim, s->d, buf, len);
}

int
xf_push(struct xf_recipe *r, const struct xf_op *op, struct wb_err *err)
{
	if (r->nops >= XF_MAX_OPS)
		return wb_err_set(err, WB_E_SPEC,
		    "too many transform steps (at most %d)", XF_MAX_OPS);
	r->ops[r->nops++] = *op;
	return 0;
}

int
xf_push_transpose(struct xf_recipe *r, int n, const int64_t *perm,
    struct wb_err *err)
{
	struct xf_op op;

	memset(&op, 0, sizeof(op));
	op.kind = XF_TRANSPOSE;
	op.n = n;
	memcpy(op.a, perm, (size_t)n * sizeof(perm[0]));
	return xf_push(r, &op, err);
}

int
xf_push_reshape(struct xf_recipe *r, int n, const int64_t *shape,
    struct wb_err *err)
{
	struct xf_op op;

	memset(&op, 0, sizeof(op));
	op.kind = XF_RESHAPE;
	op.n = n;
	memcpy(op.a, shape, (size_t)n * sizeof(shape[0]));
	return xf_push(r, &op, err);
}

static int
xf_same_shape(const struct xf_shape *a, const struct xf_shape *b)
{
	return a->ndim == b->ndim &&
	    memcmp(a->d, b->d, (size_t)a->ndim * sizeof(a->d[0])) == 0;
}

static int
xf_plan_combine(enum xf_combine c, const struct xf_shape *in, int nin,
    struct xf_shape *out, struct wb_err *err)
{
	char a[128], b[128];
	int i;

	if (nin < 1 || nin > XF_MAX_SOURCES)
		return wb_err_set(err, WB_E_SPEC,
		    "a weight takes 1 to %d sources, not %d", XF_MAX_SOURCES,
		    nin);
	if (c == XF_ONE) {
		if (nin != 1)
			return wb_err_set(err, WB_E_SPEC,
			    "%d sources given but no combine rule (sum, stack, "
			    "concat)", nin);
		*out = in[0];
		return 0;
	}
	if (c == XF_WNORM) {
		if (nin != 2 || in[0].ndim < 1 || in[1].ndim < 1 ||
		    in[0].d[0] != in[1].d[0] ||
		    xf_count(&in[0]) != in[0].d[0])
			return wb_err_set(err, WB_E_MAPPING,
			    "weight norm needs g of shape (O, 1, ...) and v of "
			    "shape (O, ...); got %s and %s",
			    xf_shape_str(&in[0], a, sizeof(a)),
			    nin > 1 ? xf_shape_str(&in[1], b, sizeof(b)) : "-");
		*out = in[1];
		return 0;
	}
	if (c == XF_FOLD || c == XF_FOLD_WNORM) {
		/* With weight norm, skip g: v has W's shape. */
		int o = c == XF_FOLD_WNORM;
		uint64_t f = in[o].ndim >= 2 ? in[o].d[0] : 0;

		if (o && (nin < 3 || xf_count(&in[0]) != f))
			return wb_err_set(err, WB_E_MAPPING, "bias fold with "
			    "weight norm needs g (F, 1, ...) and v (F, C, ...)");
		in += o;
		nin -= o;
		if (nin < 2 || nin > 3 || f == 0 || in[1].ndim != 1 ||
		    xf_count(&in[0]) != f * in[1].d[0] ||
		    (nin == 3 && (in[2].ndim != 1 || in[2].d[0] != f)))
			return wb_err_set(err, WB_E_MAPPING,
			    "bias fold needs a pointwise weight (F, C, 1, 1), a "
			    "bias (C) and optionally a bias (F); got %s and %s",
			    xf_shape_str(&in[0], a, sizeof(a)),
			    nin > 1 ? xf_shape_str(&in[1], b, sizeof(b)) : "-");
		out->ndim = 1;
		out->d[0] = f;
		return 0;
	}
	for (i = 1; i < nin; i++) {
		int fits = c == XF_CONCAT ?
		    in[i].ndim == in[0].ndim && in[0].ndim >= 1 &&
		    memcmp(in[i].d + 1, in[0].d + 1,
			(size_t)(in[0].ndim - 1) * sizeof(in[0].d[0])) == 0 :
		    xf_same_shape(&in[i], &in[0]);
		if (!fits)
			return wb_err_set(err, WB_E_MAPPING,
			    "cannot %s shapes %s and %s",
			    c == XF_SUM ? "sum" : c == XF_STACK ? "stack" :
			    "concatenate",
			    xf_shape_str(&in[0], a, sizeof(a)),
			    xf_shape_str(&in[i], b, sizeof(b)));
	}
	*out = in[0];
	if (c == XF_STACK) {
		if (in[0].ndim + 1 > XF_MAX_DIMS)
			return wb_err_set(err, WB_E_MAPPING, "too many dimensions");
		memmove(out->d + 1, out->d, (size_t)out->ndim * sizeof(out->d[0]));
		out->d[0] = (uint64_t)nin;
		out->ndim++;
	} else if (c == XF_CONCAT) {
		for (i = 1; i < nin; i++)
			out->d[0] += in[i].d[0];
	}
	return 0;
}

static int
xf_plan_op(const struct xf_op *op, const struct xf_shape *in,
    struct xf_shape *out, struct wb_err *err)
{
	char a[128];
	uint64_t n = xf_count(in), known = 1;
	int i, seen[XF_MAX_DIMS], minus = -1;

	switch (op->kind) {
	case XF_TRANSPOSE:
		if (op->n != in->ndim)
			return wb_err_set(err, WB_E_MAPPING,
			    "transpose has %d axes but the tensor %s has %d",
			    op->n, xf_shape_str(in, a, sizeof(a)), in->ndim);
		memset(seen, 0, sizeof(seen));
		for (i = 0; i < op->n; i++) {
			if (op->a[i] < 0 || op->a[i] >= op->n || seen[op->a[i]])
				return wb_err_set(err, WB_E_MAPPING,
				    "transpose axes must be a permutation of "
				    "0..%d", op->n - 1);
			seen[op->a[i]] = 1;
			out->d[i] = in->d[op->a[i]];
		}
		out->ndim = op->n;
		return 0;
	case XF_RESHAPE:
		if (op->n < 0 || op->n > XF_MAX_DIMS)
			return wb_err_set(err, WB_E_MAPPING, "bad reshape rank");
		for (i = 0; i < op->n; i++) {
			if (op->a[i] == -1 && minus < 0) {
				minus = i;
				continue;
			}
			if (op->a[i] < 0)
				return wb_err_set(err, WB_E_MAPPING,
				    "reshape dimensions must be >= 0 (one may "
				    "be -1)");
			if (op->a[i] != 0 &&
			    known > UINT64_MAX / (uint64_t)op->a[i])
				return wb_err_set(err, WB_E_MAPPING,
				    "reshape size overflows");
			known *= (uint64_t)op->a[i];
			out->d[i] = (uint64_t)op->a[i];
		}
		if (minus >= 0) {
			if (known == 0 || n % known != 0)
				return wb_err_set(err, WB_E_MAPPING,
				    "cannot reshape %s (%llu elements) with a "
				    "-1 dimension", xf_shape_str(in, a, sizeof(a)),
				    (unsigned long long)n);
			out->d[minus] = n / known;
			known = n;
		}
		if (known != n)
			return wb_err_set(err, WB_E_MAPPING,
			    "cannot reshape %s (%llu elements) into %llu "
			    "elements", xf_shape_str(in, a, sizeof(a)),
			    (unsigned long long)n, (unsigned long long)known);
		out->ndim = op->n;
		return 0;
	case XF_BLOCKDIAG:
		if (in->ndim < 2 || op->parts < 1 ||
		    in->d[0] % (uint64_t)op->parts != 0 ||
		    in->d[1] > UINT64_MAX / (uint64_t)op->parts)
			return wb_err_set(err, WB_E_MAPPING,
			    "cannot expand %s into %d groups",
			    xf_shape_str(in, a, sizeof(a)), op->parts);
		*out = *in;
		out->d[1] *= (uint64_t)op->parts;
		return 0;
	case XF_SPLIT:
	case XF_REORDER:
		if (op->axis < 0 || op->axis >= in->ndim)
			return wb_err_set(err, WB_E_MAPPING,
			    "axis %d out of range for %s", op->axis,
			    xf_shape_str(in, a, sizeof(a)));
		{
			int parts = op->kind == XF_SPLIT ? op->parts : op->n;

			if (parts < 1 || in->d[op->axis] % (uint64_t)parts)
				return wb_err_set(err, WB_E_MAPPING,
				    "axis %d of %s does not split into %d "
				    "equal parts", op->axis,
				    xf_shape_str(in, a, sizeof(a)), parts);
			*out = *in;
			if (op->kind == XF_SPLIT) {
				if (op->index < 0 || op->index >= parts)
					return wb_err_set(err, WB_E_MAPPING,
					    "split index %d out of range",
					    op->index);
				out->d[op->axis] /= (uint64_t)parts;
			} else {
				memset(seen, 0, sizeof(seen));
				for (i = 0; i < op->n; i++) {
					if (op->a[i] < 0 || op->a[i] >= op->n ||
					    seen[op->a[i]])
						return wb_err_set(err,
						    WB_E_MAPPING,
						    "block order must be a "
						    "permutation of 0..%d",
						    op->n - 1);
					seen[op->a[i]] = 1;
				}
			}
		}
		return 0;
	}
	return wb_err_set(err, WB_E_INTERNAL, "unknown op %d", op->kind);
}

int
xf_plan(const struct xf_recipe *r, const struct xf_shape *in, int nin,
    struct xf_shape *out, struct wb_err *err)
{
	struct xf_shape cur, next;
	int i, rc;

	if ((rc = xf_plan_combine(r->combine, in, nin, &cur, err)) != 0)
		return rc;
	for (i = 0; i < r->nops; i++) {
		if ((rc = xf_plan_op(&r->ops[i], &cur, &next, err)) != 0)
			return rc;
		cur = next;
	}
	*out = cur;
	return 0;
}

/*
 * Copy an (rows x cols) block where element (i, j) of the output comes from
 * src[i * sr + j * sc], in tiles so that both sides stay in cache.
 */
static void
xf_copy2d(const float *src, float *dst, uint64_t rows, uint64_t cols,
    uint64_t sr, uint64_t sc)
{
	uint64_t i0, j0, i, j, ie, je;

	if (sc == 1) {
		for (i = 0; i < rows; i++)
			memcpy(dst + i * cols, src + i * sr, cols * sizeof(float));
		return;
	}
	for (i0 = 0; i0 < rows; i0 += XF_TILE) {
		ie = i0 + XF_TILE < rows ? i0 + XF_TILE : rows;
		for (j0 = 0; j0 < cols; j0 += XF_TILE) {
			je = j0 + XF_TILE < cols ? j0 + XF_TILE : cols;
			for (i = i0; i < ie; i++) {
				const float *s = src + i * sr;
				float *d = dst + i * cols;

				for (j = j0; j < je; j++)
					d[j] = s[j * sc];
			}
		}
	}
}

/*
 * Transpose with explicit input strides, so that a slab of the output's
 * leading axis can be produced from the full input (xf_transpose_rows).
 */
static void
xf_transpose_core(const float *src, float *dst, int ndim,
    const uint64_t *shape, const uint64_t *instride, const int64_t *perm)
{
	uint64_t od[XF_MAX_DIMS], os[XF_MAX_DIMS];
	uint64_t idx[XF_MAX_DIMS], total = 1, outer, k, inner;
	int i, m = 0;

	for (i = 0; i < ndim; i++)
		total *= shape[i];
	if (total == 0)
		return;
	/* Output axes with their input strides; drop size-1 axes, merge
	 * neighbours that stay contiguous in the input. */
	for (i = 0; i < ndim; i++) {
		uint64_t d = shape[perm[i]], s = instride[perm[i]];

		if (d == 1)
			continue;
		if (m > 0 && os[m - 1] == d * s) {
			od[m - 1] *= d;
			os[m - 1] = s;
			continue;
		}
		od[m] = d;
		os[m] = s;
		m++;
	}
	if (m == 0 || (m == 1 && os[0] == 1)) {
		memcpy(dst, src, total * sizeof(float));
		return;
	}
	if (m == 1) {
		xf_copy2d(src, dst, 1, od[0], 0, os[0]);
		return;
	}
	inner = od[m - 2] * od[m - 1];
	outer = total / inner;
	memset(idx, 0, sizeof(idx));
	for (k = 0; k < outer; k++) {
		uint64_t base = 0;

		for (i = 0; i < m - 2; i++)
			base += idx[i] * os[i];
		xf_copy2d(src + base, dst + k * inner, od[m - 2], od[m - 1],
		    os[m - 2], os[m - 1]);
		for (i = m - 3; i >= 0; i--) {
			if (++idx[i] < od[i])
				break;
			idx[i] = 0;
		}
	}
}

void
xf_transpose(const float *src, float *dst, int ndim, const uint64_t *shape,
    const int64_t *perm)
{
	uint64_t instride[XF_MAX_DIMS], total = 1;
	int i;

	for (i = ndim - 1; i >= 0; i--) {
		instride[i] = total;
		total *= shape[i];
	}
	xf_transpose_core(src, dst, ndim, shape, instride, perm);
}

void
xf_transpose_rows(const float *src, float *dst, int ndim,
    const uint64_t *shape, const int64_t *perm, uint64_t r0, uint64_t r1)
{
	uint64_t instride[XF_MAX_DIMS], part[XF_MAX_DIMS], total = 1;
	int i;

	for (i = ndim - 1; i >= 0; i--) {
		instride[i] = total;
		total *= shape[i];
		part[i] = shape[i];
	}
	part[perm[0]] = r1 - r0;
	xf_transpose_core(src + r0 * instride[perm[0]], dst, ndim, part,
	    instride, perm);
}

/*
 * Big buffers are mapped and unmapped directly: through malloc, freed ones
 * stay in the allocator's arenas (its mmap threshold rises after each big
 * free), and the process keeps them resident long after the tensor is gone.
 */
void *
xf_buf_alloc(size_t bytes)
{
	size_t len, lead;
	char *p;

	if (bytes < XF_PAGE_MIN)
		return malloc(bytes ? bytes : 1);
	len = (bytes + XF_PAGE_ALIGN - 1) & ~(XF_PAGE_ALIGN - 1);
	if (len < XF_HUGE_MIN) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	/* 2 MiB-aligned, so every page can be a huge one. */
	if (len > SIZE_MAX - XF_HUGE_ALIGN)
		return NULL;
	p = mmap(NULL, len + XF_HUGE_ALIGN, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	lead = (XF_HUGE_ALIGN - (uintptr_t)p % XF_HUGE_ALIGN) % XF_HUGE_ALIGN;
	if (lead > 0)
		(void)munmap(p, lead);
	(void)munmap(p + lead + len, XF_HUGE_ALIGN - lead);
	p += lead;
	(void)madvise(p, len, MADV_HUGEPAGE);
	return p;
}

void
xf_buf_free(void *p, size_t bytes)
{
	if (p == NULL)
		return;
	if (bytes < XF_PAGE_MIN)
		free(p);
	else
		(void)munmap(p, (bytes + XF_PAGE_ALIGN - 1) &
		    ~(XF_PAGE_ALIGN - 1));
}

static int
xf_reserve(struct xf_scratch *s, int which, uint64_t n, struct wb_err *err)
{
	float *p;

	if (n <= s->cap[which])
		return 0;
	if (n > SIZE_MAX / sizeof(float))
		return wb_err_set(err, WB_E_NOMEM, "tensor too large");
	/* Fresh pages are slow to fault in; keep the buffer across calls. */
	xf_buf_free(s->buf[which], s->cap[which] * sizeof(float));
	s->buf[which] = NULL;
	s->cap[which] = 0;
	if ((p = xf_buf_alloc((size_t)n * sizeof(float))) == NULL)
		return wb_err_set(err, WB_E_NOMEM,
		    "out of memory allocating %llu bytes",
		    (unsigned long long)(n * sizeof(float)));
	s->buf[which] = p;
	s->cap[which] = (size_t)n;
	return 0;
}

void
xf_scratch_free(struct xf_scratch *s)
{
	if (s == NULL)
		return;
	xf_buf_free(s->buf[0], s->cap[0] * sizeof(float));
	xf_buf_free(s->buf[1], s->cap[1] * sizeof(float));
	memset(s, 0, sizeof(*s));
}

static void
xf_combine_apply(enum xf_combine c, const struct xf_shape *in,
    float *const *src, int nin, float *dst)
{
	uint64_t n = xf_count(&in[0]), i, j, rowlen;
	int s;

	switch (c) {
	case XF_SUM:
		memcpy(dst, src[0], n * sizeof(float));
		for (s = 1; s < nin; s++)
			for (i = 0; i < n; i++)
				dst[i] += src[s][i];
		break;
	case XF_STACK:
		for (s = 0; s < nin; s++)
			memcpy(dst + (uint64_t)s * n, src[s], n * sizeof(float));
		break;
	case XF_CONCAT:
		for (s = 0; s < nin; s++) {
			uint64_t m = xf_count(&in[s]);

			memcpy(dst, src[s], m * sizeof(float));
			dst += m;
		}
		break;
	case XF_WNORM:
		/* PyTorch: weight = g * v / ||v||, norm over all but dim 0. */
		n = in[1].d[0];
		rowlen = n ? xf_count(&in[1]) / n : 0;
		for (i = 0; i < n; i++) {
			const float *v = src[1] + i * rowlen;
			double ss = 0, scale;

			for (j = 0; j < rowlen; j++)
				ss += (double)v[j] * v[j];
			scale = ss > 0 ? src[0][i] / sqrt(ss) : 0;
			for (j = 0; j < rowlen; j++)
				dst[i * rowlen + j] = (float)(v[j] * scale);
		}
		break;
	case XF_FOLD:
	case XF_FOLD_WNORM:
		/* SeparableConv2D has one bias, after the pointwise step:
		 * b_pw + W_pw @ b_dw, with W_pw = g v / ||v|| if normed. */
		s = c == XF_FOLD_WNORM;
		n = in[s].d[0];
		rowlen = in[s + 1].d[0];
		for (i = 0; i < n; i++) {
			const float *w = src[s] + i * rowlen;
			double acc = 0, ss = 0, scale = 1;

			for (j = 0; j < rowlen; j++) {
				acc += (double)w[j] * src[s + 1][j];
				ss += (double)w[j] * w[j];
			}
			if (s)
				scale = ss > 0 ? src[0][i] / sqrt(ss) : 0;
			dst[i] = (float)(acc * scale +
			    (nin == s + 3 ? src[s + 2][i] : 0));
		}
		break;
	case XF_ONE:
		break;
	}
}

/* Grouped transposed-conv weights as one block-diagonal kernel. */
static void
xf_blockdiag(const float *src, float *dst, const struct xf_shape *in,
    int parts)
{
	uint64_t a = in->d[0], b = in->d[1], rest = 1, per = a / (uint64_t)parts;
	uint64_t i;
	int k;

	for (k = 2; k < in->ndim; k++)
		rest *= in->d[k];
	memset(dst, 0, a * b * (uint64_t)parts * rest * sizeof(float));
	for (i = 0; i < a; i++) {
		uint64_t g = i / per;

		memcpy(dst + (i * b * (uint64_t)parts + g * b) * rest,
		    src + i * b * rest, b * rest * sizeof(float));
	}
}

/* Copy blocks along `axis`: output block b takes input block from(b). */
static void
xf_blocks(const float *src, float *dst, const struct xf_shape *in, int axis,
    int nblocks, const int64_t *order, int split_index)
{
	uint64_t outer = 1, inner = 1, blk, o;
	int i, b;

	for (i = 0; i < axis; i++)
		outer *= in->d[i];
	for (i = axis + 1; i < in->ndim; i++)
		inner *= in->d[i];
	blk = in->d[axis] / (uint64_t)nblocks * inner;
	for (o = 0; o < outer; o++) {
		const float *s = src + o * in->d[axis] * inner;

		if (order == NULL) {
			memcpy(dst + o * blk, s + (uint64_t)split_index * blk,
			    blk * sizeof(float));
			continue;
		}
		for (b = 0; b < nblocks; b++)
			memcpy(dst + o * in->d[axis] * inner + (uint64_t)b * blk,
			    s + (uint64_t)order[b] * blk, blk * sizeof(float));
	}
}

int
xf_apply(const struct xf_recipe *r, const struct xf_shape *in,
    float *const *src, int nin, struct xf_scratch *s, const float **result,
    struct xf_shape *out, struct wb_err *err)
{
	struct xf_shape cur, next;
	const float *data;
	int which = 0, i, rc;

	if ((rc = xf_plan_combine(r->combine, in, nin, &cur, err)) != 0)
		return rc;
	data = src[0];
	if (r->combine != XF_ONE) {
		if ((rc = xf_reserve(s, 0, xf_count(&cur), err)) != 0)
			return rc;
		xf_combine_apply(r->combine, in, src, nin, s->buf[0]);
		data = s->buf[0];
		which = 1;
	}
	for (i = 0; i < r->nops; i++) {
		const struct xf_op *op = &r->ops[i];

		if ((rc = xf_plan_op(op, &cur, &next, err)) != 0)
			return rc;
		if (op->kind == XF_RESHAPE) {
			cur = next;
			continue;
		}
		if ((rc = xf_reserve(s, which, xf_count(&next), err)) != 0)
			return rc;
		if (op->kind == XF_TRANSPOSE)
			xf_transpose(data, s->buf[which], cur.ndim, cur.d, op->a);
		else if (op->kind == XF_SPLIT)
			xf_blocks(data, s->buf[which], &cur, op->axis, op->parts,
			    NULL, op->index);
		else if (op->kind == XF_BLOCKDIAG)
			xf_blockdiag(data, s->buf[which], &cur, op->parts);
		else
			xf_blocks(data, s->buf[which], &cur, op->axis, op->n,
			    op->a, 0);
		data = s->buf[which];
		which ^= 1;
		cur = next;
	}
	*result = data;
	*out = cur;
	return 0;
}

void
xf_describe(const struct xf_recipe *r, char *buf, size_t len)
{
	static const char *combine[] = { "", "sum", "stack", "concat",
	    "weight_norm", "bias_fold", "weight_norm+bias_fold" };
	size_t off = 0;
	int i, j;

	buf[0] = '\0';
#define XF_OUT(...) do {                                                    \
		int w_ = snprintf(buf + off, off < len ? len - off : 0,       \
		    __VA_ARGS__);                                             \
		if (w_ > 0)                                                   \
			off += (size_t)w_;                                    \
	} while (0)
	if (r->combine != XF_ONE)
		XF_OUT("%s", combine[r->combine]);
	for (i = 0; i < r->nops; i++) {
		const struct xf_op *op = &r->ops[i];

		if (off > 0)
			XF_OUT("; ");
		switch (op->kind) {
		case XF_TRANSPOSE:
		case XF_RESHAPE:
			XF_OUT("%s(", op->kind == XF_TRANSPOSE ? "transpose" :
			    "reshape");
			for (j = 0; j < op->n; j++)
				XF_OUT("%s%lld", j ? "," : "", (long long)op->a[j]);
			XF_OUT(")");
			break;
		case XF_SPLIT:
			XF_OUT("split(axis=%d,part=%d/%d)", op->axis,
			    op->index, op->parts);
			break;
		case XF_BLOCKDIAG:
			XF_OUT("groups_to_block_diagonal(%d)", op->parts);
			break;
		case XF_REORDER:
			XF_OUT("reorder(axis=%d,blocks=", op->axis);
			for (j = 0; j < op->n; j++)
				XF_OUT("%s%lld", j ? "," : "", (long long)op->a[j]);
			XF_OUT(")");
			break;
		}
	}
	if (off == 0)
		XF_OUT("identity");
	if (off >= len && len > 4)
		memcpy(buf + len - 4, "...", 4);
#undef XF_OUT
}
