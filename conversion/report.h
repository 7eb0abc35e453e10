/*
 * report: the per-layer shape report for people.  The report itself is a
 * JSON document built by plan and convert (documented in docs/spec.md);
 * this module renders it as a terminal table with the problems, warnings
 * and unused tensors after it, and writes it out as JSON.
 */
#ifndef REPORT_H
#define REPORT_H

#include <stdio.h>

#include <jansson.h>

/* Print the table for report (borrowed) to f.  verbose adds statistics. */
void	report_print(FILE *f, const json_t *report, int verbose);

/* Print an inspect document (convert_inspect's output) as a table. */
void	report_print_inspect(FILE *f, const json_t *inspect);

/*
 * Write j (borrowed) as JSON with jansson's dump flags, then a newline, to
 * fd through a 64 KiB buffer: no copy of the whole text in memory, and few
 * system calls.  The caller owns fd (not synced, not closed).  Returns 0,
 * or an errno value (ENOMEM if jansson failed).
 */
int	report_write_fd(int fd, const json_t *j, size_t flags);

#endif
