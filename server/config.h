/*
 * config: every setting of weightbridged, in one table.
 *
 * Each row names a setting once: its config-file key, its environment
 * variable (WEIGHTBRIDGED_<KEY>), its command-line flag (--<key>), its
 * default, its bounds and a line of help.  Parsing, --help and
 * --check-config are all generated from that table, so a setting cannot
 * exist in one place and be missing in another.  Later sources win:
 * defaults, then the config file, then the environment, then flags.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "wb_err.h"

#define CONFIG_STR_MAX		1024	/* longest string value */
#define CONFIG_LINE_MAX		2048	/* longest config-file line */
#define CONFIG_FILE_MAX		(64 * 1024)

struct config {
	char		 listen[CONFIG_STR_MAX];
	char		 spool[CONFIG_STR_MAX];
	char		 port_file[CONFIG_STR_MAX];
	char		 tokens_file[CONFIG_STR_MAX];
	char		 tls_cert[CONFIG_STR_MAX];
	char		 tls_key[CONFIG_STR_MAX];
	uint64_t	 workers;	/* 0 = number of online CPUs */
	uint64_t	 queue_size;
	uint64_t	 http_threads;
	uint64_t	 upload_limit;	/* bytes */
	uint64_t	 spec_limit;	/* bytes */
	uint64_t	 max_members;
	uint64_t	 max_tensor_bytes;
	uint64_t	 max_total_bytes;
	uint64_t	 max_ratio;
	uint64_t	 ttl;		/* seconds a finished job is kept */
	uint64_t	 reap_interval;	/* seconds between reaper runs */
	uint64_t	 max_wait;	/* seconds, cap of ?wait= */
	uint64_t	 conn_timeout;	/* seconds */
	uint64_t	 conn_limit;
	uint64_t	 per_ip_limit;
	uint64_t	 drain_delay;	/* ms readyz answers 503 before stopping */
	uint64_t	 shutdown_grace;	/* seconds running jobs get to finish */
};

/* Fill every field with its default (STATE_DIRECTORY sets the spool's). */
void	config_defaults(struct config *c);

/*
 * Apply one setting by its key ("queue-size") or flag name.  value is
 * checked against the row's bounds; origin names the source for messages
 * ("--queue-size", "FILE:12", "WEIGHTBRIDGED_QUEUE_SIZE").
 * Returns 0 or WB_E_USAGE with a message naming origin.
 */
int	config_set(struct config *c, const char *key, const char *value,
	    const char *origin, struct wb_err *err);

/* Read `key = value` lines ('#' comments, blank lines) from path. */
int	config_load_file(struct config *c, const char *path,
	    struct wb_err *err);

/* Apply every WEIGHTBRIDGED_* variable found in the environment. */
int	config_load_env(struct config *c, struct wb_err *err);

/* 1 if key names a table row. */
int	config_known(const char *key);

/* The --help text for the table's rows. */
void	config_usage(FILE *fp);

/* Write every setting as `key = value` (what --check-config prints). */
void	config_dump(const struct config *c, FILE *fp);

/* Parse "123", "4K", "16M", "2G", "1T" (binary units). 0 or WB_E_USAGE. */
int	config_parse_size(const char *s, uint64_t *out);

#endif
