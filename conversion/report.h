/*
 * report: the per-layer shape report for people.  The report itself is a
 * JSON document built by plan and convert (documented in docs/spec.md);
 * this module renders it as a terminal table with the problems, warnings
 * and unused tensors after it.
 */
#ifndef REPORT_H
#define REPORT_H

#include <stdio.h>

#include <jansson.h>

/* Print the table for report (borrowed) to f.  verbose adds statistics. */
void	report_print(FILE *f, const json_t *report, int verbose);

/* Print an inspect document (convert_inspect's output) as a table. */
void	report_print_inspect(FILE *f, const json_t *inspect);

#endif
