/*
 * npy: the .npy header parser and the float32 decoder.
 *
 * The header is a Python dict literal, and the only safe way to read one
 * is to accept exactly the grammar numpy writes and nothing else.  The
 * parser below is a hand-written scanner over a bounded buffer: strings
 * without escapes, the two booleans, and tuples of non-negative decimal
 * integers.  Anything else stops it with the byte offset (counted from the
 * start of the member) where it went wrong.  Unsupported dtypes are told
 * apart from malformed headers (WB_E_DTYPE versus WB_E_NPY) so the user
 * learns whether the file is broken or merely holds something we refuse,
 * such as a pickled object array.
 *
 * The decoder is on the hot path: a 100 MB tensor is 25 million elements.
 * The common case, little-endian float32 in C order, is one memcpy.  Every
 * other dtype gets its own tight loop, chosen once per run of elements by a
 * switch; the per-element work is inlined loads, an optional byte swap and
 * a cast.  Column-major (fortran_order) data is transposed while it is
 * converted, in square tiles so that both the reads and the writes stay in
 * cache, and without any scratch memory.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "npy.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define NPY_HOST_BIG	1
#else
#define NPY_HOST_BIG	0
#endif

#define NPY_KEY_MAX	16	/* longest key we look at, plus NUL */
#define NPY_TILE	32	/* transpose tile edge, in elements */

struct npy_scan {
	const uint8_t	*p;	/* the header text */
	size_t		 pos;
	size_t		 end;
	size_t		 base;	/* offset of p[0] in the member */
	const char	*what;
	struct wb_err	*err;
};

static int	npy_scan_fail(struct npy_scan *, const char *);
static void	npy_scan_ws(struct npy_scan *);
static int	npy_scan_char(struct npy_scan *, int, const char *);
static int	npy_scan_string(struct npy_scan *, char *, size_t, size_t *);
static int	npy_scan_bool(struct npy_scan *, int *);
static int	npy_scan_dim(struct npy_scan *, uint64_t *);
static int	npy_scan_shape(struct npy_scan *, struct npy_header *);
static int	npy_scan_dict(struct npy_scan *, struct npy_header *);
static int	npy_set_descr(struct npy_header *, const char *, const char *,
		    struct wb_err *);
static int	npy_count(struct npy_header *, const char *, struct wb_err *);

/*
 * Report what we found instead of what we wanted, at the current byte.
 */
static int
npy_scan_fail(struct npy_scan *s, const char *wanted)
{
	size_t off = s->base + s->pos;

	if (s->pos >= s->end)
		return wb_err_set(s->err, WB_E_NPY,
		    "tensor '%s': .npy header ends at byte %zu, expected %s",
		    s->what, off, wanted);
	if (s->p[s->pos] >= 0x21 && s->p[s->pos] < 0x7f)
		return wb_err_set(s->err, WB_E_NPY,
		    "tensor '%s': .npy header: expected %s at byte %zu, "
		    "found '%c'", s->what, wanted, off, s->p[s->pos]);
	return wb_err_set(s->err, WB_E_NPY,
	    "tensor '%s': .npy header: expected %s at byte %zu, "
	    "found byte 0x%02x", s->what, wanted, off, s->p[s->pos]);
}

/* Python allows any whitespace between tokens; numpy pads with spaces. */
static void
npy_scan_ws(struct npy_scan *s)
{
	while (s->pos < s->end && (s->p[s->pos] == ' ' ||
	    s->p[s->pos] == '\t' || s->p[s->pos] == '\n' ||
	    s->p[s->pos] == '\r'))
		s->pos++;
}

static int
npy_scan_char(struct npy_scan *s, int c, const char *wanted)
{
	if (s->pos >= s->end || s->p[s->pos] != c)
		return npy_scan_fail(s, wanted);
	s->pos++;
	return 0;
}

/*
 * A quoted string without escapes.  Nothing numpy writes needs one, and a
 * backslash would mean interpreting the literal, which we refuse to do.
 * Strings longer than the buffer are cut (and flagged through *len) so the
 * caller can say what it saw.
 */
