/*
 * openapi: GET /v1/openapi.json, the API description compiled into the
 * binary from docs/openapi.json (see the Makefile's openapi_json.c rule),
 * so the document served is always the one the binary was built with.
 */
#include "handlers.h"

extern const unsigned char openapi_json[];
extern const unsigned long openapi_json_len;

struct reply *
openapi_get(struct req *r)
{
	struct reply *rp;

	rp = reply_static(200, "application/json", openapi_json,
	    (size_t)openapi_json_len);
	reply_header(rp, "Cache-Control", "public, max-age=300");
	return rp;
}
