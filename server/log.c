/*
 * log: the journal or JSON lines on stderr.  See log.h.  Each line is built
 * whole and written with one fputs under stdio's own lock, so lines from
 * different threads never interleave.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include <jansson.h>
#ifdef WB_HAVE_SYSTEMD
#include <systemd/sd-journal.h>
#endif

#include "log.h"

#define LOG_FIELDS_MAX	24
#define LOG_FIELD_MAX	1024

static int log_journal;

void
log_init(void)
{
#ifdef WB_HAVE_SYSTEMD
	log_journal = getenv("JOURNAL_STREAM") != NULL;
#else
	log_journal = 0;
#endif
}

static const char *
log_level_name(enum log_level lvl)
{
	switch (lvl) {
	case LOG_L_ERR: return "error";
	case LOG_L_WARN: return "warning";
	case LOG_L_INFO: return "info";
	default: return "debug";
	}
}

#ifdef WB_HAVE_SYSTEMD
static void
log_journal_send(enum log_level lvl, const char *event, const char *msg,
    const char **kv, size_t nkv)
{
	struct iovec iov[LOG_FIELDS_MAX + 3];
	char buf[LOG_FIELDS_MAX + 3][LOG_FIELD_MAX];
	size_t i, n = 0, j;
	int len;

	len = snprintf(buf[n], LOG_FIELD_MAX, "MESSAGE=%s", msg);
	iov[n].iov_base = buf[n];
	iov[n].iov_len = len < LOG_FIELD_MAX ? (size_t)len : LOG_FIELD_MAX - 1;
	n++;
	len = snprintf(buf[n], LOG_FIELD_MAX, "PRIORITY=%d", (int)lvl);
	iov[n].iov_base = buf[n];
	iov[n].iov_len = (size_t)len;
	n++;
	len = snprintf(buf[n], LOG_FIELD_MAX, "WB_EVENT=%s", event);
	iov[n].iov_base = buf[n];
	iov[n].iov_len = len < LOG_FIELD_MAX ? (size_t)len : LOG_FIELD_MAX - 1;
	n++;
	for (i = 0; i + 1 < nkv; i += 2) {
		len = snprintf(buf[n], LOG_FIELD_MAX, "WB_%s=%s", kv[i],
		    kv[i + 1]);
		/* Journal field names are upper case letters, digits, '_'. */
		for (j = 3; buf[n][j] != '=' && buf[n][j] != '\0'; j++)
			buf[n][j] = isalnum((unsigned char)buf[n][j]) ?
			    (char)toupper((unsigned char)buf[n][j]) : '_';
		iov[n].iov_base = buf[n];
		iov[n].iov_len = len < LOG_FIELD_MAX ? (size_t)len :
		    LOG_FIELD_MAX - 1;
		n++;
	}
	(void)sd_journal_sendv(iov, (int)n);
}
#endif

static void
log_emit(enum log_level lvl, const char *event, const char *msg,
    const char **kv, size_t nkv)
{
	json_t *o = NULL;
	char *line = NULL, ts[96];
	struct timespec now;
	struct tm tm;
	size_t i;

#ifdef WB_HAVE_SYSTEMD
	if (log_journal) {
		log_journal_send(lvl, event, msg, kv, nkv);
		return;
	}
#endif
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
	if ((o = json_object()) == NULL)
		goto out;
	json_object_set_new(o, "ts", json_string(ts));
	json_object_set_new(o, "level", json_string(log_level_name(lvl)));
	json_object_set_new(o, "event", json_string(event));
	json_object_set_new(o, "msg", json_string(msg));
	for (i = 0; i + 1 < nkv; i += 2)
		json_object_set_new(o, kv[i], json_string(kv[i + 1]));
	if ((line = json_dumps(o, JSON_COMPACT)) == NULL)
		goto out;
	fprintf(stderr, "%s\n", line);
out:
	free(line);
	json_decref(o);
}

void
log_kv(enum log_level lvl, const char *event, const char *msg, ...)
{
	const char *kv[LOG_FIELDS_MAX * 2];
	const char *k, *v;
	size_t n = 0;
	va_list ap;

	va_start(ap, msg);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		if (n + 2 > LOG_FIELDS_MAX * 2 - 2)
			continue;
		kv[n++] = k;
		kv[n++] = v != NULL ? v : "";
	}
	va_end(ap);
	log_emit(lvl, event, msg, kv, n);
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	char buf[LOG_FIELD_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_emit(lvl, "daemon", buf, NULL, 0);
}
