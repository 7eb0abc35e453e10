/*
 * Unit tests for spec + preset + plan: an in-memory tensor index (no
 * archive needed) planned against specs, checking shapes, recipes, group
 * names and that every kind of problem is reported with the right name.
 */
#include <stdarg.h>
#include <stdlib.h>

#include "plan.h"
#include "preset.h"
#include "spec.h"
#include "t.h"

static struct npz_entry ents[64];
static struct npz_index ix;

static void
add(const char *key, int ndim, ...)
{
	struct npz_entry *e = &ents[ix.n++];
	va_list ap;
	int i;

	memset(e, 0, sizeof(*e));
	e->key = (char *)key;
	e->name = (char *)key;
	strcpy(e->hdr.descr, "<f4");
	e->hdr.kind = NPY_FLOAT;
	e->hdr.itemsize = 4;
	e->hdr.ndim = ndim;
	e->hdr.nelem = 1;
	va_start(ap, ndim);
	for (i = 0; i < ndim; i++) {
		e->hdr.shape[i] = (uint64_t)va_arg(ap, int);
		e->hdr.nelem *= e->hdr.shape[i];
	}
	va_end(ap);
	e->hdr.nbytes = e->hdr.nelem * 4;
	ix.total_bytes += e->hdr.nbytes;
}

static void
cnn_index(void)
{
	memset(&ix, 0, sizeof(ix));
	ix.e = ents;
	add("features.0.weight", 4, 16, 3, 3, 3);
	add("features.0.bias", 1, 16);
	add("features.1.weight", 1, 16);
	add("features.1.bias", 1, 16);
	add("features.1.running_mean", 1, 16);
	add("features.1.running_var", 1, 16);
	add("features.1.num_batches_tracked", 0);
	add("features.4.weight", 4, 32, 16, 3, 3);
	add("classifier.weight", 2, 10, 32 * 7 * 7);
	add("classifier.bias", 1, 10);
}

/* Plan spec text against the index; returns the rc, leaves plan in *pp. */
static int
plan_text(const char *text, const char *fmt, struct plan **pp,
    struct spec **sp, struct wb_err *err)
{
	json_t *j = NULL;
	int rc;

	*pp = NULL;
	*sp = NULL;
	if ((rc = spec_load_buffer(text, strlen(text), &j, err)) != 0)
		return rc;
	rc = spec_parse(j, NULL, sp, err);
	json_decref(j);
	if (rc != 0)
		return rc;
	return plan_build(&ix, *sp, fmt, pp, err);
}

static const char *
problems_text(struct plan *p)
{
	static char buf[8192];
	char *s = json_dumps(json_object_get(p->report, "problems"), 0);

	snprintf(buf, sizeof(buf), "%s", s ? s : "");
	free(s);
	return buf;
}

static void
test_cnn_ok(void)
{
	struct plan *p;
	struct spec *s;
	struct wb_err err = { 0 };
	int rc;

	cnn_index();
	rc = plan_text("{\"weightbridge_spec\":1,\"layers\":["
	    "{\"name\":\"conv1\",\"type\":\"Conv2D\",\"from\":\"features.0\"},"
	    "{\"name\":\"bn1\",\"type\":\"BatchNormalization\",\"from\":\"features.1\"},"
	    "{\"name\":\"conv2\",\"type\":\"Conv2D\",\"from\":\"features.4\","
	    "\"expect\":{\"kernel\":[3,3,16,32]}},"
	    "{\"name\":\"fc\",\"type\":\"Dense\",\"from\":\"classifier\","
	    "\"flatten\":{\"chw\":[32,7,7]}}]}", "keras3", &p, &s, &err);
	if (rc != 0)
		fprintf(stderr, "%s\n%s\n", err.msg, problems_text(p));
	CHECK(rc == 0);
	CHECK(p->nlayers == 4);
	CHECK(p->l[0].nw == 2 && p->l[0].w[0].out.ndim == 4);
	CHECK(p->l[0].w[0].out.d[0] == 3 && p->l[0].w[0].out.d[2] == 3 &&
	    p->l[0].w[0].out.d[3] == 16);
	CHECK(p->l[1].nw == 4);
	CHECK_STR(p->l[1].w[2].name, "moving_mean");
	CHECK(p->l[2].nw == 1);		/* no bias: use_bias=False */
	CHECK_STR(p->l[0].group, "layers/conv2d");
	CHECK_STR(p->l[2].group, "layers/conv2d_1");
	CHECK_STR(p->l[1].group, "layers/batch_normalization");
	CHECK_STR(p->l[3].w[0].path, "vars/0");
	CHECK(p->l[3].w[0].out.d[0] == 1568 && p->l[3].w[0].out.d[1] == 10);
	/* num_batches_tracked is ignored by default, never unused. */
	CHECK(json_array_size(json_object_get(p->report, "ignored")) == 1);
	CHECK(json_array_size(json_object_get(p->report, "unused")) == 0);
	/* The eps advice is given once. */
	CHECK(CONTAINS(json_string_value(json_object_get(json_array_get(
	    json_object_get(p->report, "warnings"), 0), "message")), "1e-5"));
	plan_free(p);
	spec_free(s);

	cnn_index();
	rc = plan_text("{\"weightbridge_spec\":1,\"unmapped\":\"ignore\","
	    "\"layers\":[{\"name\":\"conv1\",\"type\":\"Conv2D\","
	    "\"from\":\"features.0\"}]}", NULL, &p, &s, &err);
	CHECK(rc == 0);
	CHECK_STR(p->l[0].w[0].path, "conv1/kernel:0");
	CHECK_STR(p->l[0].group, "conv1");
	plan_free(p);
	spec_free(s);
}

