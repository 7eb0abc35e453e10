/*
 * report: render reports as text.  See report.h.
 *
 * Column widths are computed from the data (capped) so the table stays
 * readable for both a 10-layer CNN and a 300-tensor ResNet.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report.h"

#define REPORT_COL_MAX 48

static void
report_shape(const json_t *a, char *buf, size_t len)
{
	size_t i, off = 0;

	if (!json_is_array(a)) {
		snprintf(buf, len, "-");
		return;
	}
	off += (size_t)snprintf(buf, len, "(");
	for (i = 0; i < json_array_size(a) && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%lld",
		    i ? ", " : "",
		    (long long)json_integer_value(json_array_get(a, i)));
	if (off < len)
		snprintf(buf + off, len - off, "%s)",
		    json_array_size(a) == 1 ? "," : "");
}

struct report_row {
	char	 c[7][REPORT_COL_MAX + 1];
};

static void
report_cell(char *dst, const char *src)
{
	size_t n = strlen(src);

	if (n > REPORT_COL_MAX) {
		memcpy(dst, src, REPORT_COL_MAX - 3);
		memcpy(dst + REPORT_COL_MAX - 3, "...", 4);
	} else {
		memcpy(dst, src, n + 1);
	}
}

void
report_print(FILE *f, const json_t *report, int verbose)
{
	static const char *head[7] = { "LAYER", "WEIGHT", "SOURCE",
	    "SOURCE SHAPE", "TRANSFORM", "SHAPE", "STATUS" };
	const json_t *layers = json_object_get(report, "layers"), *l, *w, *x;
	struct report_row row;
	int width[7];
	size_t i, j, pass, k;
	char buf[512];

	for (k = 0; k < 7; k++)
		width[k] = (int)strlen(head[k]);
	/* Pass 0 measures, pass 1 prints. */
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			for (k = 0; k < 7; k++)
				fprintf(f, "%-*s%s", width[k], head[k],
				    k < 6 ? "  " : "\n");
		}
		json_array_foreach(layers, i, l) {
			const json_t *ws = json_object_get(l, "weights");

			json_array_foreach(ws, j, w) {
				const json_t *src = json_object_get(w, "sources");

				snprintf(buf, sizeof(buf), "%s%s",
				    j == 0 ? json_string_value(json_object_get(
				    l, "name")) : "",
				    j == 0 && json_is_true(json_object_get(l,
				    "inferred")) ? "*" : "");
				report_cell(row.c[0], buf);
				report_cell(row.c[1], json_string_value(
				    json_object_get(w, "name")));
				x = json_array_get(src, 0);
				snprintf(buf, sizeof(buf), "%s%s",
				    x ? json_string_value(json_object_get(x,
				    "key")) : "-",
				    json_array_size(src) > 1 ? " (+more)" : "");
				report_cell(row.c[2], buf);
				report_shape(json_object_get(x, "shape"), buf,
				    sizeof(buf));
				report_cell(row.c[3], buf);
				report_cell(row.c[4], json_string_value(
				    json_object_get(w, "transform")));
				report_shape(json_object_get(w, "shape"), buf,
				    sizeof(buf));
				report_cell(row.c[5], buf);
				report_cell(row.c[6], json_string_value(
				    json_object_get(w, "status")));
				for (k = 0; k < 7; k++) {
					if (pass == 0) {
						int n = (int)strlen(row.c[k]);

						if (n > width[k])
							width[k] = n;
						continue;
					}
					fprintf(f, "%-*s%s", width[k], row.c[k],
					    k < 6 ? "  " : "\n");
				}
				x = json_object_get(w, "stats");
				if (pass == 1 && verbose && x != NULL)
					fprintf(f, "    min %.6g max %.6g mean %.6g "
					    "std %.6g nan %lld inf %lld\n",
					    json_real_value(json_object_get(x,
					    "min")), json_real_value(
					    json_object_get(x, "max")),
					    json_real_value(json_object_get(x,
					    "mean")), json_real_value(
					    json_object_get(x, "std")),
					    (long long)json_integer_value(
					    json_object_get(x, "nan")),
					    (long long)json_integer_value(
					    json_object_get(x, "inf")));
			}
		}
	}
	json_array_foreach(layers, i, l)
		if (json_is_true(json_object_get(l, "inferred"))) {
			fprintf(f, "* type inferred from parameter names and "
			    "shapes\n");
			break;
		}
	x = json_object_get(report, "unused");
	if (json_array_size(x) > 0) {
		fprintf(f, "\nUnused source tensors (%zu):\n",
		    json_array_size(x));
		json_array_foreach(x, i, w) {
			report_shape(json_object_get(w, "shape"), buf,
			    sizeof(buf));
			fprintf(f, "  %s %s %s\n", json_string_value(
			    json_object_get(w, "key")), buf,
			    json_string_value(json_object_get(w, "dtype")));
		}
	}
	x = json_object_get(report, "ignored");
	if (json_array_size(x) > 0)
		fprintf(f, "\nIgnored source tensors: %zu\n",
		    json_array_size(x));
	x = json_object_get(report, "warnings");
	if (json_array_size(x) > 0) {
		fprintf(f, "\nWarnings (%zu):\n", json_array_size(x));
		json_array_foreach(x, i, w)
			fprintf(f, "  - %s\n", json_string_value(
			    json_object_get(w, "message")));
	}
	x = json_object_get(report, "problems");
	if (json_array_size(x) > 0) {
		fprintf(f, "\nProblems (%zu):\n", json_array_size(x));
		json_array_foreach(x, i, w)
			fprintf(f, "  - [%s] %s\n", json_string_value(
			    json_object_get(w, "code")), json_string_value(
			    json_object_get(w, "message")));
	}
	x = json_object_get(report, "totals");
	if (x != NULL)
		fprintf(f, "\n%lld layers, %lld weights, %lld tensors used, "
		    "%lld bytes written, %lld problems, %lld warnings\n",
		    (long long)json_integer_value(json_object_get(x, "layers")),
		    (long long)json_integer_value(json_object_get(x, "weights")),
		    (long long)json_integer_value(json_object_get(x,
		    "tensors_used")),
		    (long long)json_integer_value(json_object_get(x,
		    "bytes_written")),
		    (long long)json_integer_value(json_object_get(x,
		    "problems")),
		    (long long)json_integer_value(json_object_get(x,
		    "warnings")));
}

