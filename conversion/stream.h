/*
 * stream: the data pass of a conversion.  Reads every tensor a plan uses,
 * applies each weight's recipe and hands the result to the HDF5 writer,
 * recording per weight its SHA-256, a CRC-64 for verification and value
 * statistics.
 *
 * Archives indexed from a regular file are processed by a pool of worker
 * threads, each with its own archive cursor, under a memory budget: a job
 * (the tensors a group of weights needs) starts only when its buffers fit.
 * Large transposes are written in slabs so that peak memory stays near one
 * copy of the largest tensor.  Archives read from a pipe are processed in
 * archive order by one thread.  Either way the written file is the same
 * byte for byte: the writer allocates every dataset when the file is
 * created, so the order of writes does not show.
 */
#ifndef STREAM_H
#define STREAM_H

#include <stdint.h>

#include "convert.h"
#include "kh5.h"
#include "plan.h"
#include "sha256.h"

struct stream_stats {
	double		 sum, sq, min, max;	/* over finite values */
	uint64_t	 fin, nan, inf;
};

struct stream_weight {
	uint8_t		 sha[SHA256_LEN];
	uint64_t	 crc;		/* kh5_crc64 of the float32 bytes */
	struct stream_stats st;
	int		 done;
};

struct stream_opts {
	const char	*npz_path;
	const struct npz_limits *limits;
	int		 threads;	/* 0: one per online CPU */
	int		 no_sha;	/* skip per-weight SHA-256 (nobody reads it) */
	int		 no_stats;	/* skip per-weight statistics (the same) */
	convert_progress_fn progress;	/* called under a lock; may be NULL */
	void		*progress_arg;
};

/*
 * Run the pass.  out must have one element per weight of the plan, in
 * layout order (layer by layer).  *written receives the float32 bytes
 * written.  On failure the first error is in err; the caller discards the
 * file.
 */
int	stream_run(const struct plan *p, struct kh5_writer *w,
	    const struct stream_opts *o, struct stream_weight *out,
	    uint64_t *written, struct wb_err *err);

/*
 * 0, or how many indices of its last axis each chunk of weight pw holds
 * when it is stored in chunks: a float32 transpose of 64 MiB or more whose
 * last axis is the leading axis of its source, so that a chunk is a run of
 * the source's rows, transposed, and the tensor never has to be held
 * whole.  The writer must be created with this (kh5_weight.chunk).
 */
uint64_t stream_chunk(const struct plan *p, const struct plan_weight *pw);

/* Statistics as report JSON: {"min","max","mean","std","nan","inf"}. */
json_t	*stream_stats_json(const struct stream_stats *s);

#endif