static int
npy_scan_string(struct npy_scan *s, char *out, size_t outsz, size_t *len)
{
	size_t start, n;
	uint8_t q, c;

	if (s->pos >= s->end || (s->p[s->pos] != '\'' && s->p[s->pos] != '"'))
		return npy_scan_fail(s, "a quoted string");
	q = s->p[s->pos++];
	start = s->pos;
	for (;;) {
		if (s->pos >= s->end)
			return npy_scan_fail(s, "the closing quote");
		c = s->p[s->pos];
		if (c == q)
			break;
		if (c < 0x20 || c >= 0x7f || c == '\\')
			return npy_scan_fail(s, "a plain ASCII character");
		s->pos++;
	}
	n = s->pos - start;
	*len = n;
	if (n >= outsz)
		n = outsz - 1;
	memcpy(out, s->p + start, n);
	out[n] = '\0';
	s->pos++;
	return 0;
}

static int
npy_scan_bool(struct npy_scan *s, int *v)
{
	size_t left = s->end - s->pos;
	size_t n;

	if (left >= 4 && memcmp(s->p + s->pos, "True", 4) == 0) {
		*v = 1;
		n = 4;
	} else if (left >= 5 && memcmp(s->p + s->pos, "False", 5) == 0) {
		*v = 0;
		n = 5;
	} else
		return npy_scan_fail(s, "True or False");
	/* "Truex" is a name, not a boolean. */
	if (s->pos + n < s->end && (s->p[s->pos + n] == '_' ||
	    (s->p[s->pos + n] >= '0' && s->p[s->pos + n] <= '9') ||
	    ((s->p[s->pos + n] | 0x20) >= 'a' &&
	    (s->p[s->pos + n] | 0x20) <= 'z'))) {
		s->pos += n;
		return npy_scan_fail(s, "',' or '}' after the boolean");
	}
	s->pos += n;
	return 0;
}

/*
 * A dimension: decimal digits, no sign, no leading zeros (Python 3 rejects
 * them), at most INT64_MAX (numpy's npy_intp).  A trailing 'L' is accepted
 * because numpy on Python 2 wrote long integers that way.
 */
static int
npy_scan_dim(struct npy_scan *s, uint64_t *v)
{
	size_t start = s->pos;
	uint64_t x = 0;
	unsigned d;

	if (s->pos < s->end && s->p[s->pos] == '-')
		return wb_err_set(s->err, WB_E_NPY,
		    "tensor '%s': .npy header: negative dimension at byte %zu",
		    s->what, s->base + s->pos);
	while (s->pos < s->end && s->p[s->pos] >= '0' && s->p[s->pos] <= '9') {
		d = s->p[s->pos] - '0';
		if (x > ((uint64_t)INT64_MAX - d) / 10)
			return wb_err_set(s->err, WB_E_LIMIT,
			    "tensor '%s': .npy header: dimension at byte %zu "
			    "is larger than 2^63-1", s->what, s->base + start);
		x = x * 10 + d;
		s->pos++;
	}
	if (s->pos == start)
		return npy_scan_fail(s, "a dimension");
	if (s->pos - start > 1 && s->p[start] == '0') {
		s->pos = start;
		return npy_scan_fail(s, "a dimension without leading zeros");
	}
	if (s->pos < s->end && (s->p[s->pos] == 'L' || s->p[s->pos] == 'l'))
		s->pos++;
	*v = x;
	return 0;
}

/*
 * "()", "(3,)", "(3, 4)", "(3, 4,)".  "(3)" is the integer 3 in Python,
 * not a tuple, and numpy refuses it, so do we.
 */
