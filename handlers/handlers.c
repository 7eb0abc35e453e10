/*
 * handlers: the route table.  Order matters only for --print-routes and
 * the metrics labels; matching is exact per segment.
 */
#include "handlers.h"

const struct route handlers_routes[] = {
	{ "POST", "/v1/jobs", jobs_create, ROUTE_UPLOAD | ROUTE_SPEC },
	{ "GET", "/v1/jobs", jobs_list, 0 },
	{ "GET", "/v1/jobs/{id}", jobs_get, 0 },
	{ "DELETE", "/v1/jobs/{id}", jobs_delete, 0 },
	{ "GET", "/v1/jobs/{id}/result", jobs_result, 0 },
	{ "GET", "/v1/jobs/{id}/report", jobs_report, 0 },
	{ "POST", "/v1/inspect", inspect_inspect, ROUTE_UPLOAD },
	{ "POST", "/v1/template", inspect_template, ROUTE_UPLOAD },
	{ "GET", "/v1/limits", health_limits, ROUTE_PUBLIC },
	{ "GET", "/v1/openapi.json", openapi_get, ROUTE_PUBLIC },
	{ "GET", "/livez", health_livez, ROUTE_PUBLIC },
	{ "GET", "/readyz", health_readyz, ROUTE_PUBLIC },
	{ "GET", "/metrics", scrape_metrics, ROUTE_PUBLIC },
	{ "GET", "/", web_get_index, ROUTE_PUBLIC },
	{ "GET", "/web/{file}", web_get_file, ROUTE_PUBLIC },
};
const size_t handlers_nroutes = sizeof(handlers_routes) /
    sizeof(handlers_routes[0]);

const char *const handlers_route_names[] = {
	"POST /v1/jobs", "GET /v1/jobs", "GET /v1/jobs/{id}",
	"DELETE /v1/jobs/{id}", "GET /v1/jobs/{id}/result",
	"GET /v1/jobs/{id}/report", "POST /v1/inspect", "POST /v1/template",
	"GET /v1/limits", "GET /v1/openapi.json", "GET /livez", "GET /readyz",
	"GET /metrics", "GET /", "GET /web/{file}",
};
