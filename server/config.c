/*
 * config: the settings table and its three readers (file, environment,
 * flags).  See config.h.  Numbers are unsigned 64-bit with inclusive
 * bounds; sizes accept binary suffixes.  Strings are copied into fixed
 * buffers, so a struct config can be copied and freed without care.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "npz.h"

enum config_type {
	CONFIG_STR,
	CONFIG_UINT,	/* plain integer */
	CONFIG_SIZE	/* integer with optional K/M/G/T suffix */
};

struct config_row {
	const char	*key;		/* file key and flag name */
	const char	*env;
	enum config_type type;
	size_t		 off;
	const char	*def;
	uint64_t	 min, max;
	const char	*help;
};

#define OFF(f) offsetof(struct config, f)
#define KiB 1024ULL
#define MiB (1024ULL * 1024)
#define GiB (1024ULL * 1024 * 1024)

static const struct config_row config_table[] = {
	{ "listen", "WEIGHTBRIDGED_LISTEN", CONFIG_STR, OFF(listen),
	    "127.0.0.1:8080", 0, 0,
	    "address:port to listen on ([::1]:port for IPv6; port 0 picks a free one)" },
	{ "spool", "WEIGHTBRIDGED_SPOOL", CONFIG_STR, OFF(spool),
	    "./var", 0, 0,
	    "directory holding uploads, job state and results ($STATE_DIRECTORY if set)" },
	{ "port-file", "WEIGHTBRIDGED_PORT_FILE", CONFIG_STR, OFF(port_file),
	    "", 0, 0, "write the bound port number to this file once listening" },
	{ "workers", "WEIGHTBRIDGED_WORKERS", CONFIG_UINT, OFF(workers),
	    "0", 0, 256, "conversion worker threads (0 = number of CPUs)" },
	{ "queue-size", "WEIGHTBRIDGED_QUEUE_SIZE", CONFIG_UINT, OFF(queue_size),
	    "64", 1, 100000, "jobs waiting for a worker before POST answers 429" },
	{ "http-threads", "WEIGHTBRIDGED_HTTP_THREADS", CONFIG_UINT,
	    OFF(http_threads), "4", 1, 64, "HTTP threads in libmicrohttpd's pool" },
	{ "upload-limit", "WEIGHTBRIDGED_UPLOAD_LIMIT", CONFIG_SIZE,
	    OFF(upload_limit), "2G", 1 * KiB, 1024 * GiB,
	    "largest accepted upload in bytes (K/M/G/T suffixes)" },
	{ "spec-limit", "WEIGHTBRIDGED_SPEC_LIMIT", CONFIG_SIZE, OFF(spec_limit),
	    "1M", 1 * KiB, 64 * MiB, "largest accepted mapping spec in bytes" },
	{ "max-members", "WEIGHTBRIDGED_MAX_MEMBERS", CONFIG_UINT,
	    OFF(max_members), "100000", 1, 10000000,
	    "most members accepted in one .npz" },
	{ "max-tensor", "WEIGHTBRIDGED_MAX_TENSOR", CONFIG_SIZE,
	    OFF(max_tensor_bytes), "4G", 1, 1024 * GiB,
	    "largest accepted tensor in bytes" },
	{ "max-total", "WEIGHTBRIDGED_MAX_TOTAL", CONFIG_SIZE,
	    OFF(max_total_bytes), "16G", 1, 4096 * GiB,
	    "largest accepted uncompressed archive in bytes" },
	{ "max-ratio", "WEIGHTBRIDGED_MAX_RATIO", CONFIG_UINT, OFF(max_ratio),
	    "1000", 1, 1000000,
	    "largest compression ratio of a member bigger than 1 MiB" },
	{ "ttl", "WEIGHTBRIDGED_TTL", CONFIG_UINT, OFF(ttl),
	    "86400", 1, 365 * 86400ULL,
	    "seconds a finished job and its files are kept" },
	{ "reap-interval", "WEIGHTBRIDGED_REAP_INTERVAL", CONFIG_UINT,
	    OFF(reap_interval), "60", 1, 86400,
	    "seconds between runs of the expired-job reaper" },
	{ "max-wait", "WEIGHTBRIDGED_MAX_WAIT", CONFIG_UINT, OFF(max_wait),
	    "60", 0, 600, "cap in seconds of the ?wait= parameter" },
	{ "connection-timeout", "WEIGHTBRIDGED_CONNECTION_TIMEOUT", CONFIG_UINT,
	    OFF(conn_timeout), "60", 1, 3600,
	    "seconds an idle connection is kept open" },
	{ "connection-limit", "WEIGHTBRIDGED_CONNECTION_LIMIT", CONFIG_UINT,
	    OFF(conn_limit), "256", 1, 65535, "most concurrent connections" },
	{ "per-ip-limit", "WEIGHTBRIDGED_PER_IP_LIMIT", CONFIG_UINT,
	    OFF(per_ip_limit), "64", 1, 65535,
	    "most concurrent connections from one address" },
	{ "tokens-file", "WEIGHTBRIDGED_TOKENS_FILE", CONFIG_STR,
	    OFF(tokens_file), "", 0, 0,
	    "bearer tokens, one per line; if set, /v1 requires one (SIGHUP reloads)" },
	{ "tls-cert", "WEIGHTBRIDGED_TLS_CERT", CONFIG_STR, OFF(tls_cert),
	    "", 0, 0, "PEM certificate; with tls-key, serve HTTPS" },
	{ "tls-key", "WEIGHTBRIDGED_TLS_KEY", CONFIG_STR, OFF(tls_key),
	    "", 0, 0, "PEM private key for tls-cert" },
	{ "drain-delay", "WEIGHTBRIDGED_DRAIN_DELAY", CONFIG_UINT,
	    OFF(drain_delay), "0", 0, 60000,
	    "ms to keep answering (readyz 503) after SIGTERM before stopping" },
	{ "shutdown-grace", "WEIGHTBRIDGED_SHUTDOWN_GRACE", CONFIG_UINT,
	    OFF(shutdown_grace), "30", 0, 3600,
	    "seconds running jobs get to finish at shutdown; then they are "
	    "requeued" },
};
#define CONFIG_NROWS (sizeof(config_table) / sizeof(config_table[0]))

