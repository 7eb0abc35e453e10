/*
 * xform: the primitive tensor transforms every layer preset is built from.
 *
 * A weight's recipe is a combine step over its sources (one source: none)
 * followed by a list of single-tensor ops.  Each op can compute its output
 * shape without data (planning, dry runs, shape reports) and apply itself to
 * float32 data (conversion).  Shapes are checked and overflow-checked when
 * planned, so apply() never fails.
 */
#ifndef XFORM_H
#define XFORM_H

#include <stddef.h>
#include <stdint.h>

#include "npy.h"
#include "wb_err.h"

/* Keras weights have at most 5 axes; 8 leaves room and keeps plans small. */
#define XF_MAX_DIMS	8
#define XF_MAX_OPS	6
#define XF_MAX_SOURCES	4

struct xf_shape {
	int		 ndim;
	uint64_t	 d[XF_MAX_DIMS];
};

enum xf_kind {
	XF_TRANSPOSE,		/* a[] = permutation */
	XF_RESHAPE,		/* a[] = new shape, one entry may be -1 */
	XF_SPLIT,		/* equal parts along axis: take part `index` of `parts` */
	XF_REORDER,		/* split axis into n equal blocks, output block i = input block a[i] */
	XF_BLOCKDIAG		/* (A, B, ...) -> (A, B*parts, ...): row a fills column block a/(A/parts), zeros elsewhere */
};

struct xf_op {
	enum xf_kind	 kind;
	int		 n;		/* entries used in a[] */
	int64_t		 a[XF_MAX_DIMS];
	int		 axis;
	int		 parts, index;
};

enum xf_combine {
	XF_ONE = 0,	/* exactly one source */
	XF_SUM,		/* elementwise sum of equal shapes */
	XF_STACK,	/* new leading axis */
	XF_CONCAT,	/* along axis 0 */
	XF_WNORM,	/* weight norm: g * v / ||v|| per leading-axis row; sources g, v */
	XF_FOLD,	/* bias fold: b2 + W[:, :] @ b1; sources W (F, C, 1...), b1 (C), optional b2 (F) */
	XF_FOLD_WNORM	/* the same with W = weight_norm(g, v); sources g, v, b1, optional b2 */
};

struct xf_recipe {
	enum xf_combine	 combine;
	int		 nops;
	struct xf_op	 ops[XF_MAX_OPS];
};

/* Append an op; returns 0, or WB_E_INTERNAL if the recipe is full. */
int	xf_push(struct xf_recipe *r, const struct xf_op *op, struct wb_err *err);
int	xf_push_transpose(struct xf_recipe *r, int n, const int64_t *perm,
	    struct wb_err *err);
int	xf_push_reshape(struct xf_recipe *r, int n, const int64_t *shape,
	    struct wb_err *err);

/*
 * Output shape of the recipe for sources of shapes in[0..nin-1].  Fails with
 * WB_E_MAPPING and a message saying which op does not fit which shape.
 */
int	xf_plan(const struct xf_recipe *r, const struct xf_shape *in, int nin,
	    struct xf_shape *out, struct wb_err *err);

/*
 * Apply a planned recipe.  src[i] hold the sources (float32, C order);
 * scratch is a caller-owned buffer pair reused across calls (grown as
 * needed).  *result points into one of the scratch buffers or at src[0]
 * itself (when the recipe is the identity); it is valid until the next call.
 * Returns 0 or WB_E_NOMEM.
 */
struct xf_scratch {
	float		*buf[2];
	size_t		 cap[2];	/* in elements */
};

int	xf_apply(const struct xf_recipe *r, const struct xf_shape *in,
	    float *const *src, int nin, struct xf_scratch *s,
	    const float **result, struct xf_shape *out, struct wb_err *err);
void	xf_scratch_free(struct xf_scratch *s);

/*
 * A buffer for tensor data, freed with xf_buf_free(p, the same bytes).
 * From XF_PAGE_MIN bytes it is mapped on its own (freeing it gives the
 * memory back at once) and
 * is page-aligned, so the writer can hand it to O_DIRECT I/O; from
 * XF_HUGE_MIN it is 2 MiB-aligned and asks for transparent huge pages
 * (fresh 4 KiB pages cost a fault each, slow on virtual machines).
 */
#define XF_PAGE_MIN	((size_t)256 << 10)
#define XF_PAGE_ALIGN	((size_t)4096)
#define XF_HUGE_MIN	((size_t)8 << 20)
#define XF_HUGE_ALIGN	((size_t)2 << 20)
void	*xf_buf_alloc(size_t bytes);
void	 xf_buf_free(void *p, size_t bytes);

/* N-d transpose of C-order src (shape in, perm p) into dst. */
void	xf_transpose(const float *src, float *dst, int ndim,
	    const uint64_t *shape, const int64_t *perm);

/*
 * Rows [r0, r1) of the output's leading axis (input axis perm[0]) of the
 * same transpose, into dst: how large tensors are written in slabs.
 */
void	xf_transpose_rows(const float *src, float *dst, int ndim,
	    const uint64_t *shape, const int64_t *perm, uint64_t r0,
	    uint64_t r1);

/* Human-readable recipe, e.g. "sum; transpose(2,3,1,0)" or "identity". */
void	xf_describe(const struct xf_recipe *r, char *buf, size_t len);

/* Elements of a shape; 0 on overflow is impossible for planned shapes. */
uint64_t xf_count(const struct xf_shape *s);

/* "(3, 3, 16, 32)". */
char	*xf_shape_str(const struct xf_shape *s, char *buf, size_t len);

#endif