static int
npy_scan_shape(struct npy_scan *s, struct npy_header *h)
{
	int comma = 0;
	int rc;

	if ((rc = npy_scan_char(s, '(', "'(' starting the shape")) != 0)
		return rc;
	h->ndim = 0;
	npy_scan_ws(s);
	while (s->pos < s->end && s->p[s->pos] != ')') {
		if (h->ndim == NPY_MAX_DIMS)
			return wb_err_set(s->err, WB_E_LIMIT,
			    "tensor '%s': .npy header: more than %d dimensions "
			    "at byte %zu", s->what, NPY_MAX_DIMS,
			    s->base + s->pos);
		if ((rc = npy_scan_dim(s, &h->shape[h->ndim])) != 0)
			return rc;
		h->ndim++;
		npy_scan_ws(s);
		comma = 0;
		if (s->pos < s->end && s->p[s->pos] == ',') {
			comma = 1;
			s->pos++;
			npy_scan_ws(s);
		} else if (s->pos < s->end && s->p[s->pos] != ')')
			return npy_scan_fail(s, "',' or ')' in the shape");
	}
	if (h->ndim == 1 && !comma)
		return npy_scan_fail(s, "',' making the shape a tuple");
	return npy_scan_char(s, ')', "')' ending the shape");
}

static int
npy_scan_dict(struct npy_scan *s, struct npy_header *h)
{
	char key[NPY_KEY_MAX], val[sizeof(h->descr) + 1];
	int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
	size_t len, keypos;
	int rc;

	npy_scan_ws(s);
	if ((rc = npy_scan_char(s, '{', "'{' starting the header")) != 0)
		return rc;
	npy_scan_ws(s);
	while (s->pos < s->end && s->p[s->pos] != '}') {
		keypos = s->base + s->pos;
		if ((rc = npy_scan_string(s, key, sizeof(key), &len)) != 0)
			return rc;
		npy_scan_ws(s);
		if ((rc = npy_scan_char(s, ':', "':' after the key")) != 0)
			return rc;
		npy_scan_ws(s);
		if (len < sizeof(key) && strcmp(key, "descr") == 0 &&
		    !seen_descr) {
			seen_descr = 1;
			if (s->pos < s->end && s->p[s->pos] == '[')
				return wb_err_set(s->err, WB_E_DTYPE,
				    "tensor '%s': structured dtypes (a list "
				    "'descr') are not supported", s->what);
			if ((rc = npy_scan_string(s, val, sizeof(val),
			    &len)) != 0)
				return rc;
			if (len >= sizeof(h->descr))
				return wb_err_set(s->err, WB_E_DTYPE,
				    "tensor '%s': unsupported dtype '%s...'",
				    s->what, val);
			if ((rc = npy_set_descr(h, val, s->what,
			    s->err)) != 0)
				return rc;
		} else if (len < sizeof(key) &&
		    strcmp(key, "fortran_order") == 0 && !seen_fortran) {
			seen_fortran = 1;
			if ((rc = npy_scan_bool(s, &h->fortran_order)) != 0)
				return rc;
		} else if (len < sizeof(key) && strcmp(key, "shape") == 0 &&
		    !seen_shape) {
			seen_shape = 1;
			if ((rc = npy_scan_shape(s, h)) != 0)
				return rc;
		} else if (len < sizeof(key) &&
		    (strcmp(key, "descr") == 0 ||
		    strcmp(key, "fortran_order") == 0 ||
		    strcmp(key, "shape") == 0))
			return wb_err_set(s->err, WB_E_NPY,
			    "tensor '%s': .npy header: key '%s' repeated at "
			    "byte %zu", s->what, key, keypos);
		else
			return wb_err_set(s->err, WB_E_NPY,
			    "tensor '%s': .npy header: unexpected key '%s%s' "
			    "at byte %zu", s->what, key,
			    len < sizeof(key) ? "" : "...", keypos);
		npy_scan_ws(s);
		if (s->pos < s->end && s->p[s->pos] == ',') {
			s->pos++;
			npy_scan_ws(s);
		} else if (s->pos >= s->end || s->p[s->pos] != '}')
			return npy_scan_fail(s, "',' or '}'");
	}
	if ((rc = npy_scan_char(s, '}', "'}' ending the header")) != 0)
		return rc;
	/* numpy pads with spaces and ends with '\n'; nothing else may follow. */
	npy_scan_ws(s);
	if (s->pos != s->end)
		return npy_scan_fail(s, "only padding after the header");
	if (!seen_descr || !seen_fortran || !seen_shape)
		return wb_err_set(s->err, WB_E_NPY,
		    "tensor '%s': .npy header lacks '%s'", s->what,
		    !seen_descr ? "descr" : !seen_fortran ? "fortran_order" :
		    "shape");
	return 0;
}

