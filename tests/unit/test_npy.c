/*
 * test_npy: the .npy header grammar (accepted variants and every refusal)
 * and the float32 decoder (each dtype, byte swap, float16 exhaustively,
 * fortran order in 2 to 4 dimensions across several transpose tiles).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "t.h"

static uint8_t	 t_buf[NPY_HEADER_MAX + 4096];

/* A .npy member in t_buf: preamble for (major, 0), the header text as
 * given (no padding added), then ndata bytes of data. */
static size_t
mk(int major, const char *hdr, const void *data, size_t ndata)
{
	size_t hl = strlen(hdr), off;

	memcpy(t_buf, "\x93NUMPY", 6);
	t_buf[6] = (uint8_t)major;
	t_buf[7] = 0;
	if (major == 1) {
		t_buf[8] = hl & 0xff;
		t_buf[9] = (hl >> 8) & 0xff;
		off = 10;
	} else {
		t_buf[8] = hl & 0xff;
		t_buf[9] = (hl >> 8) & 0xff;
		t_buf[10] = (hl >> 16) & 0xff;
		t_buf[11] = (hl >> 24) & 0xff;
		off = 12;
	}
	memcpy(t_buf + off, hdr, hl);
	if (ndata > 0)
		memcpy(t_buf + off + hl, data, ndata);
	return off + hl + ndata;
}

/* Parse t_buf[0..len) as a whole member; return the code, fill h. */
static int
parse(size_t len, struct npy_header *h, struct wb_err *err)
{
	size_t need;

	wb_err_clear(err);
	return npy_parse(t_buf, len, len, "t", h, &need, err);
}

static int
parse_hdr(const char *hdr, struct npy_header *h, struct wb_err *err)
{
	return parse(mk(1, hdr, NULL, 0), h, err);
}

static void
test_accept(void)
{
	struct npy_header h;
	struct wb_err err;
	size_t len, need;

	len = mk(1, "{'descr': '<f4', 'fortran_order': False, "
	    "'shape': (3, 4), }                \n", NULL, 0);
	CHECK(parse(len, &h, &err) == 0);
	CHECK(h.major == 1 && h.minor == 0);
	CHECK_STR(h.descr, "<f4");
	CHECK(h.kind == NPY_FLOAT && h.itemsize == 4 && !h.big_endian);
	CHECK(h.ndim == 2 && h.shape[0] == 3 && h.shape[1] == 4);
	CHECK(h.nelem == 12 && h.nbytes == 48);
	CHECK(h.data_offset == len);
	CHECK_STR(npy_dtype_name(&h), "float32");

	/* Any key order, double quotes, no trailing comma, odd spacing. */
	CHECK(parse_hdr("{\"shape\":(7,),\"descr\":\">i8\",\n"
	    "\t\"fortran_order\":True}", &h, &err) == 0);
	CHECK(h.ndim == 1 && h.shape[0] == 7 && h.kind == NPY_INT);
	CHECK(h.itemsize == 8 && h.big_endian && h.fortran_order);
	CHECK(h.nbytes == 56);

	/* A scalar. */
	CHECK(parse_hdr("{'descr': '<i8', 'fortran_order': False, "
	    "'shape': (), }\n", &h, &err) == 0);
	CHECK(h.ndim == 0 && h.nelem == 1 && h.nbytes == 8);

	/* Empty tensor; Python 2 longs; spaces inside the tuple. */
	CHECK(parse_hdr("{'descr': '<f2', 'fortran_order': False, "
	    "'shape': ( 0 , 3L , ), }", &h, &err) == 0);
	CHECK(h.ndim == 2 && h.shape[1] == 3 && h.nelem == 0 && h.nbytes == 0);

	/* Bool spellings, native and '|' byte orders. */
	CHECK(parse_hdr("{'descr': '|b1', 'fortran_order': False, "
	    "'shape': (2,)}", &h, &err) == 0);
	CHECK(h.kind == NPY_BOOL && h.itemsize == 1);
	CHECK_STR(npy_dtype_name(&h), "bool");
	CHECK(parse_hdr("{'descr': '?', 'fortran_order': False, "
	    "'shape': (2,)}", &h, &err) == 0);
	CHECK(h.kind == NPY_BOOL);
	CHECK(parse_hdr("{'descr': '=u2', 'fortran_order': False, "
	    "'shape': (2,)}", &h, &err) == 0);
	CHECK(h.kind == NPY_UINT && h.itemsize == 2 && !h.big_endian);
	CHECK_STR(npy_dtype_name(&h), "uint16");
	CHECK(parse_hdr("{'descr': '|i1', 'fortran_order': False, "
	    "'shape': (2,)}", &h, &err) == 0);
	CHECK_STR(npy_dtype_name(&h), "int8");
	CHECK(parse_hdr("{'descr': '>u1', 'fortran_order': False, "
	    "'shape': (2,)}", &h, &err) == 0);
	CHECK(!h.big_endian);	/* meaningless for one byte */

	/* Versions 2.0 and 3.0 have a 4-byte header length. */
	len = mk(2, "{'descr': '<f8', 'fortran_order': False, "
	    "'shape': (1,), }\n", NULL, 0);
	CHECK(parse(len, &h, &err) == 0 && h.major == 2);
	CHECK(h.data_offset == len);
	len = mk(3, "{'descr': '<f8', 'fortran_order': False, "
	    "'shape': (1,), }\n", NULL, 0);
	CHECK(parse(len, &h, &err) == 0 && h.major == 3);

	/* A prefix of the member: ask for more, do not fail. */
	len = mk(1, "{'descr': '<f4', 'fortran_order': False, "
	    "'shape': (3,), }\n", NULL, 0);
	wb_err_clear(&err);
	CHECK(npy_parse(t_buf, 12, UINT64_MAX, "t", &h, &need, &err) == 0);
	CHECK(h.ndim == -1 && need == len);
	CHECK(npy_parse(t_buf, 4, UINT64_MAX, "t", &h, &need, &err) == 0);
	CHECK(h.ndim == -1 && need == NPY_PREAMBLE_MAX);
	CHECK(npy_parse(t_buf, len, 1000, "t", &h, &need, &err) == 0);
	CHECK(h.ndim == 1 && need == 0);
}

