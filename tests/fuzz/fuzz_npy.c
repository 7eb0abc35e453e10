/*
 * fuzz_npy: the .npy header parser (npy_parse) and the decoder behind it.
 *
 * Each input is treated as the start of a member twice: once as the whole
 * member (member_len = size, the seekable reader's view) and once as the
 * first bytes of a longer member of unknown length (the streaming view),
 * where the parser may instead ask for more bytes.  Besides "no crash",
 * the driver checks the contract of npy.h: a parsed header's sizes are
 * consistent and overflow-free, a request for more bytes is larger than
 * what it had and within the header cap, and both views agree when the
 * whole header is present.  When the data fits it is decoded to float32.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "wb_err.h"

#define FUZZ_NPY_DECODE_MAX	(1u << 20)	/* elements decoded per input */

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_npy_check(const struct npy_header *h, uint64_t member_len)
{
	uint64_t n = 1;
	int i;

	if (h->ndim < 0 || h->ndim > NPY_MAX_DIMS)
		abort();
	if (h->itemsize != 1 && h->itemsize != 2 && h->itemsize != 4 &&
	    h->itemsize != 8)
		abort();
	for (i = 0; i < h->ndim; i++)
		n = h->shape[i] == 0 ? 0 : n * h->shape[i];
	if (n != h->nelem || h->nbytes != h->nelem * (uint64_t)h->itemsize ||
	    (h->itemsize != 0 && h->nbytes / (uint64_t)h->itemsize !=
	    h->nelem))
		abort();
	if (h->data_offset > member_len || h->data_offset < 10 ||
	    h->data_offset > NPY_PREAMBLE_MAX + NPY_HEADER_MAX)
		abort();
	if (memchr(h->descr, '\0', sizeof(h->descr)) == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct npy_header h, h2;
	struct wb_err err;
	size_t need = 0, need2 = 0;
	char sbuf[NPY_MAX_DIMS * 22 + 4], small[7];
	float *dst;
	int rc, rc2;

	/* The whole member. */
	wb_err_clear(&err);
	rc = npy_parse(data, size, size, "fuzz", &h, &need, &err);
	if (rc != 0) {
		if (err.code == WB_OK || err.msg[0] == '\0' || h.ndim != -1)
			abort();
	} else {
		/* With the whole member at hand it never asks for more. */
		if (h.ndim < 0 || need != 0)
			abort();
		fuzz_npy_check(&h, size);
		(void)npy_dtype_name(&h);
		(void)npy_shape_str(h.ndim, h.shape, sbuf, sizeof(sbuf));
		(void)npy_shape_str(h.ndim, h.shape, small, sizeof(small));
		if (h.nbytes <= size - h.data_offset &&
		    h.nelem <= FUZZ_NPY_DECODE_MAX && h.nelem > 0) {
			if ((dst = malloc((size_t)h.nelem * sizeof(*dst))) ==
			    NULL)
				abort();
			npy_to_f32(&h, data + h.data_offset, dst);
			free(dst);
		}
	}

	/* The first bytes of a longer member, as the streaming reader sees. */
	if (size < NPY_PREAMBLE_MAX)
		return 0;
	wb_err_clear(&err);
	rc2 = npy_parse(data, size, UINT64_MAX, "fuzz", &h2, &need2, &err);
	if (rc2 == 0 && h2.ndim < 0) {
		if (need2 <= size || need2 > NPY_PREAMBLE_MAX + NPY_HEADER_MAX)
			abort();
		/* The whole-member view must have failed: the header is cut. */
		if (rc == 0)
			abort();
	} else if (rc2 == 0) {
		fuzz_npy_check(&h2, UINT64_MAX);
		/* Both views parse a complete header the same way. */
		if (rc != 0 || h.data_offset != h2.data_offset ||
		    h.nbytes != h2.nbytes || h.ndim != h2.ndim ||
		    memcmp(h.shape, h2.shape, sizeof(h.shape)) != 0)
			abort();
	} else if (rc == 0)
		abort();
	return 0;
}
