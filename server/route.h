/*
 * route: the table that maps "METHOD /path/{param}" to a handler.
 *
 * The table itself lives with the handlers (handlers/handlers.c); this
 * module only matches against a table it is given.  Patterns are literal
 * segments and whole-segment parameters ("{id}").  A path that matches a
 * pattern under another method is a 405 with the Allow list, not a 404.
 * HEAD is answered by GET routes (libmicrohttpd drops the body).
 */
#ifndef ROUTE_H
#define ROUTE_H

#include <stddef.h>
#include <stdio.h>

struct req;
struct reply;

/* Returns the reply, or NULL if the request was suspended (see http.h). */
typedef struct reply *(*route_fn)(struct req *r);

#define ROUTE_UPLOAD	0x1	/* the body is a streamed .npz upload */
#define ROUTE_SPEC	0x2	/* the upload also carries a mapping spec */
#define ROUTE_PUBLIC	0x4	/* no bearer token needed */

#define ROUTE_PARAMS_MAX	4
#define ROUTE_SEG_MAX		128	/* longest path parameter, bytes */
#define ROUTE_PATH_MAX		2048	/* longest path we try to match */
#define ROUTE_ALLOW_MAX		128

struct route {
	const char	*method;
	const char	*pattern;	/* "/v1/jobs/{id}" */
	route_fn	 fn;
	unsigned	 flags;
};

struct route_match {
	const struct route *route;	/* NULL unless ROUTE_FOUND */
	size_t		 index;		/* of route in the table */
	size_t		 nparams;
	char		 params[ROUTE_PARAMS_MAX][ROUTE_SEG_MAX];
	char		 allow[ROUTE_ALLOW_MAX];	/* for ROUTE_NO_METHOD */
};

enum route_result {
	ROUTE_FOUND = 0,
	ROUTE_NO_PATH,		/* 404 */
	ROUTE_NO_METHOD		/* 405, m->allow lists the methods */
};

/* Match method and path (no query string) against table[0..n). */
enum route_result route_match(const struct route *table, size_t n,
	    const char *method, const char *path, struct route_match *m);

/* One "METHOD PATTERN" line per route, in table order. */
void	route_print(const struct route *table, size_t n, FILE *fp);

#endif