/* Expect code `code` and a message containing every needle given. */
static void
refuse(const char *hdr, int code, const char *n1, const char *n2)
{
	struct npy_header h;
	struct wb_err err;
	int rc;

	rc = parse_hdr(hdr, &h, &err);
	CHECK(rc == code);
	CHECK(err.code == (enum wb_code)code);
	CHECK(CONTAINS(err.msg, "tensor 't'"));
	if (n1 != NULL)
		CHECK(CONTAINS(err.msg, n1));
	if (n2 != NULL)
		CHECK(CONTAINS(err.msg, n2));
	if (rc != code || (n1 && !CONTAINS(err.msg, n1)) ||
	    (n2 && !CONTAINS(err.msg, n2)))
		fprintf(stderr, "  header %s\n  got %d: %s\n", hdr, rc,
		    err.msg);
	CHECK(h.ndim == -1);
}

#define D(x) "{'descr': " x ", 'fortran_order': False, 'shape': (2,)}"

static void
test_refuse(void)
{
	struct npy_header h;
	struct wb_err err;
	char *big;
	size_t len;

	/* Grammar. */
	refuse("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), "
	    "'x': __import__('os')}", WB_E_NPY, "unexpected key 'x'", "byte");
	refuse("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
	    "'shape': (2,)}", WB_E_NPY, "repeated", "byte 27");
	refuse("{'descr': '<f4', 'fortran_order': False}", WB_E_NPY,
	    "lacks 'shape'", NULL);
	refuse("{'descr': '<f4', 'fortran_order': False, 'shape': (2)}",
	    WB_E_NPY, "tuple", NULL);
	refuse("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}",
	    WB_E_NPY, "negative", NULL);
	refuse("{'descr': '<f4', 'fortran_order': False, 'shape': (02,)}",
	    WB_E_NPY, "leading zeros", NULL);
	refuse("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}",
	    WB_E_NPY, "True or False", NULL);
	refuse("{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2,)}",
	    WB_E_NPY, NULL, NULL);
	refuse("{'descr': '<f4', 'fortran_order': False, 'shape': [2]}",
	    WB_E_NPY, "'('", NULL);
	refuse("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x",
	    WB_E_NPY, "padding", NULL);
	refuse("{'descr': '<f4', 'fortran_order': False, 'shape': (2,),,}",
	    WB_E_NPY, "string", NULL);
	refuse("{'descr': '<f\\x34', 'fortran_order': False, 'shape': (2,)}",
	    WB_E_NPY, "ASCII", NULL);
	refuse("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)",
	    WB_E_NPY, "ends at byte", NULL);
	refuse("['descr', '<f4']", WB_E_NPY, "'{'", "byte 10");
	refuse("", WB_E_NPY, NULL, NULL);
	refuse("{}", WB_E_NPY, "lacks", NULL);

	/* Dtypes. */
	refuse(D("'|O'"), WB_E_DTYPE, "pickles", ".numpy()");
	refuse(D("'<c8'"), WB_E_DTYPE, "complex", "<c8");
	refuse(D("'|S5'"), WB_E_DTYPE, "string", "|S5");
	refuse(D("'<U3'"), WB_E_DTYPE, "string", "<U3");
	refuse(D("'|V8'"), WB_E_DTYPE, "'|V8'", NULL);
	refuse(D("'<M8[ns]'"), WB_E_DTYPE, "datetime", NULL);
	refuse(D("'<m8'"), WB_E_DTYPE, "datetime", NULL);
	refuse(D("'<f16'"), WB_E_DTYPE, "long double", NULL);
	refuse(D("'<i3'"), WB_E_DTYPE, "'<i3'", NULL);
	refuse(D("'<f4x'"), WB_E_DTYPE, "'<f4x'", NULL);
	refuse(D("'<b2'"), WB_E_DTYPE, NULL, NULL);
	refuse(D("''"), WB_E_DTYPE, NULL, NULL);
	refuse(D("'<f4<f4<f4<f4<f4<f4'"), WB_E_DTYPE, NULL, NULL);
	refuse("{'descr': [('a', '<f4'), ('b', '<i4')], "
	    "'fortran_order': False, 'shape': (2,)}", WB_E_DTYPE,
	    "structured", NULL);

	/* Limits. */
	refuse("{'descr': '<f4', 'fortran_order': False, "
	    "'shape': (8589934592, 8589934592)}", WB_E_LIMIT, "overflows",
	    "(8589934592, 8589934592)");
	refuse("{'descr': '<f8', 'fortran_order': False, "
	    "'shape': (2305843009213693952,)}", WB_E_LIMIT, "overflows", NULL);
	refuse("{'descr': '<f4', 'fortran_order': False, "
	    "'shape': (9223372036854775808,)}", WB_E_LIMIT, "2^63", NULL);
	refuse("{'descr': '<f4', 'fortran_order': False, 'shape': "
	    "(1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
	    "1,)}", WB_E_LIMIT, "dimensions", NULL);
	/* 32 dimensions are fine. */
	CHECK(parse_hdr("{'descr': '<f4', 'fortran_order': False, 'shape': "
	    "(1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
	    "2,)}", &h, &err) == 0 && h.ndim == 32 && h.nelem == 2);
	/* A zero dimension does not excuse an overflowing product. */
	refuse("{'descr': '<f4', 'fortran_order': False, "
	    "'shape': (0, 8589934592, 8589934592)}", WB_E_LIMIT, NULL, NULL);

	/* Preamble. */
	len = mk(1, D("'<f4'"), NULL, 0);
	t_buf[0] = 'x';
	CHECK(parse(len, &h, &err) == WB_E_NPY && CONTAINS(err.msg, "magic"));
	len = mk(1, D("'<f4'"), NULL, 0);
	t_buf[6] = 4;
	CHECK(parse(len, &h, &err) == WB_E_NPY &&
	    CONTAINS(err.msg, "version 4.0"));
	len = mk(1, D("'<f4'"), NULL, 0);
	t_buf[7] = 1;
	CHECK(parse(len, &h, &err) == WB_E_NPY &&
	    CONTAINS(err.msg, "version 1.1"));
	CHECK(parse(5, &h, &err) == WB_E_NPY && CONTAINS(err.msg, "5 bytes"));
	len = mk(1, D("'<f4'"), NULL, 0);
	CHECK(parse(len - 3, &h, &err) == WB_E_NPY &&
	    CONTAINS(err.msg, "inside its"));
	len = mk(2, D("'<f4'"), NULL, 0);
	CHECK(parse(11, &h, &err) == WB_E_NPY &&
	    CONTAINS(err.msg, "preamble"));

	/* A header longer than NPY_HEADER_MAX. */
	big = malloc(NPY_HEADER_MAX + 2);
	CHECK(big != NULL);
	if (big != NULL) {
		memset(big, ' ', NPY_HEADER_MAX + 1);
		big[NPY_HEADER_MAX + 1] = '\0';
		memcpy(big, D("'<f4'"), strlen(D("'<f4'")));
		len = mk(2, big, NULL, 0);
		CHECK(parse(len, &h, &err) == WB_E_LIMIT &&
		    CONTAINS(err.msg, "65537"));
		big[NPY_HEADER_MAX] = '\0';	/* exactly the maximum */
		len = mk(2, big, NULL, 0);
		CHECK(parse(len, &h, &err) == 0 && h.nelem == 2);
		free(big);
	}
}

