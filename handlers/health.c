/*
 * health: liveness, readiness and the advertised limits.  /livez only says
 * the process answers; /readyz says it should get traffic: not while the
 * spool is being recovered and not once SIGTERM started the drain.
 */
#include "handlers.h"

struct reply *
health_livez(struct req *r)
{
	return reply_json(200, json_pack("{s:s}", "status", "ok"));
}

struct reply *
health_readyz(struct req *r)
{
	struct reply *rp;

	if (atomic_load(&r->srv->ready) && !jobq_draining(r->srv->jobq))
		return reply_json(200, json_pack("{s:s}", "status", "ready"));
	rp = reply_problem(503, "not-ready", "Not ready",
	    jobq_draining(r->srv->jobq) ? "the server is shutting down" :
	    "the server is recovering its spool");
	reply_header(rp, "Retry-After", "5");
	return rp;
}

struct reply *
health_limits(struct req *r)
{
	const struct config *c = r->srv->cfg;

	return reply_json(200, json_pack("{s:I, s:I, s:I, s:I, s:[s,s], "
	    "s:b, s:{s:I, s:I, s:I, s:I}, s:s}",
	    "upload_limit", (json_int_t)c->upload_limit,
	    "spec_limit", (json_int_t)c->spec_limit,
	    "max_wait", (json_int_t)c->max_wait,
	    "queue_size", (json_int_t)c->queue_size,
	    "formats", "keras-h5", "keras3",
	    "auth", r->srv->tokens != NULL,
	    "npz_limits",
	    "max_members", (json_int_t)r->srv->limits.max_members,
	    "max_tensor_bytes", (json_int_t)r->srv->limits.max_tensor_bytes,
	    "max_total_bytes", (json_int_t)r->srv->limits.max_total_bytes,
	    "max_ratio", (json_int_t)r->srv->limits.max_ratio,
	    "openapi", "/v1/openapi.json"));
}
