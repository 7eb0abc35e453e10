/*
 * route: segment-by-segment matching of a path against the route table.
 * See route.h.  The tables are a dozen rows, so a linear scan is the
 * simplest thing that is also fast enough.
 */
#include <string.h>

#include "route.h"

/*
 * Match path against pattern; on success copy parameters into m.
 * Returns 1 on a match.  Empty segments ("//") and parameters longer than
 * ROUTE_SEG_MAX never match.
 */
static int
route_path_match(const char *pattern, const char *path, struct route_match *m)
{
	const char *p = pattern, *s = path, *pe, *se;
	size_t np = 0, plen, slen;

	for (;;) {
		if (*p != '/' || *s != '/')
			return *p == '\0' && *s == '\0' && (m->nparams = np, 1);
		p++;
		s++;
		pe = p + strcspn(p, "/");
		se = s + strcspn(s, "/");
		plen = (size_t)(pe - p);
		slen = (size_t)(se - s);
		if (plen >= 2 && p[0] == '{' && p[plen - 1] == '}') {
			if (slen == 0 || slen >= ROUTE_SEG_MAX ||
			    np >= ROUTE_PARAMS_MAX)
				return 0;
			memcpy(m->params[np], s, slen);
			m->params[np][slen] = '\0';
			np++;
		} else if (plen != slen || memcmp(p, s, plen) != 0)
			return 0;
		p = pe;
		s = se;
	}
}

static void
route_allow_add(struct route_match *m, const char *method)
{
	size_t len = strlen(m->allow);

	/* The same method may appear once per pattern; list it once. */
	if (strstr(m->allow, method) != NULL)
		return;
	if (len + strlen(method) + 3 >= sizeof(m->allow))
		return;
	if (len > 0)
		strcat(m->allow, ", ");
	strcat(m->allow, method);
}

enum route_result
route_match(const struct route *table, size_t n, const char *method,
    const char *path, struct route_match *m)
{
	size_t i;
	int path_seen = 0;
	const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;

	memset(m, 0, sizeof(*m));
	if (strlen(path) >= ROUTE_PATH_MAX)
		return ROUTE_NO_PATH;
	for (i = 0; i < n; i++) {
		if (!route_path_match(table[i].pattern, path, m))
			continue;
		if (strcmp(table[i].method, want) == 0) {
			m->route = &table[i];
			m->index = i;
			return ROUTE_FOUND;
		}
		path_seen = 1;
	}
	if (!path_seen)
		return ROUTE_NO_PATH;
	/* Collect Allow from every route with this path. */
	for (i = 0; i < n; i++) {
		struct route_match tmp;

		memset(&tmp, 0, sizeof(tmp));
		if (route_path_match(table[i].pattern, path, &tmp)) {
			route_allow_add(m, table[i].method);
			if (strcmp(table[i].method, "GET") == 0)
				route_allow_add(m, "HEAD");
		}
	}
	m->nparams = 0;
	return ROUTE_NO_METHOD;
}

void
route_print(const struct route *table, size_t n, FILE *fp)
{
	size_t i;

	for (i = 0; i < n; i++)
		fprintf(fp, "%s %s\n", table[i].method, table[i].pattern);
}