/* Reference float16 -> float via libm, independent of the bit tricks. */
static float
ref_half(uint16_t v)
{
	int e = (v >> 10) & 0x1f, m = v & 0x3ff;
	double x;

	if (e == 0x1f) {
		uint32_t b = (uint32_t)(v & 0x8000) << 16 | 0x7f800000u |
		    (uint32_t)m << 13;
		float f;

		memcpy(&f, &b, sizeof(f));
		return f;
	}
	x = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
	return (float)((v & 0x8000) ? -x : x);
}

static void
test_half(void)
{
	static uint16_t src[65536];
	static float dst[65536];
	struct npy_header h;
	uint32_t a, b;
	int bad = 0;
	unsigned i;

	for (i = 0; i < 65536; i++)
		src[i] = (uint16_t)i;
	memset(&h, 0, sizeof(h));
	h.kind = NPY_FLOAT;
	h.itemsize = 2;
	h.ndim = 1;
	h.shape[0] = h.nelem = 65536;
	npy_to_f32(&h, src, dst);
	for (i = 0; i < 65536; i++) {
		float r = ref_half((uint16_t)i);

		memcpy(&a, &dst[i], 4);
		memcpy(&b, &r, 4);
		if (a != b)
			bad++;
	}
	CHECK(bad == 0);
	/* Byte-swapped input gives the same values. */
	for (i = 0; i < 65536; i++)
		src[i] = (uint16_t)(i >> 8 | (i & 0xff) << 8);
	h.big_endian = 1;
	npy_to_f32(&h, src, dst);
	bad = 0;
	for (i = 0; i < 65536; i++) {
		float r = ref_half((uint16_t)i);

		memcpy(&a, &dst[i], 4);
		memcpy(&b, &r, 4);
		if (a != b)
			bad++;
	}
	CHECK(bad == 0);
	CHECK(dst[0x3c00] == 1.0f && dst[0x0001] == 0x1p-24f);
	CHECK(isinf(dst[0xfc00]) && dst[0xfc00] < 0 && isnan(dst[0x7e00]));
}

