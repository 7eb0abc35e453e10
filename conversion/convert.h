/*
 * convert: the library's front door.  One call turns an .npz plus a mapping
 * spec into a Keras weight file and a per-layer report.
 *
 * Used by the CLI and by the daemon's workers alike; there is no other code
 * path.  Nothing here knows about HTTP.  The function is reentrant: several
 * threads may convert at once (HDF5 work is serialised inside kh5).
 */
#ifndef CONVERT_H
#define CONVERT_H

#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "npz.h"
#include "wb_err.h"

/*
 * Called between tensors (from the converter's worker threads, never two
 * at once).  Return non-zero to cancel: the conversion then stops with
 * WB_E_CANCELLED and leaves no output file.
 */
typedef int (*convert_progress_fn)(void *arg, uint64_t tensors_done,
    uint64_t tensors_total, uint64_t bytes_done, uint64_t bytes_total);

struct convert_opts {
	const char	*npz_path;
	const json_t	*spec;		/* borrowed: the parsed mapping spec */
	const char	*out_path;	/* final path; a temp file beside it is renamed into place */
	const char	*format;	/* "keras-h5" | "keras3"; NULL = the spec's target.format */
	int		 dry_run;	/* plan and check only; write nothing */
	struct npz_limits limits;
	convert_progress_fn progress;	/* may be NULL; called from one
					   thread at a time, any thread */
	void		*progress_arg;
	int		 threads;	/* worker threads; 0 = one per CPU */
	int		 file_digest;	/* SHA-256 of the whole file in the
					   report's result (default on) */
	int		 weight_digests; /* per-weight SHA-256 in the report
					   (default on; costs ~0.5 s/GB) */
	int		 weight_stats;	/* per-weight min/max/mean/std/NaN
					   counts in the report (default on) */
	int		 cache_output;	/* write through the page cache, not
					   O_DIRECT: the file will be read
					   again soon (default off) */
	int		 no_report;	/* nobody reads the report: *report
					   stays NULL, and its per-layer part,
					   large for many tensors, is never
					   built (default off) */
};

void	convert_opts_init(struct convert_opts *o);

/* The process umask (read once), for files created with mkstemp. */
mode_t	convert_umask(void);

/*
 * Convert.  Returns 0 on success.  On failure returns the wb_code and fills
 * err; *report is still set whenever the archive and spec could be read
 * (mapping problems are all listed in it, not just the first), unless
 * o->no_report.  The caller owns *report (one json_decref).  On any
 * failure no file exists at out_path and no temporary file is left behind.
 * On success the report's "result" object holds "format", "bytes" and
 * "sha256" (hex) of the written file.
 */
int	convert_run(const struct convert_opts *o, json_t **report,
	    struct wb_err *err);

/*
 * A failed report for an error found before planning (e.g. a spec that is
 * not JSON), so every failure can hand the caller the same document shape.
 * format may be NULL.  Caller owns the result.
 */
json_t	*convert_error_report(const char *format, const struct wb_err *err);

/*
 * The tensor list of an archive, as JSON: {"tensors":[{"key","dtype",
 * "shape","bytes","method"}...],"count","total_bytes"}.  Caller owns it.
 */
int	convert_inspect(const char *npz_path, const struct npz_limits *lim,
	    json_t **out, struct wb_err *err);

/* A starting spec for an archive (what `weightbridge template` prints). */
int	convert_template(const char *npz_path, const struct npz_limits *lim,
	    json_t **out, struct wb_err *err);

#endif
