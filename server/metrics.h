/*
 * metrics: Prometheus counters and histograms for the daemon.
 *
 * Process-wide by nature (one scrape shows the whole process), so the
 * counters are module state behind metrics_init(); updates are lock-free
 * atomic adds and may come from any thread.  Rendering produces the text
 * exposition format (version 0.0.4).
 */
#ifndef METRICS_H
#define METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_ROUTES_MAX	32

enum metrics_phase {
	METRICS_PHASE_QUEUED = 0,	/* created -> started */
	METRICS_PHASE_RUNNING,		/* started -> finished */
	METRICS_PHASE__COUNT
};

/* Route labels, in route-table order; the strings must outlive the process. */
void	metrics_init(const char *const *routes, size_t nroutes);

/* route >= nroutes means "no route matched". */
void	metrics_request(size_t route, unsigned status, double seconds);
void	metrics_upload_bytes(uint64_t n);
/* outcome: "succeeded", "failed", "cancelled". */
void	metrics_job_outcome(const char *outcome);
void	metrics_job_phase(enum metrics_phase phase, double seconds);

struct metrics_gauges {
	uint64_t	 queue_depth;
	uint64_t	 busy_workers;
	uint64_t	 workers;
	uint64_t	 jobs_known;
	int		 ready;
};

/* The exposition text; caller frees *out. 0, or -1 on allocation failure. */
int	metrics_render(const struct metrics_gauges *g, char **out,
	    size_t *len);

#endif