static void
test_decode(void)
{
	struct npy_header h;
	struct wb_err err;
	float out[8];
	uint8_t raw[64];
	size_t len;

	/* Big-endian int32 and uint64 extremes. */
	static const uint8_t be_i4[] = { 0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xfe,
	    0, 0, 0x01, 0x00 };
	len = mk(1, "{'descr': '>i4', 'fortran_order': False, 'shape': (3,)}",
	    be_i4, sizeof(be_i4));
	CHECK(parse(len, &h, &err) == 0);
	npy_to_f32(&h, t_buf + h.data_offset, out);
	CHECK(out[0] == -2147483648.0f && out[1] == -2.0f && out[2] == 256.0f);

	memset(raw, 0xff, 8);
	memset(raw + 8, 0, 8);
	raw[15] = 0x80;		/* 2^63, little-endian */
	len = mk(1, "{'descr': '<u8', 'fortran_order': False, 'shape': (2,)}",
	    raw, 16);
	CHECK(parse(len, &h, &err) == 0);
	npy_to_f32(&h, t_buf + h.data_offset, out);
	CHECK(out[0] == 18446744073709551616.0f && out[1] == 0x1p63f);

	/* bool: any non-zero byte is true. */
	static const uint8_t bools[] = { 0, 1, 2, 255 };
	len = mk(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (4,)}",
	    bools, 4);
	CHECK(parse(len, &h, &err) == 0);
	npy_to_f32(&h, t_buf + h.data_offset, out);
	CHECK(out[0] == 0 && out[1] == 1 && out[2] == 1 && out[3] == 1);

	/* int8, float64 with rounding and overflow to inf. */
	static const int8_t i1[] = { -128, -1, 127 };
	len = mk(1, "{'descr': '|i1', 'fortran_order': False, 'shape': (3,)}",
	    i1, 3);
	CHECK(parse(len, &h, &err) == 0);
	npy_to_f32(&h, t_buf + h.data_offset, out);
	CHECK(out[0] == -128 && out[1] == -1 && out[2] == 127);
	double f8[3] = { 0.1, -1e300, 16777217.0 };
	len = mk(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,)}",
	    f8, sizeof(f8));
	CHECK(parse(len, &h, &err) == 0);
	npy_to_f32(&h, t_buf + h.data_offset, out);
	CHECK(out[0] == 0.1f && isinf(out[1]) && out[2] == 16777216.0f);

	/* Scalar. */
	float s = -7.25f;
	len = mk(1, "{'descr': '<f4', 'fortran_order': False, 'shape': ()}",
	    &s, 4);
	CHECK(parse(len, &h, &err) == 0);
	out[0] = 0;
	npy_to_f32(&h, t_buf + h.data_offset, out);
	CHECK(out[0] == -7.25f);
}

