/*
 * metrics: fixed arrays of atomic counters, rendered on demand.  See
 * metrics.h.  Status codes are folded into a short list of the ones we
 * send so the arrays stay small; anything else counts as "other".
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#ifndef WB_VERSION
#define WB_VERSION "0.1.0"
#endif

static const unsigned metrics_codes[] = {
	200, 201, 202, 204, 206, 304, 400, 401, 404, 405, 409, 411, 413, 415,
	416, 422, 429, 500, 503, 0	/* 0 = other */
};
#define METRICS_NCODES (sizeof(metrics_codes) / sizeof(metrics_codes[0]))

static const double metrics_req_buckets[] = {
	0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60
};
#define METRICS_NRB (sizeof(metrics_req_buckets) / sizeof(double))

static const double metrics_job_buckets[] = {
	0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800
};
#define METRICS_NJB (sizeof(metrics_job_buckets) / sizeof(double))

struct metrics_hist_req {
	atomic_ullong	 bucket[METRICS_NRB];
	atomic_ullong	 count;
	atomic_ullong	 sum_us;
};

static const char *const *metrics_routes;
static size_t metrics_nroutes;
/* [route (nroutes = unmatched)][code] */
static struct metrics_hist_req metrics_req[METRICS_ROUTES_MAX + 1][METRICS_NCODES];
static atomic_ullong metrics_upload;
static atomic_ullong metrics_outcome[3];	/* succeeded, failed, cancelled */
static const char *const metrics_outcome_names[3] = {
	"succeeded", "failed", "cancelled"
};
static atomic_ullong metrics_phase_b[METRICS_PHASE__COUNT][METRICS_NJB];
static atomic_ullong metrics_phase_n[METRICS_PHASE__COUNT];
static atomic_ullong metrics_phase_us[METRICS_PHASE__COUNT];

void
metrics_init(const char *const *routes, size_t nroutes)
{
	metrics_routes = routes;
	metrics_nroutes = nroutes > METRICS_ROUTES_MAX ? METRICS_ROUTES_MAX :
	    nroutes;
}

static size_t
metrics_code_index(unsigned status)
{
	size_t i;

	for (i = 0; i + 1 < METRICS_NCODES; i++)
		if (metrics_codes[i] == status)
			return i;
	return METRICS_NCODES - 1;
}

void
metrics_request(size_t route, unsigned status, double seconds)
{
	struct metrics_hist_req *h;
	size_t i;

	if (route > metrics_nroutes)
		route = metrics_nroutes;
	h = &metrics_req[route][metrics_code_index(status)];
	for (i = 0; i < METRICS_NRB; i++)
		if (seconds <= metrics_req_buckets[i])
			atomic_fetch_add(&h->bucket[i], 1);
	atomic_fetch_add(&h->count, 1);
	atomic_fetch_add(&h->sum_us, (unsigned long long)(seconds * 1e6));
}

void
metrics_upload_bytes(uint64_t n)
{
	atomic_fetch_add(&metrics_upload, n);
}

void
metrics_job_outcome(const char *outcome)
{
	size_t i;

	for (i = 0; i < 3; i++)
		if (strcmp(outcome, metrics_outcome_names[i]) == 0)
			atomic_fetch_add(&metrics_outcome[i], 1);
}

void
metrics_job_phase(enum metrics_phase phase, double seconds)
{
	size_t i;

	if ((unsigned)phase >= METRICS_PHASE__COUNT || seconds < 0)
		return;
	for (i = 0; i < METRICS_NJB; i++)
		if (seconds <= metrics_job_buckets[i])
			atomic_fetch_add(&metrics_phase_b[phase][i], 1);
	atomic_fetch_add(&metrics_phase_n[phase], 1);
	atomic_fetch_add(&metrics_phase_us[phase], (unsigned long long)(seconds * 1e6));
}

static void
metrics_req_series(FILE *fp, const char *route, unsigned code,
    struct metrics_hist_req *h)
{
	char codes[16];
	size_t i;
	unsigned long long n = atomic_load(&h->count);

	if (n == 0)
		return;
	if (code == 0)
		snprintf(codes, sizeof(codes), "other");
	else
		snprintf(codes, sizeof(codes), "%u", code);
	fprintf(fp, "weightbridged_http_requests_total{route=\"%s\","
	    "code=\"%s\"} %llu\n", route, codes, n);
	for (i = 0; i < METRICS_NRB; i++)
		fprintf(fp, "weightbridged_http_request_duration_seconds_bucket"
		    "{route=\"%s\",code=\"%s\",le=\"%g\"} %llu\n", route, codes,
		    metrics_req_buckets[i], atomic_load(&h->bucket[i]));
	fprintf(fp, "weightbridged_http_request_duration_seconds_bucket"
	    "{route=\"%s\",code=\"%s\",le=\"+Inf\"} %llu\n", route, codes, n);
	fprintf(fp, "weightbridged_http_request_duration_seconds_sum"
	    "{route=\"%s\",code=\"%s\"} %.6f\n", route, codes,
	    (double)atomic_load(&h->sum_us) / 1e6);
	fprintf(fp, "weightbridged_http_request_duration_seconds_count"
	    "{route=\"%s\",code=\"%s\"} %llu\n", route, codes, n);
}