void
report_print_inspect(FILE *f, const json_t *inspect)
{
	const json_t *ts = json_object_get(inspect, "tensors"), *t;
	size_t i;
	int wk = 3;
	char buf[256];

	json_array_foreach(ts, i, t) {
		int n = (int)strlen(json_string_value(json_object_get(t,
		    "key")));

		if (n > wk)
			wk = n;
	}
	fprintf(f, "%-*s  %-8s  %-20s  %12s  %s\n", wk, "KEY", "DTYPE",
	    "SHAPE", "BYTES", "METHOD");
	json_array_foreach(ts, i, t) {
		report_shape(json_object_get(t, "shape"), buf, sizeof(buf));
		fprintf(f, "%-*s  %-8s  %-20s  %12lld  %s\n", wk,
		    json_string_value(json_object_get(t, "key")),
		    json_string_value(json_object_get(t, "dtype")), buf,
		    (long long)json_integer_value(json_object_get(t, "bytes")),
		    json_string_value(json_object_get(t, "method")));
	}
	fprintf(f, "%lld tensors, %lld bytes\n",
	    (long long)json_integer_value(json_object_get(inspect, "count")),
	    (long long)json_integer_value(json_object_get(inspect,
	    "total_bytes")));
}

/* --- JSON out ---------------------------------------------------------- */

#define REPORT_BUF	((size_t)64 << 10)

struct report_out {
	int	 fd;
	int	 err;		/* errno of the first failed write */
	size_t	 n;
	char	*buf;
};

static int
report_flush(struct report_out *o)
{
	const char *p = o->buf;
	ssize_t w;

	while (o->n > 0 && o->err == 0) {
		if ((w = write(o->fd, p, o->n)) == -1) {
			if (errno != EINTR)
				o->err = errno;
			continue;
		}
		p += w;
		o->n -= (size_t)w;
	}
	o->n = 0;
	return o->err == 0 ? 0 : -1;
}

static int
report_put(const char *s, size_t len, void *arg)
{
	struct report_out *o = arg;
	size_t k;

	while (len > 0) {
		if (o->n == REPORT_BUF && report_flush(o) != 0)
			return -1;
		k = REPORT_BUF - o->n;
		if (k > len)
			k = len;
		memcpy(o->buf + o->n, s, k);
		o->n += k;
		s += k;
		len -= k;
	}
	return 0;
}

int
report_write_fd(int fd, const json_t *j, size_t flags)
{
	struct report_out o = { fd, 0, 0, NULL };
	int rc;

	if ((o.buf = malloc(REPORT_BUF)) == NULL)
		return ENOMEM;
	if (json_dump_callback(j, report_put, &o, flags) != 0 ||
	    report_put("\n", 1, &o) != 0 || report_flush(&o) != 0)
		rc = o.err != 0 ? o.err : ENOMEM;
	else
		rc = 0;
	free(o.buf);
	return rc;
}