static const struct config_row *
config_row_find(const char *key)
{
	size_t i;

	for (i = 0; i < CONFIG_NROWS; i++)
		if (strcmp(config_table[i].key, key) == 0)
			return &config_table[i];
	return NULL;
}

int
config_known(const char *key)
{
	return config_row_find(key) != NULL;
}

int
config_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (s == NULL || !isdigit((unsigned char)*s))
		return WB_E_USAGE;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return WB_E_USAGE;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K': mul = KiB; end++; break;
	case 'm': case 'M': mul = MiB; end++; break;
	case 'g': case 'G': mul = GiB; end++; break;
	case 't': case 'T': mul = 1024 * GiB; end++; break;
	default:
		return WB_E_USAGE;
	}
	if (*end == 'i' || *end == 'B')
		end += *end == 'i' ? 1 : 0;
	if (*end == 'B')
		end++;
	if (*end != '\0')
		return WB_E_USAGE;
	if (v > UINT64_MAX / mul)
		return WB_E_USAGE;
	*out = (uint64_t)v * mul;
	return 0;
}

static int
config_apply(struct config *c, const struct config_row *row,
    const char *value, const char *origin, struct wb_err *err)
{
	char *dst;
	uint64_t v, *vp;
	char *end;

	switch (row->type) {
	case CONFIG_STR:
		if (strlen(value) >= CONFIG_STR_MAX)
			return wb_err_set(err, WB_E_USAGE,
			    "%s: value longer than %d bytes", origin,
			    CONFIG_STR_MAX - 1);
		dst = (char *)c + row->off;
		memcpy(dst, value, strlen(value) + 1);
		return 0;
	case CONFIG_UINT:
		if (!isdigit((unsigned char)*value))
			return wb_err_set(err, WB_E_USAGE,
			    "%s: \"%s\" is not a number", origin, value);
		errno = 0;
		v = strtoull(value, &end, 10);
		if (errno != 0 || *end != '\0')
			return wb_err_set(err, WB_E_USAGE,
			    "%s: \"%s\" is not a number", origin, value);
		break;
	case CONFIG_SIZE:
	default:
		if (config_parse_size(value, &v) != 0)
			return wb_err_set(err, WB_E_USAGE,
			    "%s: \"%s\" is not a size (e.g. 512K, 2G)", origin,
			    value);
		break;
	}
	if (v < row->min || v > row->max)
		return wb_err_set(err, WB_E_USAGE,
		    "%s: %llu is outside %llu..%llu", origin,
		    (unsigned long long)v, (unsigned long long)row->min,
		    (unsigned long long)row->max);
	vp = (uint64_t *)(void *)((char *)c + row->off);
	*vp = v;
	return 0;
}