int
metrics_render(const struct metrics_gauges *g, char **out, size_t *len)
{
	static const char *const phase_names[METRICS_PHASE__COUNT] = {
		"queued", "running"
	};
	FILE *fp;
	size_t r, c, i, p;
	unsigned long long n;

	*out = NULL;
	*len = 0;
	if ((fp = open_memstream(out, len)) == NULL)
		return -1;
	fprintf(fp, "# HELP weightbridged_build_info Build information.\n"
	    "# TYPE weightbridged_build_info gauge\n"
	    "weightbridged_build_info{version=\"%s\"} 1\n", WB_VERSION);
	fprintf(fp, "# HELP weightbridged_http_requests_total HTTP requests "
	    "by route and status code.\n"
	    "# TYPE weightbridged_http_requests_total counter\n"
	    "# HELP weightbridged_http_request_duration_seconds Time from "
	    "request headers to response completion.\n"
	    "# TYPE weightbridged_http_request_duration_seconds histogram\n");
	for (r = 0; r <= metrics_nroutes; r++)
		for (c = 0; c < METRICS_NCODES; c++)
			metrics_req_series(fp, r < metrics_nroutes ?
			    metrics_routes[r] : "unmatched", metrics_codes[c],
			    &metrics_req[r][c]);
	fprintf(fp, "# HELP weightbridged_upload_bytes_total Bytes of "
	    "uploaded archives received.\n"
	    "# TYPE weightbridged_upload_bytes_total counter\n"
	    "weightbridged_upload_bytes_total %llu\n",
	    atomic_load(&metrics_upload));
	fprintf(fp, "# HELP weightbridged_jobs_total Jobs finished, by "
	    "outcome.\n# TYPE weightbridged_jobs_total counter\n");
	for (i = 0; i < 3; i++)
		fprintf(fp, "weightbridged_jobs_total{outcome=\"%s\"} %llu\n",
		    metrics_outcome_names[i], atomic_load(&metrics_outcome[i]));
	fprintf(fp, "# HELP weightbridged_job_phase_seconds Time jobs spend "
	    "queued and running.\n"
	    "# TYPE weightbridged_job_phase_seconds histogram\n");
	for (p = 0; p < METRICS_PHASE__COUNT; p++) {
		n = atomic_load(&metrics_phase_n[p]);
		for (i = 0; i < METRICS_NJB; i++)
			fprintf(fp, "weightbridged_job_phase_seconds_bucket"
			    "{phase=\"%s\",le=\"%g\"} %llu\n", phase_names[p],
			    metrics_job_buckets[i],
			    atomic_load(&metrics_phase_b[p][i]));
		fprintf(fp, "weightbridged_job_phase_seconds_bucket"
		    "{phase=\"%s\",le=\"+Inf\"} %llu\n", phase_names[p], n);
		fprintf(fp, "weightbridged_job_phase_seconds_sum{phase=\"%s\"} "
		    "%.6f\n", phase_names[p],
		    (double)atomic_load(&metrics_phase_us[p]) / 1e6);
		fprintf(fp, "weightbridged_job_phase_seconds_count"
		    "{phase=\"%s\"} %llu\n", phase_names[p], n);
	}
	fprintf(fp, "# HELP weightbridged_queue_depth Jobs waiting for a "
	    "worker.\n# TYPE weightbridged_queue_depth gauge\n"
	    "weightbridged_queue_depth %llu\n"
	    "# HELP weightbridged_workers_busy Workers converting now.\n"
	    "# TYPE weightbridged_workers_busy gauge\n"
	    "weightbridged_workers_busy %llu\n"
	    "# HELP weightbridged_workers Worker threads.\n"
	    "# TYPE weightbridged_workers gauge\n"
	    "weightbridged_workers %llu\n"
	    "# HELP weightbridged_jobs_known Jobs held (any state).\n"
	    "# TYPE weightbridged_jobs_known gauge\n"
	    "weightbridged_jobs_known %llu\n"
	    "# HELP weightbridged_ready 1 if /readyz answers 200.\n"
	    "# TYPE weightbridged_ready gauge\n"
	    "weightbridged_ready %d\n",
	    (unsigned long long)g->queue_depth,
	    (unsigned long long)g->busy_workers,
	    (unsigned long long)g->workers, (unsigned long long)g->jobs_known,
	    g->ready);
	if (fclose(fp) != 0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}
