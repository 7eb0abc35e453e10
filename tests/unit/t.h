/*
 * t.h: the smallest test harness that does the job.  Each test file is one
 * binary; CHECK records a failure with file:line and carries on, so one run
 * shows every broken expectation.  main() returns non-zero if any failed.
 */
#ifndef T_H
#define T_H

#include <stdio.h>
#include <string.h>

static int t_checks, t_failures;

#define CHECK(cond)                                                          \
	do {                                                                 \
		t_checks++;                                                  \
		if (!(cond)) {                                               \
			t_failures++;                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
			    __LINE__, #cond);                                \
		}                                                            \
	} while (0)

#define CHECK_STR(a, b)                                                      \
	do {                                                                 \
		const char *t_a = (a), *t_b = (b);                           \
		t_checks++;                                                  \
		if (t_a == NULL || t_b == NULL || strcmp(t_a, t_b) != 0) {   \
			t_failures++;                                        \
			fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__, \
			    __LINE__, t_a ? t_a : "(null)",                  \
			    t_b ? t_b : "(null)");                           \
		}                                                            \
	} while (0)

/* True if haystack contains needle. */
#define CONTAINS(h, n) ((h) != NULL && strstr((h), (n)) != NULL)

static inline int
t_done(const char *name)
{
	printf("%-24s %d checks, %d failed\n", name, t_checks, t_failures);
	return t_failures != 0;
}

#endif
