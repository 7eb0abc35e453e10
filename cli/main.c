/*
 * weightbridge: the command-line face of the conversion library.
 *
 *   weightbridge inspect FILE.npz [--json]
 *   weightbridge template FILE.npz [-o SPEC.json]
 *   weightbridge convert FILE.npz --spec SPEC.json -o OUT.h5 [--format F]
 *       [--report REPORT.json] [--dry-run] [--quiet] [--verbose]
 *
 * Exit status: 0 success, 2 bad input or a mapping problem (the client's
 * to fix), 1 an internal failure.  Everything here is argument handling
 * and printing; the work is in conversion/.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert.h"
#include "kh5.h"
#include "report.h"
#include "spec.h"

#ifndef WB_VERSION
#define WB_VERSION "0.1.0"
#endif

#define EXIT_INPUT	2
#define EXIT_INTERNAL	1

/* Zip and .npy headers of one member, at most: names, extras, dicts. */
#define SPOOL_MEMBER_MAX	((uint64_t)256 << 10)
#define SPOOL_BLOCK		((size_t)1 << 20)

static const char *progname = "weightbridge";

static void
usage_main(FILE *f)
{
	fprintf(f,
	    "usage: %s <command> [options]\n"
	    "\n"
	    "Convert PyTorch state_dict exports (.npz) into Keras weight files.\n"
	    "\n"
	    "commands:\n"
	    "  inspect FILE.npz      list the tensors of an archive\n"
	    "  template FILE.npz     print a starting mapping spec\n"
	    "  convert FILE.npz      convert with a mapping spec\n"
	    "\n"
	    "'%s <command> --help' for a command's options; see\n"
	    "weightbridge(1) and docs/spec.md.\n"
	    "exit status: 0 ok, 2 bad input or mapping problem, 1 internal "
	    "failure\n", progname, progname);
}

static const char limits_help[] =
    "archive limits:\n"
    "  --max-members N        members in the archive (default 100000)\n"
    "  --max-tensor-bytes N   bytes of one tensor (default 4 GiB)\n"
    "  --max-total-bytes N    bytes of all tensors (default 16 GiB)\n"
    "  --max-ratio N          inflate ratio of a member over 1 MiB "
    "(default 1000)\n";

enum {
	OPT_MAX_MEMBERS = 256,
	OPT_MAX_TENSOR,
	OPT_MAX_TOTAL,
	OPT_MAX_RATIO,
	OPT_DRY_RUN,
	OPT_REPORT,
	OPT_FORMAT,
	OPT_JSON,
	OPT_SPEC,
	OPT_THREADS,
	OPT_CHECKSUM
};

#define LIMIT_OPTIONS                                                        \
	{ "max-members", required_argument, NULL, OPT_MAX_MEMBERS },         \
	{ "max-tensor-bytes", required_argument, NULL, OPT_MAX_TENSOR },     \
	{ "max-total-bytes", required_argument, NULL, OPT_MAX_TOTAL },       \
	{ "max-ratio", required_argument, NULL, OPT_MAX_RATIO }