static void
test_problems(void)
{
	struct plan *p;
	struct spec *s;
	struct wb_err err = { 0 };
	int rc;

	/* Missing key, unknown type, unused tensors, flatten mismatch: all
	 * reported in one run. */
	cnn_index();
	rc = plan_text("{\"weightbridge_spec\":1,\"layers\":["
	    "{\"name\":\"conv1\",\"type\":\"Conv2D\",\"from\":\"features.9\"},"
	    "{\"name\":\"x\",\"type\":\"Conv4D\",\"from\":\"features.0\"},"
	    "{\"name\":\"fc\",\"type\":\"Dense\",\"from\":\"classifier\","
	    "\"flatten\":{\"chw\":[32,7,8]}}]}", NULL, &p, &s, &err);
	CHECK(rc == WB_E_MAPPING);
	CHECK(CONTAINS(problems_text(p), "no tensor 'features.9.weight'"));
	CHECK(CONTAINS(problems_text(p), "unknown layer type 'Conv4D'"));
	CHECK(CONTAINS(problems_text(p), "Conv2D, Conv3D"));
	CHECK(CONTAINS(problems_text(p), "'features.1.running_var' is not used"));
	CHECK(CONTAINS(problems_text(p), "1792 features"));
	CHECK(json_array_size(json_object_get(p->report, "missing")) == 1);
	plan_free(p);
	spec_free(s);

	/* Shape mismatch against "expect", and a field the preset lacks. */
	wb_err_clear(&err);
	cnn_index();
	rc = plan_text("{\"weightbridge_spec\":1,\"unmapped\":\"warn\","
	    "\"layers\":[{\"name\":\"c\",\"type\":\"Conv2D\",\"from\":"
	    "\"features.0\",\"flatten\":{\"cl\":[1,1]},"
	    "\"expect\":{\"kernel\":[3,3,16,3]}}]}", NULL, &p, &s, &err);
	CHECK(rc == WB_E_MAPPING);
	CHECK(CONTAINS(problems_text(p), "layers[0].flatten"));
	CHECK(CONTAINS(problems_text(p), "(3, 3, 16, 3)"));
	plan_free(p);
	spec_free(s);

	/* A Dense on a 4-D tensor names the tensor and its shape. */
	wb_err_clear(&err);
	cnn_index();
	rc = plan_text("{\"weightbridge_spec\":1,\"unmapped\":\"ignore\","
	    "\"layers\":[{\"name\":\"d\",\"type\":\"Dense\",\"from\":"
	    "\"features.0\"}]}", NULL, &p, &s, &err);
	CHECK(rc == WB_E_MAPPING);
	CHECK(CONTAINS(problems_text(p), "'features.0.weight' has shape "
	    "(16, 3, 3, 3)"));
	plan_free(p);
	spec_free(s);
}

static void
test_match_auto(void)
{
	struct plan *p;
	struct spec *s;
	struct wb_err err = { 0 };
	int rc;

	cnn_index();
	rc = plan_text("{\"weightbridge_spec\":1,\"layers\":["
	    "{\"match\":\"^features\\\\.([0-9]+)$\",\"name\":\"f$1\","
	    "\"type\":\"auto\"},"
	    "{\"name\":\"fc\",\"type\":\"Dense\",\"from\":\"classifier\","
	    "\"flatten\":{\"chw\":[32,7,7]}}]}", NULL, &p, &s, &err);
	if (rc != 0)
		fprintf(stderr, "%s\n", problems_text(p));
	CHECK(rc == 0);
	CHECK(p->nlayers == 4);
	CHECK_STR(p->l[0].name, "f0");
	CHECK_STR(p->l[0].type, "Conv2D");
	CHECK_STR(p->l[1].type, "BatchNormalization");
	CHECK_STR(p->l[2].name, "f4");
	CHECK(p->l[2].inferred);
	plan_free(p);
	spec_free(s);

	/* A regex that matches nothing is a problem, not a silent no-op. */
	wb_err_clear(&err);
	cnn_index();
	rc = plan_text("{\"weightbridge_spec\":1,\"unmapped\":\"ignore\","
	    "\"layers\":[{\"match\":\"^nothing$\",\"name\":\"n\","
	    "\"type\":\"Conv2D\"}]}", NULL, &p, &s, &err);
	CHECK(rc == WB_E_MAPPING);
	CHECK(CONTAINS(problems_text(p), "matches no module prefix"));
	plan_free(p);
	spec_free(s);
}