/*
 * Accept the typestrs numpy writes for the numeric types we convert and
 * name everything else precisely, so the user knows what to re-export.
 */
static int
npy_set_descr(struct npy_header *h, const char *d, const char *what,
    struct wb_err *err)
{
	const char *t = d;
	int order = 0, size = 0, code;

	if (*t == '<' || *t == '>' || *t == '|' || *t == '=')
		order = *t++;
	if (strcmp(t, "?") == 0) {
		code = 'b';
		size = 1;
	} else {
		code = (unsigned char)*t;
		if (code != '\0')
			t++;
		if (*t >= '1' && *t <= '9') {
			size = *t++ - '0';
			if (*t >= '0' && *t <= '9')
				size = size * 10 + (*t++ - '0');
		}
		/* Trailing junk makes a numeric code unknown; the refused
		 * families are named whatever follows ('<M8[ns]'). */
		if (*t != '\0' && code != '\0' &&
		    strchr("fiub", code) != NULL)
			code = -1;
	}

	switch (code) {
	case 'f':
		if (size == 2 || size == 4 || size == 8)
			break;
		if (size > 8)
			return wb_err_set(err, WB_E_DTYPE,
			    "tensor '%s': dtype '%s' (long double) is not "
			    "supported; export float32", what, d);
		goto unknown;
	case 'i':
	case 'u':
		if (size == 1 || size == 2 || size == 4 || size == 8)
			break;
		goto unknown;
	case 'b':
		if (size == 1)
			break;
		goto unknown;
	case 'O':
		return wb_err_set(err, WB_E_DTYPE,
		    "tensor '%s': object arrays (pickles) are not supported; "
		    "export tensors with .numpy()", what);
	case 'c':
		return wb_err_set(err, WB_E_DTYPE,
		    "tensor '%s': complex dtype '%s' is not supported", what, d);
	case 'S':
	case 'U':
	case 'a':
		return wb_err_set(err, WB_E_DTYPE,
		    "tensor '%s': string dtype '%s' is not supported", what, d);
	case 'V':
		return wb_err_set(err, WB_E_DTYPE,
		    "tensor '%s': raw or structured dtype '%s' is not "
		    "supported", what, d);
	case 'M':
	case 'm':
		return wb_err_set(err, WB_E_DTYPE,
		    "tensor '%s': datetime dtype '%s' is not supported", what,
		    d);
	default:
		goto unknown;
	}
	if (strlen(d) >= sizeof(h->descr))
		goto unknown;
	memcpy(h->descr, d, strlen(d) + 1);
	h->kind = (enum npy_kind)code;
	h->itemsize = size;
	if (size == 1)
		h->big_endian = 0;
	else if (order == '>')
		h->big_endian = 1;
	else if (order == '<')
		h->big_endian = 0;
	else
		h->big_endian = NPY_HOST_BIG;
	return 0;
unknown:
	return wb_err_set(err, WB_E_DTYPE,
	    "tensor '%s': unsupported dtype '%s'", what, d);
}

/*
 * nelem and nbytes, refusing anything whose byte count does not fit in 64
 * bits.  Zero-sized dimensions are legal (an empty tensor), but the other
 * dimensions still have to make sense on their own.
 */