static int
parse_u64(const char *opt, const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v == 0) {
		fprintf(stderr, "%s: --%s needs a positive integer, not '%s'\n",
		    progname, opt, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* Returns 1 if c was a limit option (handled), -1 on a bad value, 0 else. */
static int
limit_option(int c, struct npz_limits *l)
{
	switch (c) {
	case OPT_MAX_MEMBERS:
		return parse_u64("max-members", optarg, &l->max_members) ? -1 : 1;
	case OPT_MAX_TENSOR:
		return parse_u64("max-tensor-bytes", optarg,
		    &l->max_tensor_bytes) ? -1 : 1;
	case OPT_MAX_TOTAL:
		return parse_u64("max-total-bytes", optarg,
		    &l->max_total_bytes) ? -1 : 1;
	case OPT_MAX_RATIO:
		return parse_u64("max-ratio", optarg, &l->max_ratio) ? -1 : 1;
	}
	return 0;
}

static int
fail(const struct wb_err *err)
{
	fprintf(stderr, "%s: error: %s\n", progname, err->msg);
	if (!wb_err_is_client(err->code) && err->file != NULL)
		fprintf(stderr, "%s: (%s, at %s:%d)\n", progname,
		    wb_err_name(err->code), err->file, err->line);
	return wb_err_is_client(err->code) ? EXIT_INPUT : EXIT_INTERNAL;
}

/* Write JSON to path atomically: temp file, fsync, rename. */
static int
write_json(const char *path, const json_t *j, struct wb_err *err)
{
	const size_t flags = JSON_INDENT(2) | JSON_PRESERVE_ORDER;
	char *tmp = NULL;
	int fd = -1, rc = 0, e;

	if (strcmp(path, "-") == 0) {
		/* After whatever stdio still holds for stdout. */
		e = fflush(stdout) != 0 ? errno :
		    report_write_fd(STDOUT_FILENO, j, flags);
		if (e != 0)
			rc = wb_err_set(err, WB_E_IO, "cannot write the report "
			    "to standard output: %s", strerror(e));
		return rc;
	}
	if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0) {
		tmp = NULL;
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	if ((fd = mkstemp(tmp)) < 0 ||
	    fchmod(fd, 0666 & ~convert_umask()) != 0) {
		rc = wb_err_set(err, WB_E_IO, "cannot write '%s': %s", path,
		    strerror(errno));
		goto out;
	}
	if ((e = report_write_fd(fd, j, flags)) == 0 && fsync(fd) != 0)
		e = errno;
	if (e != 0) {
		rc = wb_err_set(err, WB_E_IO, "cannot write '%s': %s", path,
		    strerror(e));
		goto out;
	}
	e = close(fd);
	fd = -1;
	if (e != 0) {
		rc = wb_err_set(err, WB_E_IO, "cannot write '%s': %s", path,
		    strerror(errno));
		goto out;
	}
	if (rename(tmp, path) != 0) {
		rc = wb_err_set(err, WB_E_IO, "cannot rename to '%s': %s", path,
		    strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
out:
	if (fd >= 0)
		close(fd);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	return rc;
}

static int
cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		LIMIT_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	struct npz_limits lim;
	struct wb_err err = { 0 };
	json_t *out = NULL;
	int c, json = 0, rc;

	npz_limits_default(&lim);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if ((rc = limit_option(c, &lim)) != 0) {
			if (rc < 0)
				return EXIT_INPUT;
			continue;
		}
		switch (c) {
		case OPT_JSON:
			json = 1;
			break;
		case 'h':
			printf("usage: %s inspect FILE.npz [--json]\n\n"
			    "List every tensor: key, dtype, shape, bytes and "
			    "how the member is stored.\n\n%s", progname,
			    limits_help);
			return 0;
		default:
			return EXIT_INPUT;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: %s inspect FILE.npz [--json]\n",
		    progname);
		return EXIT_INPUT;
	}
	if (convert_inspect(argv[optind], &lim, &out, &err) != 0)
		return fail(&err);
	if (json) {
		json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
	} else {
		report_print_inspect(stdout, out);
	}
	json_decref(out);
	return 0;
}

static int
cmd_template(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		LIMIT_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	struct npz_limits lim;
	struct wb_err err = { 0 };
	const char *outp = "-";
	json_t *spec = NULL;
	int c, rc;

	npz_limits_default(&lim);
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		if ((rc = limit_option(c, &lim)) != 0) {
			if (rc < 0)
				return EXIT_INPUT;
			continue;
		}
		switch (c) {
		case 'o':
			outp = optarg;
			break;
		case 'h':
			printf("usage: %s template FILE.npz [-o SPEC.json]\n\n"
			    "Print a starting mapping spec: one layer per module "
			    "prefix, the type\nguessed from parameter names and "
			    "shapes.  Guesses that another type\ncould fit carry "
			    "a \"note\"; check them, add \"flatten\" where a "
			    "Linear\nfollows a flattened feature map, and order "
			    "the layers as the Keras\nmodel's layers.\n\n%s",
			    progname, limits_help);
			return 0;
		default:
			return EXIT_INPUT;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: %s template FILE.npz [-o SPEC.json]\n",
		    progname);
		return EXIT_INPUT;
	}
	if (convert_template(argv[optind], &lim, &spec, &err) != 0 ||
	    write_json(outp, spec, &err) != 0) {
		json_decref(spec);
		return fail(&err);
	}
	json_decref(spec);
	return 0;
}

/*
 * convert reads an archive twice (its index, then its tensors in any
 * order), which a pipe cannot give.  An archive that is not a regular file
 * is first copied into a temporary file, removed at once (so nothing is
 * left whatever happens) and read as /proc/self/fd/N.  The copy stops at
 * what the limits could accept: every tensor byte plus every member's
 * headers.  Returns the descriptor and sets path, or -1 and err.
 */
static int
spool_input(const char *src, const struct npz_limits *lim, char *path,
    size_t plen, struct wb_err *err)
{
	const char *dir = getenv("TMPDIR");
	char *tmpl = NULL, *buf = NULL;
	uint64_t cap, total = 0;
	int in = -1, fd = -1, ok = 0;
	ssize_t n, w, off;

	cap = lim->max_members > (UINT64_MAX - lim->max_total_bytes) /
	    SPOOL_MEMBER_MAX ? UINT64_MAX : lim->max_total_bytes +
	    lim->max_members * SPOOL_MEMBER_MAX;
	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	if (asprintf(&tmpl, "%s/weightbridge-in-XXXXXX", dir) < 0) {
		tmpl = NULL;
		wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	if ((buf = malloc(SPOOL_BLOCK)) == NULL) {
		wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0) {
		wb_err_set(err, WB_E_IO, "cannot open '%s': %s", src,
		    strerror(errno));
		goto out;
	}
	if ((fd = mkostemp(tmpl, O_CLOEXEC)) < 0) {
		wb_err_set(err, WB_E_IO, "cannot copy '%s' into '%s': %s", src,
		    dir, strerror(errno));
		goto out;
	}
	unlink(tmpl);
	for (;;) {
		if ((n = read(in, buf, SPOOL_BLOCK)) < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			wb_err_set(err, WB_E_IO, "reading '%s': %s", src,
			    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if ((uint64_t)n > cap - total) {
			wb_err_set(err, WB_E_LIMIT, "'%s': more than the %" PRIu64
			    " bytes an archive within the limits can hold "
			    "(see --max-total-bytes, --max-members)", src, cap);
			goto out;
		}
		total += (uint64_t)n;
		for (off = 0; off < n; off += w)
			if ((w = write(fd, buf + off, (size_t)(n - off))) < 0 &&
			    errno != EINTR) {
				wb_err_set(err, WB_E_IO, "copying '%s' into "
				    "'%s': %s", src, dir, strerror(errno));
				goto out;
			} else if (w < 0) {
				w = 0;
			}
	}
	snprintf(path, plen, "/proc/self/fd/%d", fd);
	ok = 1;
out:
	if (!ok && fd >= 0) {
		close(fd);
		fd = -1;
	}
	if (in >= 0)
		close(in);
	free(buf);
	free(tmpl);
	return fd;
}

/*
 * Messages about the copy name the archive the user gave: the error, the
 * report's source and its problems.
 */
static void
spool_rename(struct wb_err *err, json_t *report, const char *spooled,
    const char *src)
{
	char buf[sizeof(err->msg)], *at;
	const char *m;
	json_t *p;
	size_t i;

	if ((at = strstr(err->msg, spooled)) != NULL) {
		snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - err->msg),
		    err->msg, src, at + strlen(spooled));
		memcpy(err->msg, buf, sizeof(buf));
	}
	if (report == NULL)
		return;
	json_object_set_new(json_object_get(report, "source"), "file",
	    json_string(src));
	json_array_foreach(json_object_get(report, "problems"), i, p) {
		char *fixed;

		if ((m = json_string_value(json_object_get(p, "message"))) ==
		    NULL || (at = strstr(m, spooled)) == NULL)
			continue;
		if (asprintf(&fixed, "%.*s%s%s", (int)(at - m), m, src,
		    at + strlen(spooled)) < 0)
			continue;
		json_object_set_new(p, "message", json_string(fixed));
		free(fixed);
	}
}

static void
convert_help(void)
{
	printf("usage: %s convert FILE.npz --spec SPEC.json -o OUT.h5\n"
	    "          [--format keras-h5|keras3] [--report REPORT.json]\n"
	    "          [--dry-run] [--quiet] [--verbose]\n\n"
	    "Convert the archive's tensors into a Keras weight file as the "
	    "spec says,\nand print the per-layer shape report.\n\n"
	    "  -s, --spec FILE     the mapping spec (docs/spec.md)\n"
	    "  -o, --output FILE   the weight file; name keras-h5 files *.h5 "
	    "and keras3\n"
	    "                      files *.weights.h5 (Keras picks its loader "
	    "by name)\n"
	    "  --format F          keras-h5 (legacy, read by Keras 2 and 3) "
	    "or keras3;\n"
	    "                      overrides the spec's target.format\n"
	    "  --report FILE       write the JSON report (also on failure); "
	    "- for stdout\n"
	    "  --dry-run           plan and check only; write no weight file\n"
	    "  --checksum          add the SHA-256 of the written file to the "
	    "report\n"
	    "  --threads N         worker threads (default: one per CPU)\n"
	    "  -q, --quiet         do not print the table\n"
	    "  -v, --verbose       add per-weight statistics to the table\n\n"
	    "FILE.npz may be a pipe (/dev/stdin, <(...)): it is copied into "
	    "$TMPDIR\n(default /tmp) first, since convert reads it twice.\n\n"
	    "%s\nexit status: 0 ok, 2 bad input or mapping problem (report "
	    "still written,\nno output file), 1 internal failure\n", progname,
	    limits_help);
}

static int
cmd_convert(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "spec", required_argument, NULL, 's' },
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "report", required_argument, NULL, OPT_REPORT },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "checksum", no_argument, NULL, OPT_CHECKSUM },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		LIMIT_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	struct convert_opts o;
	struct wb_err err = { 0 }, werr = { 0 };
	const char *specp = NULL, *reportp = NULL;
	json_t *spec = NULL, *report = NULL;
	char spooled[64];
	struct stat st;
	int c, rc, quiet = 0, verbose = 0, status, sfd = -1;

	convert_opts_init(&o);
	/* Hashing the whole file costs as much as converting a stored
	 * archive; the CLI does it when asked (every tensor's SHA-256 is in
	 * the report either way). */
	o.file_digest = 0;
	while ((c = getopt_long(argc, argv, "hs:o:qv", opts, NULL)) != -1) {
		if ((rc = limit_option(c, &o.limits)) != 0) {
			if (rc < 0)
				return EXIT_INPUT;
			continue;
		}
		switch (c) {
		case 's':
			specp = optarg;
			break;
		case 'o':
			o.out_path = optarg;
			break;
		case OPT_FORMAT:
			o.format = optarg;
			break;
		case OPT_REPORT:
			reportp = optarg;
			break;
		case OPT_DRY_RUN:
			o.dry_run = 1;
			break;
		case OPT_THREADS: {
			uint64_t t;

			if (parse_u64("threads", optarg, &t) != 0 || t > 64) {
				fprintf(stderr, "%s: --threads takes 1 to 64\n",
				    progname);
				return EXIT_INPUT;
			}
			o.threads = (int)t;
			break;
		}
		case OPT_CHECKSUM:
			o.file_digest = 1;
			/* The file is read again right away: keep it cached. */
			o.cache_output = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			convert_help();
			return 0;
		default:
			return EXIT_INPUT;
		}
	}
	if (optind + 1 != argc || specp == NULL ||
	    (o.out_path == NULL && !o.dry_run)) {
		fprintf(stderr, "usage: %s convert FILE.npz --spec SPEC.json "
		    "-o OUT.h5 (see --help)\n", progname);
		return EXIT_INPUT;
	}
	o.npz_path = argv[optind];
	/* Per-weight digests are only in the JSON report: skip them when
	 * nobody will read one (they cost about 0.5 s per GB). */
	if (reportp == NULL)
		o.weight_digests = 0;
	/* Statistics too, unless the table shows them. */
	if (reportp == NULL && (quiet || !verbose))
		o.weight_stats = 0;
	/* And the report itself when there is neither a table nor a file. */
	if (reportp == NULL && quiet)
		o.no_report = 1;
	if ((rc = spec_load_file(specp, &spec, &err)) != 0)
		report = convert_error_report(o.format, &err);
	else if (stat(o.npz_path, &st) == 0 && !S_ISREG(st.st_mode) &&
	    !S_ISDIR(st.st_mode) && (sfd = spool_input(o.npz_path,
	    &o.limits, spooled, sizeof(spooled), &err)) < 0) {
		rc = err.code;
		report = convert_error_report(o.format, &err);
	} else {
		o.spec = spec;
		if (sfd >= 0)
			o.npz_path = spooled;
		rc = convert_run(&o, &report, &err);
		if (sfd >= 0)
			spool_rename(&err, report, spooled, argv[optind]);
	}
	if (sfd >= 0)
		close(sfd);
	if (report != NULL && !quiet)
		report_print(stdout, report, verbose);
	if (report != NULL && reportp != NULL &&
	    write_json(reportp, report, &werr) != 0) {
		fprintf(stderr, "%s: error: %s\n", progname, werr.msg);
		if (rc == 0)
			rc = werr.code;
	}
	if (rc != 0)
		status = fail(err.code ? &err : &werr);
	else
		status = 0;
	json_decref(report);
	json_decref(spec);
	return status;
}

int
main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2) {
		usage_main(stderr);
		return EXIT_INPUT;
	}
	cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ||
	    strcmp(cmd, "help") == 0) {
		usage_main(stdout);
		return 0;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
		printf("weightbridge %s (HDF5 %s, jansson %s)\n", WB_VERSION,
		    kh5_lib_version(), JANSSON_VERSION);
		return 0;
	}
	/* Subcommand options start after the command name. */
	argv[1] = argv[0];
	if (strcmp(cmd, "inspect") == 0)
		return cmd_inspect(argc - 1, argv + 1);
	if (strcmp(cmd, "template") == 0)
		return cmd_template(argc - 1, argv + 1);
	if (strcmp(cmd, "convert") == 0)
		return cmd_convert(argc - 1, argv + 1);
	fprintf(stderr, "%s: unknown command '%s'\n", progname, cmd);
	usage_main(stderr);
	return EXIT_INPUT;
}
