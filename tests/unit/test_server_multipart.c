/*
 * The streaming multipart parser: the same body fed whole, byte by byte
 * and in every two-piece split must give the same parts; near-delimiters
 * inside data must survive; malformed bodies must fail.
 */
#include <stdlib.h>

#include "multipart.h"
#include "t.h"

struct got {
	char	 log[4096];
	size_t	 len;
	int	 parts;
};

static void
got_add(struct got *g, const char *s, size_t n)
{
	if (g->len + n < sizeof(g->log)) {
		memcpy(g->log + g->len, s, n);
		g->len += n;
		g->log[g->len] = '\0';
	}
}

static int
cb_begin(void *arg, const struct mp_part *p)
{
	struct got *g = arg;
	char buf[512];

	g->parts++;
	snprintf(buf, sizeof(buf), "[%s|%s]", p->name, p->filename);
	got_add(g, buf, strlen(buf));
	return 0;
}

static int
cb_data(void *arg, const void *b, size_t n)
{
	got_add(arg, b, n);
	return 0;
}

static int
cb_end(void *arg)
{
	got_add(arg, "<end>", 5);
	return 0;
}

static const struct mp_callbacks cbs = { cb_begin, cb_data, cb_end };
static const char *ct = "multipart/form-data; boundary=XyZ";

static const char body[] =
    "preamble\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"weights\"; filename=\"m.npz\"\r\n"
    "Content-Type: application/zip\r\n"
    "\r\n"
    "PK\r\n--Xy\r\r\n--XyQ data\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"spec\"\r\n"
    "\r\n"
    "{\"a\":1}\r\n"
    "--XyZ--\r\n"
    "epilogue";
static const char want[] =
    "[weights|m.npz]PK\r\n--Xy\r\r\n--XyQ data<end>[spec|]{\"a\":1}<end>";

/* Parse body in pieces of the given sizes; returns the log. */
static int
run(const char *b, size_t n, size_t split, size_t step, struct got *g)
{
	struct mp *p;
	int bad, rc = 0;
	size_t i = 0, k;

	memset(g, 0, sizeof(*g));
	if ((p = mp_new(ct, &cbs, g, &bad)) == NULL)
		return -1;
	if (split > 0 && split < n) {
		rc |= mp_feed(p, b, split);
		i = split;
	}
	while (rc == 0 && i < n) {
		k = step == 0 || step > n - i ? n - i : step;
		rc |= mp_feed(p, b + i, k);
		i += k;
	}
	if (rc == 0 && !mp_done(p))
		rc = 1;
	mp_free(p);
	return rc;
}

int
main(void)
{
	struct got g;
	size_t n = sizeof(body) - 1, s;
	int all_ok = 1, bad;
	struct mp *p;

	CHECK(run(body, n, 0, 0, &g) == 0);
	CHECK_STR(g.log, want);
	CHECK(g.parts == 2);
	CHECK(run(body, n, 0, 1, &g) == 0);
	CHECK_STR(g.log, want);
	for (s = 1; s < n; s++)
		if (run(body, n, s, 0, &g) != 0 || strcmp(g.log, want) != 0)
			all_ok = 0;
	CHECK(all_ok);
	for (s = 2; s < 9; s++)
		if (run(body, n, 0, s, &g) != 0 || strcmp(g.log, want) != 0)
			all_ok = 0;
	CHECK(all_ok);

	/* A body that opens with the delimiter (no preamble). */
	{
		const char b2[] = "--XyZ\r\nContent-Disposition: form-data; "
		    "name=a\r\n\r\nv\r\n--XyZ--";

		CHECK(run(b2, sizeof(b2) - 1, 0, 1, &g) == 0);
		CHECK_STR(g.log, "[a|]v<end>");
	}
	/* Truncated: no closing delimiter. */
	CHECK(run(body, n - 20, 0, 0, &g) == 1);
	/* Missing Content-Disposition. */
	{
		const char b3[] = "--XyZ\r\nContent-Type: x\r\n\r\nv\r\n--XyZ--";

		CHECK(run(b3, sizeof(b3) - 1, 0, 0, &g) == -1 ||
		    run(b3, sizeof(b3) - 1, 0, 0, &g) != 0);
	}
	/* Garbage after a delimiter. */
	{
		const char b4[] = "--XyZ!!\r\n";

		CHECK(run(b4, sizeof(b4) - 1, 0, 0, &g) != 0);
	}
	/* Headers longer than the cap. */
	{
		size_t big = MP_HEADER_MAX + 64;
		char *b5 = malloc(big + 16);

		memcpy(b5, "--XyZ\r\n", 7);
		memset(b5 + 7, 'h', big);
		CHECK(run(b5, big + 7, 0, 0, &g) != 0);
		free(b5);
	}
	/* Content types without a usable boundary. */
	CHECK(mp_new("multipart/form-data", &cbs, &g, &bad) == NULL && bad);
	CHECK(mp_new("application/zip", &cbs, &g, &bad) == NULL && bad);
	CHECK(mp_new("multipart/form-data; boundary=\"\"", &cbs, &g,
	    &bad) == NULL && bad);
	p = mp_new("multipart/form-data; charset=x; boundary=\"q r\"", &cbs, &g,
	    &bad);
	CHECK(p != NULL);
	mp_free(p);
	return t_done("test_server_multipart");
}