static int
npy_count(struct npy_header *h, const char *what, struct wb_err *err)
{
	uint64_t n = 1, nz = 1;
	char sbuf[NPY_MAX_DIMS * 22 + 4];
	int i;

	for (i = 0; i < h->ndim; i++) {
		if (h->shape[i] == 0) {
			n = 0;
			continue;
		}
		if (nz > UINT64_MAX / h->shape[i] ||
		    nz * h->shape[i] > UINT64_MAX / (uint64_t)h->itemsize)
			return wb_err_set(err, WB_E_LIMIT,
			    "tensor '%s': shape %s has too many elements "
			    "(the byte count overflows 64 bits)", what,
			    npy_shape_str(h->ndim, h->shape, sbuf,
			    sizeof(sbuf)));
		nz *= h->shape[i];
	}
	h->nelem = n == 0 ? 0 : nz;
	h->nbytes = h->nelem * (uint64_t)h->itemsize;
	return 0;
}

int
npy_parse(const uint8_t *buf, size_t len, uint64_t member_len,
    const char *what, struct npy_header *h, size_t *need, struct wb_err *err)
{
	struct npy_scan s;
	size_t start;
	uint64_t hlen, total;
	int rc;

	memset(h, 0, sizeof(*h));
	h->ndim = -1;
	*need = 0;

	if (len < NPY_MAGIC_LEN + 2) {
		if (member_len <= len)
			return wb_err_set(err, WB_E_NPY,
			    "tensor '%s': member is %zu bytes, too short for a "
			    ".npy file", what, len);
		*need = NPY_PREAMBLE_MAX;
		return 0;
	}
	if (memcmp(buf, "\x93NUMPY", NPY_MAGIC_LEN) != 0)
		return wb_err_set(err, WB_E_NPY,
		    "tensor '%s': not a .npy file (bad magic at byte 0)", what);
	h->major = buf[6];
	h->minor = buf[7];
	if (h->major == 1 && h->minor == 0)
		start = 10;
	else if ((h->major == 2 || h->major == 3) && h->minor == 0)
		start = 12;
	else
		return wb_err_set(err, WB_E_NPY,
		    "tensor '%s': unsupported .npy format version %d.%d at "
		    "byte 6", what, h->major, h->minor);
	if (len < start) {
		if (member_len <= len)
			return wb_err_set(err, WB_E_NPY,
			    "tensor '%s': member ends at byte %zu, inside the "
			    ".npy preamble", what, len);
		*need = start;
		return 0;
	}
	if (start == 10)
		hlen = (uint64_t)buf[8] | (uint64_t)buf[9] << 8;
	else
		hlen = (uint64_t)buf[8] | (uint64_t)buf[9] << 8 |
		    (uint64_t)buf[10] << 16 | (uint64_t)buf[11] << 24;
	if (hlen > NPY_HEADER_MAX)
		return wb_err_set(err, WB_E_LIMIT,
		    "tensor '%s': .npy header is %" PRIu64 " bytes, more than "
		    "the %d allowed", what, hlen, NPY_HEADER_MAX);
	total = start + hlen;
	if (member_len < total)
		return wb_err_set(err, WB_E_NPY,
		    "tensor '%s': member ends at byte %" PRIu64 ", inside its "
		    "%" PRIu64 "-byte .npy header", what, member_len, total);
	if (len < total) {
		if (member_len <= len)
			return wb_err_set(err, WB_E_NPY,
			    "tensor '%s': member ends at byte %zu, inside its "
			    "%" PRIu64 "-byte .npy header", what, len, total);
		*need = (size_t)total;
		return 0;
	}

	s.p = buf + start;
	s.pos = 0;
	s.end = (size_t)hlen;
	s.base = start;
	s.what = what;
	s.err = err;
	if ((rc = npy_scan_dict(&s, h)) != 0)
		goto fail;
	if ((rc = npy_count(h, what, err)) != 0)
		goto fail;
	h->data_offset = total;
	return 0;
fail:
	h->ndim = -1;
	return rc;
}

/* ---- decoding ---------------------------------------------------------- */

