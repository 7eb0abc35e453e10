/*
 * kh5: every HDF5 call in weightbridge lives here.
 *
 * Writes the two Keras weight-file layouts (see docs/formats.md):
 *  - KH5_LEGACY: the tf-keras / Keras 3 legacy `*.h5` weights layout.  Root
 *    attributes `layer_names`, `backend`, `keras_version`; one group per
 *    layer with a `weight_names` attribute; datasets at the paths those names
 *    give.  String-list attributes larger than 64512 bytes are chunked into
 *    `name0`, `name1`, ... exactly as Keras does.
 *  - KH5_KERAS3: the Keras 3 `*.weights.h5` layout: `/layers/<key>/vars/<i>`
 *    (the layer's `name` is a group path, weight paths are relative to it).
 * The whole layout (groups, attributes, datasets of the final shapes) is
 * created up front by kh5_create(); tensors are then written in any order
 * with kh5_write().  HDF5 keeps one global lock, so each kh5 call holds a
 * process-wide mutex and nothing else does HDF5 work.
 * Datasets are native little-endian float32, unfiltered, and contiguous
 * (what Keras writes) unless the caller asks for chunks: a tensor too big
 * to hold whole can then be written a block of its last axis at a time.
 */
#ifndef KH5_H
#define KH5_H

#include <stddef.h>
#include <stdint.h>

#include "wb_err.h"

#define KH5_ATTR_LIMIT	64512	/* HDF5_OBJECT_HEADER_LIMIT in Keras */
#define KH5_MAX_DIMS	32
#define KH5_MAX_NAME	4096	/* bytes in one layer name or weight path */
#define KH5_MAX_LAYERS	65536	/* layers per file */
#define KH5_MAX_WEIGHTS	65536	/* datasets per file; each stays open until close */
#define KH5_VERIFY_BLOCK (16u << 20)	/* bytes kh5_verify reads per slab */
#define KH5_CHUNK_MAX	((uint64_t)1 << 30)	/* bytes in one chunk */

enum kh5_format {
	KH5_LEGACY = 0,		/* "keras-h5" */
	KH5_KERAS3 = 1		/* "keras3" */
};

struct kh5_weight {
	const char	*path;	/* relative to the layer group, e.g. "conv1/kernel:0" or "vars/0" */
	int		 ndim;	/* 0 = scalar */
	const uint64_t	*shape;
	/*
	 * 0: contiguous.  Otherwise the dataset is stored in chunks that
	 * span every axis but the last, and `chunk` indices of the last one
	 * (1 <= chunk <= shape[ndim - 1], ndim >= 1; KH5_CHUNK_MAX bytes at
	 * most), written with kh5_write_chunk().  Loaders read it like any
	 * other dataset.
	 */
	uint64_t	 chunk;
};

struct kh5_layer {
	const char	*name;	/* legacy: layer name; keras3: group path "layers/dense_1" */
	size_t		 nweights;
	const struct kh5_weight *w;
};

struct kh5_meta {
	const char	*keras_version;	/* legacy root attribute, e.g. "2.15.0" */
	const char	*backend;	/* legacy root attribute, e.g. "tensorflow" */
};

struct kh5_writer;

/*
 * Create the file at path (truncating) with the complete layout.  Nothing in
 * layers is kept after the call returns.  On failure nothing needs closing;
 * the caller removes the file.
 *
 * Names: a layer name and a weight path are '/'-separated HDF5 paths and must
 * not be empty, start with '/', or have empty, "." or ".." components
 * (WB_E_USAGE); neither may be longer than KH5_MAX_NAME (WB_E_LIMIT).  No two
 * layers may share a name, no two weights a full path, and no dataset may sit
 * where another name needs a group (WB_E_USAGE).  meta may be NULL (legacy
 * defaults "tensorflow" / "2.15.0"; ignored for KH5_KERAS3).
 */
int	kh5_create(const char *path, enum kh5_format fmt,
	    const struct kh5_layer *layers, size_t nlayers,
	    const struct kh5_meta *meta, struct kh5_writer **out,
	    struct wb_err *err);

/*
 * Write every tensor through the page cache, not with O_DIRECT: for a
 * file that will be read again soon (a daemon's result, hashed and then
 * downloaded), one pass through the cache is cheaper than writing past
 * it and reading it back from the disk.  Call before the first write.
 */
