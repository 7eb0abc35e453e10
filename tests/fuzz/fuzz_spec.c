/*
 * fuzz_spec: the mapping spec, from bytes to a plan.
 *
 * The input is a spec document.  It goes through the same calls as in
 * convert_run: spec_load_buffer (size cap, JSON, duplicate keys),
 * spec_parse (fields, types, regexes) and plan_build against a fixed small
 * archive whose tensors cover every preset (tests/fuzz/data/plan.npz,
 * indexed once at start-up), then plan_layout and the report.  The output
 * format alternates with the input's length so both layouts are planned.
 *
 * Checked beyond "no crash": failures carry their code and a message, a
 * plan without problems lays out, and the report is always a document.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kh5.h"
#include "npz.h"
#include "plan.h"
#include "spec.h"
#include "wb_err.h"

#ifndef FUZZ_DATA_DIR
#define FUZZ_DATA_DIR	"tests/fuzz/data"
#endif

int	LLVMFuzzerInitialize(int *argc, char ***argv);
int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct npz_index *fuzz_spec_ix;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct wb_err err;

	wb_err_clear(&err);
	if (npz_index_read(FUZZ_DATA_DIR "/plan.npz", NULL, &fuzz_spec_ix,
	    &err) != 0) {
		fprintf(stderr, "fuzz_spec: %s\n", err.msg);
		abort();
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wb_err err;
	json_t *root = NULL, *problems = NULL, *report = NULL;
	struct spec *spec = NULL;
	struct plan *p = NULL;
	struct kh5_layer *kl = NULL;
	struct kh5_weight *kw = NULL;
	char *text;
	int rc;

	wb_err_clear(&err);
	if ((rc = spec_load_buffer((const char *)data, size, &root,
	    &err)) != 0) {
		if ((int)err.code != rc || err.msg[0] == '\0' || root != NULL)
			abort();
		return 0;
	}
	if ((problems = json_array()) == NULL)
		abort();
	rc = spec_parse(root, problems, &spec, &err);
	json_decref(root);
	if (rc != 0) {
		if ((int)err.code != rc || err.msg[0] == '\0' ||
		    (rc == WB_E_SPEC && json_array_size(problems) == 0))
			abort();
		goto out;
	}
	rc = plan_build(fuzz_spec_ix, spec, size & 1 ? "keras3" : NULL, &p,
	    &err);
	if (p == NULL)
		abort();
	if (rc != 0 && ((int)err.code != rc || err.msg[0] == '\0'))
		abort();
	if (rc == 0) {
		if (p->nproblems != 0)
			abort();
		wb_err_clear(&err);
		if (plan_layout(p, &kl, &kw, &err) != 0)
			abort();
	}
	if ((report = plan_take_report(p)) == NULL ||
	    (text = json_dumps(report, JSON_COMPACT)) == NULL)
		abort();
	free(text);
out:
	free(kl);
	free(kw);
	json_decref(report);
	plan_free(p);
	spec_free(spec);
	json_decref(problems);
	return 0;
}