static inline float
npy_half(uint16_t v)
{
	uint32_t sign = (uint32_t)(v & 0x8000) << 16;
	uint32_t exp = (v >> 10) & 0x1f;
	uint32_t mant = v & 0x3ff;
	uint32_t bits;
	float f;

	if (exp == 0x1f)		/* inf and nan, payload kept */
		bits = sign | 0x7f800000 | mant << 13;
	else if (exp != 0)		/* normal: rebias 15 -> 127 */
		bits = sign | (exp + 112) << 23 | mant << 13;
	else {
		/* zero and subnormals: mant * 2^-24, exact in float32 */
		f = (float)mant * 0x1p-24f;
		return sign ? -f : f;
	}
	memcpy(&f, &bits, sizeof(f));
	return f;
}

/*
 * One decoder per (dtype, byte order).  Each is a static inline function of
 * a byte pointer, so the loops below compile to straight-line code with no
 * call per element.  sw is a constant: the swap disappears when it is 0.
 */
static inline uint16_t
npy_ld16(const uint8_t *p, int sw)
{
	uint16_t u;

	memcpy(&u, p, sizeof(u));
	return sw ? __builtin_bswap16(u) : u;
}

static inline uint32_t
npy_ld32(const uint8_t *p, int sw)
{
	uint32_t u;

	memcpy(&u, p, sizeof(u));
	return sw ? __builtin_bswap32(u) : u;
}

static inline uint64_t
npy_ld64(const uint8_t *p, int sw)
{
	uint64_t u;

	memcpy(&u, p, sizeof(u));
	return sw ? __builtin_bswap64(u) : u;
}

#define NPY_DEC_INT(name, bits, T, sw)					\
static inline float							\
name(const uint8_t *p)							\
{									\
	uint##bits##_t u = npy_ld##bits(p, sw);				\
	T v;								\
	memcpy(&v, &u, sizeof(v));					\
	return (float)v;						\
}

NPY_DEC_INT(npy_d_i2, 16, int16_t, 0)
NPY_DEC_INT(npy_d_i2s, 16, int16_t, 1)
NPY_DEC_INT(npy_d_i4, 32, int32_t, 0)
NPY_DEC_INT(npy_d_i4s, 32, int32_t, 1)
NPY_DEC_INT(npy_d_i8, 64, int64_t, 0)
NPY_DEC_INT(npy_d_i8s, 64, int64_t, 1)
NPY_DEC_INT(npy_d_u2, 16, uint16_t, 0)
NPY_DEC_INT(npy_d_u2s, 16, uint16_t, 1)
NPY_DEC_INT(npy_d_u4, 32, uint32_t, 0)
NPY_DEC_INT(npy_d_u4s, 32, uint32_t, 1)
NPY_DEC_INT(npy_d_u8, 64, uint64_t, 0)
NPY_DEC_INT(npy_d_u8s, 64, uint64_t, 1)
NPY_DEC_INT(npy_d_f4, 32, float, 0)
NPY_DEC_INT(npy_d_f4s, 32, float, 1)
NPY_DEC_INT(npy_d_f8, 64, double, 0)
NPY_DEC_INT(npy_d_f8s, 64, double, 1)

static inline float
npy_d_i1(const uint8_t *p)
{
	return (float)(int8_t)*p;
}

static inline float
npy_d_u1(const uint8_t *p)
{
	return (float)*p;
}

static inline float
npy_d_b1(const uint8_t *p)
{
	return *p != 0 ? 1.0f : 0.0f;
}

static inline float
npy_d_f2(const uint8_t *p)
{
	return npy_half(npy_ld16(p, 0));
}

static inline float
npy_d_f2s(const uint8_t *p)
{
	return npy_half(npy_ld16(p, 1));
}

enum npy_code {
	NPY_C_F2, NPY_C_F2S, NPY_C_F4, NPY_C_F4S, NPY_C_F8, NPY_C_F8S,
	NPY_C_I1, NPY_C_I2, NPY_C_I2S, NPY_C_I4, NPY_C_I4S, NPY_C_I8,
	NPY_C_I8S, NPY_C_U1, NPY_C_U2, NPY_C_U2S, NPY_C_U4, NPY_C_U4S,
	NPY_C_U8, NPY_C_U8S, NPY_C_B1
};

