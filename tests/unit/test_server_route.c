/*
 * Route matching against the daemon's real table: parameters, 404, 405
 * with Allow, HEAD on GET routes, oversized parameters.
 */
#include "handlers.h"
#include "route.h"
#include "t.h"

int
main(void)
{
	struct route_match m;

	CHECK(route_match(handlers_routes, handlers_nroutes, "GET", "/v1/jobs",
	    &m) == ROUTE_FOUND);
	CHECK(m.route->fn == jobs_list);
	CHECK(route_match(handlers_routes, handlers_nroutes, "POST", "/v1/jobs",
	    &m) == ROUTE_FOUND);
	CHECK(m.route->fn == jobs_create);
	CHECK(m.route->flags & ROUTE_UPLOAD);

	CHECK(route_match(handlers_routes, handlers_nroutes, "GET",
	    "/v1/jobs/abc123/result", &m) == ROUTE_FOUND);
	CHECK(m.route->fn == jobs_result);
	CHECK(m.nparams == 1);
	CHECK_STR(m.params[0], "abc123");

	CHECK(route_match(handlers_routes, handlers_nroutes, "HEAD",
	    "/v1/jobs/x", &m) == ROUTE_FOUND);
	CHECK(m.route->fn == jobs_get);

	CHECK(route_match(handlers_routes, handlers_nroutes, "PUT",
	    "/v1/jobs/x", &m) == ROUTE_NO_METHOD);
	CHECK_STR(m.allow, "GET, HEAD, DELETE");
	CHECK(route_match(handlers_routes, handlers_nroutes, "DELETE",
	    "/livez", &m) == ROUTE_NO_METHOD);
	CHECK_STR(m.allow, "GET, HEAD");

	CHECK(route_match(handlers_routes, handlers_nroutes, "GET", "/v1/nope",
	    &m) == ROUTE_NO_PATH);
	CHECK(route_match(handlers_routes, handlers_nroutes, "GET",
	    "/v1/jobs/", &m) == ROUTE_NO_PATH);
	CHECK(route_match(handlers_routes, handlers_nroutes, "GET",
	    "/v1/jobs//result", &m) == ROUTE_NO_PATH);
	CHECK(route_match(handlers_routes, handlers_nroutes, "GET",
	    "/v1/jobs/a/result/extra", &m) == ROUTE_NO_PATH);
	CHECK(route_match(handlers_routes, handlers_nroutes, "GET", "", &m) ==
	    ROUTE_NO_PATH);
	{
		char longp[ROUTE_SEG_MAX + 16];

		memset(longp, 'a', sizeof(longp));
		memcpy(longp, "/v1/jobs/", 9);
		longp[sizeof(longp) - 1] = '\0';
		CHECK(route_match(handlers_routes, handlers_nroutes, "GET",
		    longp, &m) == ROUTE_NO_PATH);
	}
	/* Every route has a metrics label that names it. */
	{
		size_t i;
		char want[256];

		for (i = 0; i < handlers_nroutes; i++) {
			snprintf(want, sizeof(want), "%s %s",
			    handlers_routes[i].method,
			    handlers_routes[i].pattern);
			CHECK_STR(handlers_route_names[i], want);
		}
	}
	return t_done("test_server_route");
}
