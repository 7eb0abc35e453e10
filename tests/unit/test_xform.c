/*
 * Unit tests for xform: every op against a naive reference written from the
 * definition (numpy semantics), on shapes that exercise the axis-merging and
 * tiling paths of the transpose.
 */
#include <math.h>
#include <stdlib.h>

#include "t.h"
#include "xform.h"

/* Naive N-d transpose: out[i0..] = in[idx permuted]. */
static void
naive_transpose(const float *src, float *dst, int n, const uint64_t *shape,
    const int64_t *perm)
{
	uint64_t total = 1, instr[XF_MAX_DIMS], oshape[XF_MAX_DIMS], k;
	uint64_t idx[XF_MAX_DIMS];
	int i;

	for (i = n - 1; i >= 0; i--) {
		instr[i] = total;
		total *= shape[i];
	}
	for (i = 0; i < n; i++)
		oshape[i] = shape[perm[i]];
	for (k = 0; k < total; k++) {
		uint64_t rem = k, off = 0;

		for (i = n - 1; i >= 0; i--) {
			idx[i] = rem % oshape[i];
			rem /= oshape[i];
		}
		for (i = 0; i < n; i++)
			off += idx[i] * instr[perm[i]];
		dst[k] = src[off];
	}
}

static int
check_transpose(int n, const uint64_t *shape, const int64_t *perm)
{
	uint64_t total = 1, i;
	float *a, *b, *c;
	int ok;

	for (i = 0; i < (uint64_t)n; i++)
		total *= shape[i];
	a = calloc(total, sizeof(float));
	b = calloc(total, sizeof(float));
	c = calloc(total, sizeof(float));
	if (a == NULL || b == NULL || c == NULL) {
		free(a);
		free(b);
		free(c);
		return 0;
	}
	for (i = 0; i < total; i++)
		a[i] = (float)i;
	xf_transpose(a, b, n, shape, perm);
	naive_transpose(a, c, n, shape, perm);
	ok = memcmp(b, c, total * sizeof(float)) == 0;
	free(a);
	free(b);
	free(c);
	return ok;
}

static void
test_transpose(void)
{
	uint64_t s2[] = { 37, 70 }, s4[] = { 16, 3, 3, 3 }, s4b[] = { 64, 32, 1, 1 };
	uint64_t s5[] = { 4, 5, 2, 3, 3 }, s3[] = { 7, 1, 9 };
	int64_t p2[] = { 1, 0 }, p4[] = { 2, 3, 1, 0 }, p5[] = { 2, 3, 4, 1, 0 };
	int64_t p3[] = { 2, 1, 0 }, id4[] = { 0, 1, 2, 3 }, p4b[] = { 0, 2, 1, 3 };

	CHECK(check_transpose(2, s2, p2));
	CHECK(check_transpose(4, s4, p4));
	CHECK(check_transpose(4, s4b, p4));
	CHECK(check_transpose(5, s5, p5));
	CHECK(check_transpose(3, s3, p3));
	CHECK(check_transpose(4, s4, id4));
	CHECK(check_transpose(4, s4, p4b));
}

static void
test_plan_errors(void)
{
	struct xf_recipe r = { 0 };
	struct xf_shape in = { 2, { 4, 6 } }, out;
	struct wb_err err = { 0 };
	int64_t bad[] = { 0, 0 }, rs[] = { 5, -1 };

	xf_push_transpose(&r, 2, bad, &err);
	CHECK(xf_plan(&r, &in, 1, &out, &err) == WB_E_MAPPING);
	CHECK(CONTAINS(err.msg, "permutation"));

	memset(&r, 0, sizeof(r));
	wb_err_clear(&err);
	xf_push_reshape(&r, 2, rs, &err);
	CHECK(xf_plan(&r, &in, 1, &out, &err) == WB_E_MAPPING);
	CHECK(CONTAINS(err.msg, "(4, 6)"));

	memset(&r, 0, sizeof(r));
	wb_err_clear(&err);
	r.combine = XF_SUM;
	{
		struct xf_shape two[2] = { { 1, { 4 } }, { 1, { 5 } } };

		CHECK(xf_plan(&r, two, 2, &out, &err) == WB_E_MAPPING);
		CHECK(CONTAINS(err.msg, "sum"));
	}
}