static enum npy_code
npy_code_of(const struct npy_header *h)
{
	int sw = h->big_endian != NPY_HOST_BIG;

	switch (h->kind) {
	case NPY_FLOAT:
		if (h->itemsize == 2)
			return sw ? NPY_C_F2S : NPY_C_F2;
		if (h->itemsize == 4)
			return sw ? NPY_C_F4S : NPY_C_F4;
		return sw ? NPY_C_F8S : NPY_C_F8;
	case NPY_INT:
		if (h->itemsize == 1)
			return NPY_C_I1;
		if (h->itemsize == 2)
			return sw ? NPY_C_I2S : NPY_C_I2;
		if (h->itemsize == 4)
			return sw ? NPY_C_I4S : NPY_C_I4;
		return sw ? NPY_C_I8S : NPY_C_I8;
	case NPY_UINT:
		if (h->itemsize == 1)
			return NPY_C_U1;
		if (h->itemsize == 2)
			return sw ? NPY_C_U2S : NPY_C_U2;
		if (h->itemsize == 4)
			return sw ? NPY_C_U4S : NPY_C_U4;
		return sw ? NPY_C_U8S : NPY_C_U8;
	case NPY_BOOL:
		break;
	}
	return NPY_C_B1;
}

/*
 * Convert n elements: source elements `stride` bytes apart, destination
 * contiguous.  The contiguous case gets its own loop with a constant
 * stride so the compiler can vectorise it.
 */
#define NPY_RUN(dec, size)						\
	do {								\
		if (stride == (size)) {					\
			for (i = 0; i < n; i++)				\
				dst[i] = dec(src + i * (size));		\
		} else {						\
			for (i = 0; i < n; i++)				\
				dst[i] = dec(src + i * stride);		\
		}							\
	} while (0)

static void
npy_run(enum npy_code code, const uint8_t *src, size_t stride, float *dst,
    size_t n)
{
	size_t i;

	switch (code) {
	case NPY_C_F2:	NPY_RUN(npy_d_f2, 2); break;
	case NPY_C_F2S:	NPY_RUN(npy_d_f2s, 2); break;
	case NPY_C_F4:
		if (stride == 4) {
			memcpy(dst, src, n * 4);
			break;
		}
		NPY_RUN(npy_d_f4, 4);
		break;
	case NPY_C_F4S:	NPY_RUN(npy_d_f4s, 4); break;
	case NPY_C_F8:	NPY_RUN(npy_d_f8, 8); break;
	case NPY_C_F8S:	NPY_RUN(npy_d_f8s, 8); break;
	case NPY_C_I1:	NPY_RUN(npy_d_i1, 1); break;
	case NPY_C_I2:	NPY_RUN(npy_d_i2, 2); break;
	case NPY_C_I2S:	NPY_RUN(npy_d_i2s, 2); break;
	case NPY_C_I4:	NPY_RUN(npy_d_i4, 4); break;
	case NPY_C_I4S:	NPY_RUN(npy_d_i4s, 4); break;
	case NPY_C_I8:	NPY_RUN(npy_d_i8, 8); break;
	case NPY_C_I8S:	NPY_RUN(npy_d_i8s, 8); break;
	case NPY_C_U1:	NPY_RUN(npy_d_u1, 1); break;
	case NPY_C_U2:	NPY_RUN(npy_d_u2, 2); break;
	case NPY_C_U2S:	NPY_RUN(npy_d_u2s, 2); break;
	case NPY_C_U4:	NPY_RUN(npy_d_u4, 4); break;
	case NPY_C_U4S:	NPY_RUN(npy_d_u4s, 4); break;
	case NPY_C_U8:	NPY_RUN(npy_d_u8, 8); break;
	case NPY_C_U8S:	NPY_RUN(npy_d_u8s, 8); break;
	case NPY_C_B1:	NPY_RUN(npy_d_b1, 1); break;
	}
}

/*
 * Column-major to row-major for any ndim.  In the source, axis 0 varies
 * fastest (element stride fs[0] = 1, fs[k] = fs[k-1] * shape[k-1]); in the
 * destination the last axis does.  For every combination of the middle
 * axes we transpose the (axis 0, last axis) plane in NPY_TILE squares:
 * each destination row segment is one strided run, and the tile's source
 * columns stay in cache across the rows of the tile.
 */