void	kh5_through_cache(struct kh5_writer *w);

/* Write all elements of weight `weight` of layer `layer` (float32, C order). */
int	kh5_write(struct kh5_writer *w, size_t layer, size_t weight,
	    const float *data, struct wb_err *err);

/*
 * Write rows [row0, row0 + nrows) along the leading axis of weight `weight`
 * of layer `layer`, for large tensors written in blocks.  data holds nrows
 * times the product of the other dimensions float32 values, C order.  The
 * weight must have ndim >= 1.  Blocks may come in any order; nrows == 0 is a
 * no-op.  Bad indices or a range past the leading dimension: WB_E_INTERNAL.
 */
int	kh5_write_rows(struct kh5_writer *w, size_t layer, size_t weight,
	    uint64_t row0, uint64_t nrows, const float *data,
	    struct wb_err *err);

/*
 * Write chunk `index` (0-based, along the last axis) of a chunked weight.
 * data holds one whole chunk in C order: the weight's shape with the last
 * axis `chunk` long (in the last chunk, values past the end of the axis
 * are stored but never read).  Chunks may come in any order, from several
 * threads.  A weight without chunks, or a bad index: WB_E_INTERNAL.
 */
int	kh5_write_chunk(struct kh5_writer *w, size_t layer, size_t weight,
	    uint64_t index, const float *data, struct wb_err *err);

/*
 * Read rows [row0, row0 + nrows) along the leading axis of a chunked
 * weight whose chunks have all been written, in C order, into data
 * (nrows times the product of the other dimensions float32 values): for
 * a digest of the weight as loaders will see it.  Takes no HDF5 lock.
 */
int	kh5_read_rows(struct kh5_writer *w, size_t layer, size_t weight,
	    uint64_t row0, uint64_t nrows, float *data, struct wb_err *err);

/*
 * Flush and close; frees w whatever the outcome.  w may be NULL.  Fails with
 * WB_E_INTERNAL if a weight was never written, or got fewer rows in total
 * than its leading dimension (unwritten data would read back as zeros).
 */
int	kh5_close(struct kh5_writer *w, struct wb_err *err);

/*
 * Re-open path read-only and check that every dataset named by layers exists
 * with the given shape and float32 type, and that the SHA-256 of its bytes
 * equals sha[k] (k counts weights across layers in order).  Also checks the
 * name-list attributes (legacy) read back as written.
 * Data is read in slabs of at most KH5_VERIFY_BLOCK bytes, so verifying a
 * large tensor needs no second full copy.  Mismatches: WB_E_OUTPUT, with a
 * message naming the dataset.
 */
int	kh5_verify(const char *path, enum kh5_format fmt,
	    const struct kh5_layer *layers, size_t nlayers,
	    const uint8_t (*sha)[32], struct wb_err *err);

/*
 * The same check with a CRC-64 (ECMA-182, reflected) of each weight's
 * float32 bytes instead of SHA-256: an order of magnitude cheaper, so the
 * converter can afford to re-read every byte it wrote.  crc[k] counts
 * weights across layers in order, computed with kh5_crc64(0, data, len).
 * Data bytes are read back on up to `threads` threads (0: one per CPU);
 * big datasets with O_DIRECT, so the check reads what the disk holds.
 */
int	kh5_verify_crc64(const char *path, enum kh5_format fmt,
	    const struct kh5_layer *layers, size_t nlayers,
	    const uint64_t *crc, int threads, struct wb_err *err);
uint64_t kh5_crc64(uint64_t crc, const void *buf, size_t len);

/*
 * kh5_close(w), then kh5_verify_crc64() of the file at path (where w
 * wrote), except that the bytes of a dataset written with O_DIRECT were
 * already read back from the disk and compared while it was written, and
 * are not read again: its place in the re-opened file must be where they
 * were written.  A chunked dataset's chunks must be where they were
 * written, and any not read back then are checked against the CRC-64 of
 * what was written into each, so crc[k] is not used for it.  Frees w
 * whatever the outcome.
 */
int	kh5_close_verify(struct kh5_writer *w, const char *path,
	    const struct kh5_layer *layers, size_t nlayers,
	    const uint64_t *crc, int threads, struct wb_err *err);

/* Version string of the HDF5 library in use, e.g. "1.10.8". */
const char *kh5_lib_version(void);

#endif