int
config_set(struct config *c, const char *key, const char *value,
    const char *origin, struct wb_err *err)
{
	const struct config_row *row;

	if ((row = config_row_find(key)) == NULL)
		return wb_err_set(err, WB_E_USAGE, "%s: unknown setting \"%s\"",
		    origin, key);
	return config_apply(c, row, value, origin, err);
}

void
config_defaults(struct config *c)
{
	size_t i;
	const char *sd;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < CONFIG_NROWS; i++)
		(void)config_apply(c, &config_table[i], config_table[i].def,
		    "default", NULL);
	/*
	 * systemd's StateDirectory= hands us our spool; it may list several
	 * directories separated by ':', the first is ours.
	 */
	if ((sd = getenv("STATE_DIRECTORY")) != NULL && *sd != '\0' &&
	    strlen(sd) < sizeof(c->spool)) {
		snprintf(c->spool, sizeof(c->spool), "%s", sd);
		c->spool[strcspn(c->spool, ":")] = '\0';
	}
}

static char *
config_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
	    e[-1] == '\r'))
		*--e = '\0';
	return s;
}

int
config_load_file(struct config *c, const char *path, struct wb_err *err)
{
	FILE *fp = NULL;
	char line[CONFIG_LINE_MAX], origin[CONFIG_STR_MAX + 32];
	char *k, *v, *eq;
	unsigned long lineno = 0;
	size_t total = 0;
	int rc = 0;

	if ((fp = fopen(path, "r")) == NULL) {
		rc = wb_err_set(err, WB_E_USAGE, "config file %s: %s", path,
		    strerror(errno));
		goto out;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		total += strlen(line);
		snprintf(origin, sizeof(origin), "%s:%lu", path, lineno);
		if (total > CONFIG_FILE_MAX) {
			rc = wb_err_set(err, WB_E_USAGE,
			    "%s: file longer than %d bytes", origin,
			    CONFIG_FILE_MAX);
			goto out;
		}
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			rc = wb_err_set(err, WB_E_USAGE,
			    "%s: line longer than %d bytes", origin,
			    CONFIG_LINE_MAX - 2);
			goto out;
		}
		k = config_trim(line);
		if (*k == '\0' || *k == '#')
			continue;
		if ((eq = strchr(k, '=')) == NULL) {
			rc = wb_err_set(err, WB_E_USAGE,
			    "%s: expected \"key = value\"", origin);
			goto out;
		}
		*eq = '\0';
		v = config_trim(eq + 1);
		k = config_trim(k);
		if ((rc = config_set(c, k, v, origin, err)) != 0)
			goto out;
	}
	if (ferror(fp))
		rc = wb_err_set(err, WB_E_USAGE, "config file %s: read error",
		    path);
out:
	if (fp != NULL)
		fclose(fp);
	return rc;
}

int
config_load_env(struct config *c, struct wb_err *err)
{
	size_t i;
	const char *v;
	int rc;

	for (i = 0; i < CONFIG_NROWS; i++) {
		if ((v = getenv(config_table[i].env)) == NULL)
			continue;
		if ((rc = config_apply(c, &config_table[i], v,
		    config_table[i].env, err)) != 0)
			return rc;
	}
	return 0;
}

void
config_usage(FILE *fp)
{
	size_t i;
	char flag[64];

	for (i = 0; i < CONFIG_NROWS; i++) {
		snprintf(flag, sizeof(flag), "--%s %s", config_table[i].key,
		    config_table[i].type == CONFIG_STR ? "VALUE" :
		    config_table[i].type == CONFIG_SIZE ? "SIZE" : "N");
		fprintf(fp, "  %-28s %s\n", flag, config_table[i].help);
		fprintf(fp, "  %-28s env %s, default \"%s\"", "",
		    config_table[i].env, config_table[i].def);
		if (config_table[i].type != CONFIG_STR)
			fprintf(fp, ", %llu..%llu",
			    (unsigned long long)config_table[i].min,
			    (unsigned long long)config_table[i].max);
		fputc('\n', fp);
	}
}

void
config_dump(const struct config *c, FILE *fp)
{
	size_t i;
	const struct config_row *row;

	for (i = 0; i < CONFIG_NROWS; i++) {
		row = &config_table[i];
		if (row->type == CONFIG_STR)
			fprintf(fp, "%s = %s\n", row->key,
			    (const char *)c + row->off);
		else
			fprintf(fp, "%s = %llu\n", row->key,
			    (unsigned long long)*(const uint64_t *)(const void *)
			    ((const char *)c + row->off));
	}
}