static void
test_spec_errors(void)
{
	struct plan *p;
	struct spec *s;
	struct wb_err err = { 0 };

	cnn_index();
	CHECK(plan_text("{\"weightbridge_spec\":1,\"layers\":[{\"name\":"
	    "\"a\",\"type\":\"Conv2D\",\"match\":\"([\"}]}", NULL, &p, &s,
	    &err) == WB_E_SPEC);
	CHECK(CONTAINS(err.msg, "layers[0].match"));
	CHECK(CONTAINS(err.msg, "bad regular expression"));

	/* Patterns that would blow up regcomp or backtrack without bound. */
	wb_err_clear(&err);
	CHECK(plan_text("{\"weightbridge_spec\":1,\"layers\":[{\"name\":"
	    "\"a\",\"type\":\"Conv2D\",\"match\":\"^l++++++++++++++++++++++x$\"}]}",
	    NULL, &p, &s, &err) == WB_E_SPEC);
	CHECK(CONTAINS(err.msg, "too complex"));
	wb_err_clear(&err);
	CHECK(plan_text("{\"weightbridge_spec\":1,\"layers\":[{\"name\":"
	    "\"a\",\"type\":\"Conv2D\",\"match\":\"(a*)*\\\\1b\"}]}", NULL,
	    &p, &s, &err) == WB_E_SPEC);
	CHECK(CONTAINS(err.msg, "back-references"));
	wb_err_clear(&err);
	CHECK(plan_text("{\"weightbridge_spec\":1,\"layers\":[{\"name\":"
	    "\"a\",\"type\":\"Conv2D\",\"match\":\"(((((a{99}){99}){99}){99}){99})\"}]}",
	    NULL, &p, &s, &err) == WB_E_SPEC);
	CHECK(CONTAINS(err.msg, "too complex"));

	wb_err_clear(&err);
	CHECK(plan_text("{\"weightbridge_spec\":1,\"layrs\":[]}", NULL, &p,
	    &s, &err) == WB_E_SPEC);
	CHECK(CONTAINS(err.msg, "layrs"));

	wb_err_clear(&err);
	CHECK(plan_text("{\"weightbridge_spec\":2,\"layers\":[{}]}", NULL, &p,
	    &s, &err) == WB_E_SPEC);
	CHECK(CONTAINS(err.msg, "weightbridge_spec"));

	wb_err_clear(&err);
	CHECK(plan_text("{\"weightbridge_spec\":1,", NULL, &p, &s, &err) ==
	    WB_E_SPEC);
	CHECK(CONTAINS(err.msg, "line 1"));

	wb_err_clear(&err);
	CHECK(plan_text("{\"weightbridge_spec\":1,\"target\":{\"format\":"
	    "\"onnx\"},\"layers\":[{\"name\":\"a\",\"type\":\"Dense\","
	    "\"from\":\"x\"}]}", NULL, &p, &s, &err) == WB_E_SPEC);
	CHECK(CONTAINS(err.msg, "target.format"));
}

static void
test_custom(void)
{
	struct plan *p;
	struct spec *s;
	struct wb_err err = { 0 };
	int rc;

	cnn_index();
	rc = plan_text("{\"weightbridge_spec\":1,\"unmapped\":\"ignore\","
	    "\"layers\":[{\"name\":\"head\",\"type\":\"Custom\",\"weights\":["
	    "{\"name\":\"kernel\",\"from\":\"classifier.weight\","
	    "\"transform\":{\"transpose\":[1,0]}},"
	    "{\"name\":\"bias\",\"from\":\"classifier.bias\"},"
	    "{\"name\":\"both\",\"from\":[\"features.1.running_mean\","
	    "\"features.1.running_var\"],\"combine\":\"stack\","
	    "\"expect\":[2,16]}]}]}", NULL, &p, &s, &err);
	if (rc != 0)
		fprintf(stderr, "%s\n", problems_text(p));
	CHECK(rc == 0);
	CHECK(p->l[0].nw == 3);
	CHECK(p->l[0].w[0].out.d[0] == 1568);
	CHECK(p->l[0].w[2].out.d[0] == 2 && p->l[0].w[2].out.d[1] == 16);
	plan_free(p);
	spec_free(s);

	wb_err_clear(&err);
	cnn_index();
	rc = plan_text("{\"weightbridge_spec\":1,\"unmapped\":\"ignore\","
	    "\"layers\":[{\"name\":\"head\",\"type\":\"Custom\",\"weights\":["
	    "{\"name\":\"kernel\",\"from\":\"classifier.weight\","
	    "\"transform\":{\"transpose\":[0,0]}}]}]}", NULL, &p, &s, &err);
	CHECK(rc == WB_E_MAPPING);
	CHECK(CONTAINS(problems_text(p), "permutation"));
	plan_free(p);
	spec_free(s);
}

int
main(void)
{
	test_cnn_ok();
	test_problems();
	test_match_auto();
	test_spec_errors();
	test_custom();
	return t_done("test_plan");
}