static void
npy_fortran(const struct npy_header *h, enum npy_code code,
    const uint8_t *raw, float *dst)
{
	size_t fs[NPY_MAX_DIMS], ds[NPY_MAX_DIMS], idx[NPY_MAX_DIMS];
	size_t isz = (size_t)h->itemsize;
	size_t rows, cols, last_stride, mid_src, mid_dst;
	size_t r0, c0, r, rn, cn;
	int nd = h->ndim, k;

	fs[0] = 1;
	for (k = 1; k < nd; k++)
		fs[k] = fs[k - 1] * (size_t)h->shape[k - 1];
	ds[nd - 1] = 1;
	for (k = nd - 2; k >= 0; k--)
		ds[k] = ds[k + 1] * (size_t)h->shape[k + 1];
	rows = (size_t)h->shape[0];
	cols = (size_t)h->shape[nd - 1];
	last_stride = fs[nd - 1] * isz;
	memset(idx, 0, sizeof(idx));
	mid_src = mid_dst = 0;
	for (;;) {
		for (r0 = 0; r0 < rows; r0 += NPY_TILE) {
			rn = rows - r0 < NPY_TILE ? rows - r0 : NPY_TILE;
			for (c0 = 0; c0 < cols; c0 += NPY_TILE) {
				cn = cols - c0 < NPY_TILE ? cols - c0 :
				    NPY_TILE;
				for (r = r0; r < r0 + rn; r++)
					npy_run(code, raw + (r + mid_src +
					    c0 * fs[nd - 1]) * isz,
					    last_stride,
					    dst + r * ds[0] + mid_dst + c0, cn);
			}
		}
		/* Next combination of the middle axes 1 .. nd-2. */
		for (k = nd - 2; k >= 1; k--) {
			idx[k]++;
			mid_src += fs[k];
			mid_dst += ds[k];
			if (idx[k] < (size_t)h->shape[k])
				break;
			mid_src -= idx[k] * fs[k];
			mid_dst -= idx[k] * ds[k];
			idx[k] = 0;
		}
		if (k < 1)
			break;
	}
}

void
npy_to_f32(const struct npy_header *h, const void *raw, float *dst)
{
	enum npy_code code;

	if (h->nelem == 0)
		return;
	code = npy_code_of(h);
	if (h->fortran_order && h->ndim > 1)
		npy_fortran(h, code, raw, dst);
	else
		npy_run(code, raw, (size_t)h->itemsize, dst,
		    (size_t)h->nelem);
}

const char *
npy_dtype_name(const struct npy_header *h)
{
	switch (h->kind) {
	case NPY_FLOAT:
		return h->itemsize == 2 ? "float16" :
		    h->itemsize == 4 ? "float32" : "float64";
	case NPY_INT:
		return h->itemsize == 1 ? "int8" : h->itemsize == 2 ? "int16" :
		    h->itemsize == 4 ? "int32" : "int64";
	case NPY_UINT:
		return h->itemsize == 1 ? "uint8" :
		    h->itemsize == 2 ? "uint16" :
		    h->itemsize == 4 ? "uint32" : "uint64";
	case NPY_BOOL:
		return "bool";
	}
	return "unknown";
}

char *
npy_shape_str(int ndim, const uint64_t *shape, char *buf, size_t len)
{
	size_t off = 0;
	int i, n;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	n = snprintf(buf, len, "(");
	for (i = 0; i < ndim && n >= 0; i++) {
		off += (size_t)n;
		if (off >= len)
			return buf;
		n = snprintf(buf + off, len - off, "%s%" PRIu64,
		    i > 0 ? ", " : "", shape[i]);
	}
	if (n < 0)
		return buf;
	off += (size_t)n;
	if (off >= len)
		return buf;
	snprintf(buf + off, len - off, "%s", ndim == 1 ? ",)" : ")");
	return buf;
}
