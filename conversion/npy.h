/*
 * npy: a strict parser for the .npy header and a decoder of .npy data into
 * native float32.
 *
 * The header is a Python dict literal.  We never evaluate it: we accept
 * exactly the grammar numpy writes (keys 'descr', 'fortran_order', 'shape'
 * in any order, string/bool/tuple values, optional trailing comma, space
 * padding, final newline) and refuse everything else with a message that
 * names the offending byte offset.  Every shape product is overflow-checked.
 */
#ifndef NPY_H
#define NPY_H

#include <stddef.h>
#include <stdint.h>

#include "wb_err.h"

#define NPY_MAX_DIMS		32	/* numpy allows 64; no weight needs more */
#define NPY_MAGIC_LEN		6	/* "\x93NUMPY" */
#define NPY_PREAMBLE_MAX	12	/* magic + version + u4 length */
#define NPY_HEADER_MAX		65536	/* numpy itself stops at 10000 by default */

enum npy_kind {
	NPY_FLOAT = 'f',
	NPY_INT = 'i',
	NPY_UINT = 'u',
	NPY_BOOL = 'b'
};

struct npy_header {
	int		 major, minor;	/* file format version: 1.0, 2.0, 3.0 */
	char		 descr[16];	/* as written, e.g. "<f4" */
	enum npy_kind	 kind;
	int		 itemsize;	/* bytes per element: 1, 2, 4, 8 */
	int		 big_endian;	/* 1 if '>' (or '|'/'=' resolved to big) */
	int		 fortran_order;
	int		 ndim;		/* 0 for a scalar */
	uint64_t	 shape[NPY_MAX_DIMS];
	uint64_t	 nelem;		/* product of shape (1 for a scalar) */
	uint64_t	 nbytes;	/* nelem * itemsize */
	uint64_t	 data_offset;	/* bytes from member start to data */
};

/*
 * Parse the preamble and header at the start of a member.  buf holds the
 * first len bytes of the member (at least NPY_PREAMBLE_MAX, or the whole
 * member if shorter).  Returns 0 and fills *h, or:
 *  - WB_E_NPY with a message naming `what` (the member's key) and the offset,
 *  - WB_E_DTYPE for object arrays ('|O'), strings, complex, structured types,
 *  - WB_E_LIMIT if the header is longer than NPY_HEADER_MAX or the shape
 *    product overflows 64 bits.
 * If len is too short to hold the whole header, returns WB_E_NPY only when
 * the member is known to be that short (member_len == len); otherwise sets
 * *need to the total header length required and returns 0 with h->ndim = -1.
 */
int	npy_parse(const uint8_t *buf, size_t len, uint64_t member_len,
	    const char *what, struct npy_header *h, size_t *need,
	    struct wb_err *err);

/*
 * Decode nelem elements of raw data (as laid out by *h: dtype, byte order,
 * fortran order) into dst as native float32 in C (row-major) order.
 * raw and dst must not overlap.  Integers and bools convert exactly where
 * float32 can hold them.
 */
void	npy_to_f32(const struct npy_header *h, const void *raw, float *dst);

/* "float32", "int64", "bool", ... : numpy's name for the dtype. */
const char *npy_dtype_name(const struct npy_header *h);

/* Format shape as "(3, 4)" / "()" into buf; returns buf. */
char	*npy_shape_str(int ndim, const uint64_t *shape, char *buf, size_t len);

#endif