/*
 * Fortran order: build column-major data for `shape` from the C-order
 * value f(i) = i, decode, and expect 0, 1, 2, ... in C order.
 */
static void
fortran_case(int nd, const uint64_t *shape, int itemsize, int big)
{
	struct npy_header h;
	size_t n = 1, i, ci, rem;
	uint8_t *raw;
	float *out;
	int k, bad = 0;

	for (k = 0; k < nd; k++)
		n *= shape[k];
	raw = calloc(n, (size_t)itemsize);
	out = malloc(n * sizeof(float));
	CHECK(raw != NULL && out != NULL);
	if (raw == NULL || out == NULL)
		goto out;
	/* For each C-order index, find its Fortran-order position. */
	for (ci = 0; ci < n; ci++) {
		size_t fi = 0;

		rem = ci;
		for (k = nd - 1; k >= 0; k--) {
			size_t ik = rem % shape[k];

			rem /= shape[k];
			/* Fortran stride of axis k: product of shape[0..k). */
			size_t fs = 1;
			int j;

			for (j = 0; j < k; j++)
				fs *= shape[j];
			fi += ik * fs;
		}
		if (itemsize == 4) {
			float v = (float)ci;

			memcpy(raw + fi * 4, &v, 4);
		} else {
			double v = (double)ci;
			uint8_t b[8];
			int j;

			memcpy(b, &v, 8);
			for (j = 0; j < 8; j++)
				raw[fi * 8 + j] = big ? b[7 - j] : b[j];
		}
	}
	memset(&h, 0, sizeof(h));
	h.kind = NPY_FLOAT;
	h.itemsize = itemsize;
	h.big_endian = big;
	h.fortran_order = 1;
	h.ndim = nd;
	for (k = 0; k < nd; k++)
		h.shape[k] = shape[k];
	h.nelem = n;
	npy_to_f32(&h, raw, out);
	for (i = 0; i < n; i++)
		if (out[i] != (float)i)
			bad++;
	CHECK(bad == 0);
	if (bad)
		fprintf(stderr, "  fortran nd=%d itemsize=%d: %d wrong\n", nd,
		    itemsize, bad);
out:
	free(raw);
	free(out);
}

static void
test_fortran(void)
{
	static const uint64_t s2[] = { 3, 5 }, s2b[] = { 70, 45 },
	    s3[] = { 4, 3, 2 }, s4[] = { 2, 3, 4, 5 }, s4b[] = { 33, 2, 1, 40 },
	    s1[] = { 9 }, s2c[] = { 1, 100 };

	fortran_case(2, s2, 4, 0);
	fortran_case(2, s2b, 4, 0);
	fortran_case(2, s2b, 8, 1);
	fortran_case(3, s3, 4, 0);
	fortran_case(4, s4, 8, 0);
	fortran_case(4, s4b, 4, 0);
	fortran_case(1, s1, 4, 0);
	fortran_case(2, s2c, 8, 1);
}

static void
test_shape_str(void)
{
	uint64_t s[3] = { 3, 4, 18446744073709551615ULL };
	char buf[64], tiny[6];

	CHECK_STR(npy_shape_str(0, s, buf, sizeof(buf)), "()");
	CHECK_STR(npy_shape_str(1, s, buf, sizeof(buf)), "(3,)");
	CHECK_STR(npy_shape_str(2, s, buf, sizeof(buf)), "(3, 4)");
	CHECK_STR(npy_shape_str(3, s, buf, sizeof(buf)),
	    "(3, 4, 18446744073709551615)");
	memset(tiny, 'x', sizeof(tiny));
	npy_shape_str(3, s, tiny, sizeof(tiny));
	CHECK(memchr(tiny, '\0', sizeof(tiny)) != NULL);
	CHECK(strncmp(tiny, "(3, 4", 5) == 0);
}

int
main(void)
{
	test_accept();
	test_refuse();
	test_half();
	test_decode();
	test_fortran();
	test_shape_str();
	return t_done("test_npy");
}