/* Dense after Flatten of an NCHW map: the recipe the Dense preset uses. */
static void
test_flatten_permutation(void)
{
	enum { O = 3, C = 2, H = 2, W = 3 };
	struct xf_recipe r = { 0 };
	struct xf_shape in = { 2, { O, C * H * W } }, out;
	struct xf_scratch s;
	struct wb_err err = { 0 };
	int64_t rs1[] = { O, C, H, W }, perm[] = { 2, 3, 1, 0 };
	int64_t rs2[] = { H * W * C, O };
	float w[O * C * H * W], *src[1] = { w };
	const float *res;
	int o, c, h, x, bad = 0;

	memset(&s, 0, sizeof(s));

	for (o = 0; o < O * C * H * W; o++)
		w[o] = (float)o;
	xf_push_reshape(&r, 4, rs1, &err);
	xf_push_transpose(&r, 4, perm, &err);
	xf_push_reshape(&r, 2, rs2, &err);
	CHECK(xf_apply(&r, &in, src, 1, &s, &res, &out, &err) == 0);
	CHECK(out.ndim == 2 && out.d[0] == H * W * C && out.d[1] == O);
	/* Keras row (h*W + x)*C + c, column o == PyTorch W[o, c*H*W + h*W + x]. */
	for (o = 0; o < O; o++)
		for (c = 0; c < C; c++)
			for (h = 0; h < H; h++)
				for (x = 0; x < W; x++)
					if (res[((h * W + x) * C + c) * O + o] !=
					    w[o * C * H * W + c * H * W + h * W + x])
						bad++;
	CHECK(bad == 0);
	xf_scratch_free(&s);
}

static void
test_blocks_and_combine(void)
{
	struct xf_recipe r = { 0 };
	struct xf_shape in[2] = { { 1, { 6 } }, { 1, { 6 } } }, out;
	struct xf_scratch s;
	struct wb_err err = { 0 };
	struct xf_op op = { 0 };
	float a[6] = { 0, 1, 2, 3, 4, 5 }, b[6] = { 10, 10, 10, 10, 10, 10 };
	float *src[2] = { a, b };
	const float *res;

	memset(&s, 0, sizeof(s));
	/* GRU-style gate reorder r,z,n -> z,r,n on a summed bias. */
	r.combine = XF_SUM;
	op.kind = XF_REORDER;
	op.axis = 0;
	op.n = 3;
	op.a[0] = 1;
	op.a[1] = 0;
	op.a[2] = 2;
	xf_push(&r, &op, &err);
	CHECK(xf_apply(&r, in, src, 2, &s, &res, &out, &err) == 0);
	CHECK(res[0] == 12 && res[1] == 13 && res[2] == 10 && res[3] == 11 &&
	    res[4] == 14 && res[5] == 15);

	memset(&r, 0, sizeof(r));
	r.combine = XF_STACK;
	CHECK(xf_apply(&r, in, src, 2, &s, &res, &out, &err) == 0);
	CHECK(out.ndim == 2 && out.d[0] == 2 && out.d[1] == 6);
	CHECK(res[6] == 10 && res[5] == 5);

	memset(&r, 0, sizeof(r));
	memset(&op, 0, sizeof(op));
	op.kind = XF_SPLIT;
	op.axis = 0;
	op.parts = 3;
	op.index = 2;
	xf_push(&r, &op, &err);
	CHECK(xf_apply(&r, in, src, 1, &s, &res, &out, &err) == 0);
	CHECK(out.d[0] == 2 && res[0] == 4 && res[1] == 5);

	/* Weight norm: g * v / ||v|| per row. */
	{
		struct xf_shape wn[2] = { { 2, { 2, 1 } }, { 2, { 2, 2 } } };
		float g[2] = { 2, 10 }, v[4] = { 3, 4, 0, 5 };
		float *ws[2] = { g, v };

		memset(&r, 0, sizeof(r));
		r.combine = XF_WNORM;
		CHECK(xf_apply(&r, wn, ws, 2, &s, &res, &out, &err) == 0);
		CHECK(fabsf(res[0] - 1.2f) < 1e-6 && fabsf(res[1] - 1.6f) < 1e-6);
		CHECK(res[2] == 0 && fabsf(res[3] - 10) < 1e-6);
	}
	xf_scratch_free(&s);
}

static void
test_describe(void)
{
	struct xf_recipe r = { 0 };
	struct wb_err err = { 0 };
	int64_t p[] = { 2, 3, 1, 0 };
	char buf[128];

	xf_describe(&r, buf, sizeof(buf));
	CHECK_STR(buf, "identity");
	xf_push_transpose(&r, 4, p, &err);
	xf_describe(&r, buf, sizeof(buf));
	CHECK_STR(buf, "transpose(2,3,1,0)");
}

int
main(void)
{
	test_transpose();
	test_plan_errors();
	test_flatten_permutation();
	test_blocks_and_combine();
	test_describe();
	return t_done("test_xform");
}
