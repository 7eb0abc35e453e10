/*
 * scrape: GET /metrics in the Prometheus text format.  The counters live
 * in server/metrics.c; this adds the gauges only jobq knows.
 */
#include <stdlib.h>

#include "handlers.h"
#include "metrics.h"

struct reply *
scrape_metrics(struct req *r)
{
	struct metrics_gauges g;
	struct reply *rp;
	char *text = NULL;
	size_t len = 0;

	jobq_gauges(r->srv->jobq, &g.queue_depth, &g.busy_workers, &g.workers,
	    &g.jobs_known);
	g.ready = atomic_load(&r->srv->ready) && !jobq_draining(r->srv->jobq);
	if (metrics_render(&g, &text, &len) != 0)
		return reply_problem(500, "out-of-memory", "Out of memory",
		    "rendering metrics failed");
	rp = reply_bytes(200, "text/plain; version=0.0.4; charset=utf-8", text,
	    len);
	free(text);
	return rp;
}
