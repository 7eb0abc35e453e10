/*
 * log: one line per event, as structured fields.
 *
 * Under systemd (JOURNAL_STREAM names our stderr) each event goes to the
 * journal with its fields (WB_REQ_ID=, WB_JOB_ID=, ...) so `journalctl
 * WB_JOB_ID=...` finds a job's whole story; otherwise each event is one JSON
 * object per line on stderr.  Fields are key/value string pairs ending with
 * NULL; keys are lower case and become upper case journal field names.
 */
#ifndef LOG_H
#define LOG_H

enum log_level {
	LOG_L_ERR = 3,		/* our own failure */
	LOG_L_WARN = 4,
	LOG_L_INFO = 6,
	LOG_L_DEBUG = 7
};

/* Decide the sink (journal or JSON lines) once, at startup. */
void	log_init(void);

/*
 * Log event with a message and fields: log_kv(LOG_L_INFO, "job",
 * "job is running", "job_id", id, "state", "running", NULL).
 */
void	log_kv(enum log_level lvl, const char *event, const char *msg, ...)
	    __attribute__((sentinel));

/* A plain message (printf-style) with no extra fields. */
void	log_msg(enum log_level lvl, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

#endif
