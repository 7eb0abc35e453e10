/*
 * preset: the layer table (see preset.h and docs/spec.md).
 *
 * Each row states facts from MAPPING.md: PyTorch parameter names, the Keras
 * variable order (trainable before non-trainable, creation order), and the
 * transform.  The checks compute what shape the Keras layer will demand of
 * each variable from the layer's other tensors and options, so that a
 * mismatch is caught here and named, instead of by Keras at load time or,
 * worse, not at all.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "plan.h"
#include "preset.h"

static const char preset_eps_advice[] =
    "PyTorch normalisation layers default to eps=1e-5 while Keras defaults "
    "to epsilon=1e-3: build the Keras layer with epsilon=1e-5 (or the eps "
    "your model used), or outputs will differ";

static struct plan_weight *
preset_weight(struct plan_layer *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->nw; i++)
		if (strcmp(l->w[i].name, name) == 0)
			return &l->w[i];
	return NULL;
}

static void
preset_expect(struct plan_weight *w, int ndim, const uint64_t *d)
{
	if (w == NULL)
		return;
	w->has_expect = 1;
	w->expect.ndim = ndim;
	memcpy(w->expect.d, d, (size_t)ndim * sizeof(d[0]));
}

static long long
preset_int(const json_t *entry, const char *key, long long def)
{
	const json_t *v = json_object_get(entry, key);

	return json_is_integer(v) ? json_integer_value(v) : def;
}

/* The source weight must have the rank the layer needs. */
static int
preset_rank(struct plan *p, struct plan_layer *l, struct plan_weight *w,
    int ndim, const char *what)
{
	char s[128];

	if (w == NULL || w->in[0].ndim == ndim)
		return 0;
	plan_problem(p, WB_E_MAPPING, l->name, w->name,
	    p->ix->e[w->src[0]].key, "%s '%s': tensor '%s' has shape %s; %s",
	    l->type, l->name, p->ix->e[w->src[0]].key,
	    xf_shape_str(&w->in[0], s, sizeof(s)), what);
	w->bad = 1;
	return -1;
}

static void
preset_check_dense(struct plan *p, struct plan_layer *l, const json_t *e)
{
	struct plan_weight *k = preset_weight(l, "kernel");
	struct plan_weight *b = preset_weight(l, "bias");
	uint64_t d[2];

	if (k == NULL || preset_rank(p, l, k, 2,
	    "a Linear weight is 2-D (out_features, in_features)"))
		return;
	d[0] = k->in[0].d[1];
	d[1] = k->in[0].d[0];
	preset_expect(k, 2, d);
	preset_expect(b, 1, &d[1]);
}

static void
preset_check_conv(struct plan *p, struct plan_layer *l, const json_t *e)
{
	const struct preset *pr = preset_find(l->type);
	struct plan_weight *k = preset_weight(l, "kernel");
	struct plan_weight *b = preset_weight(l, "bias");
	uint64_t d[XF_MAX_DIMS], o;
	long long g = preset_int(e, "groups", 1);
	long long in = preset_int(e, "in_channels", 0);
	char what[96];
	int n, i;

	snprintf(what, sizeof(what), "a %s weight is %d-D (out, in/groups, "
	    "kernel...)", l->type, pr->kernel_ndim);
	if (k == NULL || preset_rank(p, l, k, pr->kernel_ndim, what))
		return;
	n = k->in[0].ndim;
	o = k->in[0].d[0];
	if (g < 1 || o % (uint64_t)g != 0) {
		plan_problem(p, WB_E_MAPPING, l->name, "kernel", NULL,
		    "%s '%s': groups=%lld does not divide the %llu output "
		    "channels", l->type, l->name, g, (unsigned long long)o);
		k->bad = 1;
	}
	if (in > 0 && (uint64_t)in != k->in[0].d[1] * (uint64_t)g) {
		plan_problem(p, WB_E_MAPPING, l->name, "kernel",
		    p->ix->e[k->src[0]].key, "%s '%s': in_channels=%lld but "
		    "the kernel has %llu input channels per group x %lld "
		    "groups", l->type, l->name, in,
		    (unsigned long long)k->in[0].d[1], g);
		k->bad = 1;
	}
	for (i = 2; i < n; i++)
		d[i - 2] = k->in[0].d[i];
	d[n - 2] = k->in[0].d[1];
	d[n - 1] = o;
	preset_expect(k, n, d);
	preset_expect(b, 1, &o);
}

static void
preset_check_depthwise(struct plan *p, struct plan_layer *l, const json_t *e)
{
	struct plan_weight *k = preset_weight(l, "kernel");
	struct plan_weight *b = preset_weight(l, "bias");
	long long m = preset_int(e, "depth_multiplier", 1);
	uint64_t d[4], cm;

	if (k == NULL || preset_rank(p, l, k, 4,
	    "a depthwise Conv2d weight is 4-D (channels*multiplier, 1, kh, kw)"))
		return;
	cm = k->in[0].d[0];
	if (k->in[0].d[1] != 1) {
		plan_problem(p, WB_E_MAPPING, l->name, "kernel",
		    p->ix->e[k->src[0]].key, "DepthwiseConv2D '%s': tensor "
		    "'%s' has %llu input channels per group; a depthwise "
		    "convolution (groups = in_channels) has 1", l->name,
		    p->ix->e[k->src[0]].key, (unsigned long long)k->in[0].d[1]);
		k->bad = 1;
		return;
	}
	if (m < 1 || cm % (uint64_t)m != 0) {
		plan_problem(p, WB_E_MAPPING, l->name, "kernel", NULL,
		    "DepthwiseConv2D '%s': depth_multiplier=%lld does not "
		    "divide the %llu output channels", l->name, m,
		    (unsigned long long)cm);
		k->bad = 1;
		return;
	}
	d[0] = k->in[0].d[2];
	d[1] = k->in[0].d[3];
	d[2] = cm / (uint64_t)m;
	d[3] = (uint64_t)m;
	preset_expect(k, 4, d);
	preset_expect(b, 1, &cm);
}

/* All vectors of the layer have one length: the channel count. */
static void
preset_check_vectors(struct plan *p, struct plan_layer *l, const json_t *e)
{
	uint64_t c = 0;
	size_t i;
	char s[128];

	for (i = 0; i < l->nw; i++) {
		struct plan_weight *w = &l->w[i];

		if (w->in[0].ndim != 1) {
			plan_problem(p, WB_E_MAPPING, l->name, w->name,
			    p->ix->e[w->src[0]].key, "%s '%s': tensor '%s' has "
			    "shape %s; expected a vector (channels,)", l->type,
			    l->name, p->ix->e[w->src[0]].key,
			    xf_shape_str(&w->in[0], s, sizeof(s)));
			w->bad = 1;
			continue;
		}
		if (c == 0)
			c = w->in[0].d[0];
	}
	for (i = 0; i < l->nw; i++)
		if (!l->w[i].bad)
			preset_expect(&l->w[i], 1, &c);
}

static void
preset_check_embedding(struct plan *p, struct plan_layer *l, const json_t *e)
{
	preset_rank(p, l, preset_weight(l, "embeddings"), 2,
	    "an Embedding weight is 2-D (num_embeddings, embedding_dim)");
}

static const struct preset preset_table[] = {
	{ "Dense", "dense", 2, {
	    { "kernel", NULL, "weight", 0, PR_DENSE },
	    { "bias", NULL, "bias", 1, PR_COPY } },
	    { "flatten" }, preset_check_dense, NULL },
	{ "Conv1D", "conv1d", 3, {
	    { "kernel", NULL, "weight", 0, PR_CONV },
	    { "bias", NULL, "bias", 1, PR_COPY } },
	    { "groups", "in_channels" }, preset_check_conv, NULL },
	{ "Conv2D", "conv2d", 4, {
	    { "kernel", NULL, "weight", 0, PR_CONV },
	    { "bias", NULL, "bias", 1, PR_COPY } },
	    { "groups", "in_channels" }, preset_check_conv, NULL },
	{ "Conv3D", "conv3d", 5, {
	    { "kernel", NULL, "weight", 0, PR_CONV },
	    { "bias", NULL, "bias", 1, PR_COPY } },
	    { "groups", "in_channels" }, preset_check_conv, NULL },
	{ "DepthwiseConv2D", "depthwise_conv2d", 4, {
	    { "kernel", "depthwise_kernel", "weight", 0, PR_DEPTHWISE },
	    { "bias", NULL, "bias", 1, PR_COPY } },
	    { "depth_multiplier" }, preset_check_depthwise, NULL },
	{ "BatchNormalization", "batch_normalization", 0, {
	    { "gamma", NULL, "weight", 1, PR_COPY },
	    { "beta", NULL, "bias", 1, PR_COPY },
	    { "moving_mean", NULL, "running_mean", 0, PR_COPY },
	    { "moving_variance", NULL, "running_var", 0, PR_COPY } },
	    { "epsilon" }, preset_check_vectors, preset_eps_advice },
	{ "LayerNormalization", "layer_normalization", 0, {
	    { "gamma", NULL, "weight", 1, PR_COPY },
	    { "beta", NULL, "bias", 1, PR_COPY } },
	    { "epsilon" }, preset_check_vectors, preset_eps_advice },
	{ "Embedding", "embedding", 0, {
	    { "embeddings", NULL, "weight", 0, PR_COPY } },
	    { NULL }, preset_check_embedding, NULL },
};

#define PRESET_COUNT (sizeof(preset_table) / sizeof(preset_table[0]))

const struct preset *
preset_find(const char *type)
{
	size_t i;

	if (type == NULL)
		return NULL;
	for (i = 0; i < PRESET_COUNT; i++)
		if (strcmp(preset_table[i].type, type) == 0)
			return &preset_table[i];
	return NULL;
}

const char *
preset_list(void)
{
	static char buf[512];
	static int done;
	size_t i, off = 0;

	/* Built once from a constant table; the race is benign. */
	if (!done) {
		for (i = 0; i < PRESET_COUNT && off < sizeof(buf); i++)
			off += (size_t)snprintf(buf + off, sizeof(buf) - off,
			    "%s, ", preset_table[i].type);
		if (off < sizeof(buf))
			snprintf(buf + off, sizeof(buf) - off, "Custom");
		done = 1;
	}
	return buf;
}

int
preset_takes(const struct preset *pr, const char *key)
{
	static const char *const common[] = { "name", "type", "from", "match",
	    "note", "expect", "keras3_path", NULL };
	size_t i;

	if (key[0] == '_')
		return 1;
	for (i = 0; common[i] != NULL; i++)
		if (strcmp(common[i], key) == 0)
			return 1;
	for (i = 0; i < 6 && pr->options[i] != NULL; i++)
		if (strcmp(pr->options[i], key) == 0)
			return 1;
	return 0;
}

/* Dense after a flattened channels-first map: the row permutation. */
static int
preset_flatten(const json_t *fl, const struct xf_shape *src,
    struct xf_recipe *r, struct wb_err *err)
{
	static const char *const kinds[] = { "cl", "chw", "cdhw" };
	const json_t *dims = NULL;
	int64_t shape[XF_MAX_DIMS], perm[XF_MAX_DIMS];
	uint64_t prod = 1;
	int k, n = 0, i;

	if (!json_is_object(fl) || json_object_size(fl) != 1)
		return wb_err_set(err, WB_E_SPEC, "\"flatten\" must be an object "
		    "with one of \"cl\": [C, L], \"chw\": [C, H, W], \"cdhw\": "
		    "[C, D, H, W]");
	for (k = 0; k < 3; k++)
		if ((dims = json_object_get(fl, kinds[k])) != NULL)
			break;
	if (dims == NULL || !json_is_array(dims) ||
	    json_array_size(dims) != (size_t)k + 2)
		return wb_err_set(err, WB_E_SPEC, "\"flatten\" must be one of "
		    "\"cl\": [C, L], \"chw\": [C, H, W], \"cdhw\": [C, D, H, W]");
	n = k + 2;
	if (src->ndim != 2)
		return wb_err_set(err, WB_E_MAPPING, "flatten needs a 2-D "
		    "Linear weight");
	shape[0] = (int64_t)src->d[0];
	for (i = 0; i < n; i++) {
		json_t *v = json_array_get(dims, (size_t)i);

		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > (1 << 30))
			return wb_err_set(err, WB_E_SPEC, "flatten dimensions "
			    "must be positive integers");
		shape[i + 1] = json_integer_value(v);
		prod *= (uint64_t)shape[i + 1];
	}
	if (prod != src->d[1])
		return wb_err_set(err, WB_E_MAPPING, "flatten \"%s\" gives "
		    "%llu features but the Linear weight has %llu inputs",
		    kinds[k], (unsigned long long)prod,
		    (unsigned long long)src->d[1]);
	/* (O, C, s1..sk) -> (s1..sk, C, O) -> (s1*..*sk*C, O) */
	for (i = 0; i < n - 1; i++)
		perm[i] = i + 2;
	perm[n - 1] = 1;
	perm[n] = 0;
	if (xf_push_reshape(r, n + 1, shape, err) ||
	    xf_push_transpose(r, n + 1, perm, err))
		return err->code;
	shape[0] = (int64_t)src->d[1];
	shape[1] = (int64_t)src->d[0];
	return xf_push_reshape(r, 2, shape, err);
}

int
preset_recipe(const struct preset *pr, const struct preset_param *pp,
    const json_t *entry, const struct xf_shape *src, struct xf_recipe *r,
    struct wb_err *err)
{
	int64_t perm[XF_MAX_DIMS], shape[XF_MAX_DIMS];
	const json_t *fl;
	long long m;
	int n = src->ndim, i;

	memset(r, 0, sizeof(*r));
	switch (pp->recipe) {
	case PR_COPY:
		return 0;
	case PR_DENSE:
		if ((fl = json_object_get(entry, "flatten")) != NULL)
			return preset_flatten(fl, src, r, err);
		if (n != 2)
			return 0;	/* the rank check names the tensor */
		perm[0] = 1;
		perm[1] = 0;
		return xf_push_transpose(r, 2, perm, err);
	case PR_CONV:
		if (n != pr->kernel_ndim)
			return 0;
		for (i = 2; i < n; i++)
			perm[i - 2] = i;
		perm[n - 2] = 1;
		perm[n - 1] = 0;
		return xf_push_transpose(r, n, perm, err);
	case PR_DEPTHWISE:
		m = preset_int(entry, "depth_multiplier", 1);
		if (n < 3 || m < 1 || src->d[1] != 1 ||
		    src->d[0] % (uint64_t)m != 0)
			return 0;	/* the layer check explains */
		/* PyTorch output channel c*M + m comes from input c: C-major. */
		shape[0] = (int64_t)(src->d[0] / (uint64_t)m);
		shape[1] = m;
		for (i = 2; i < n; i++)
			shape[i] = (int64_t)src->d[i];
		for (i = 2; i < n; i++)
			perm[i - 2] = i;
		perm[n - 2] = 0;
		perm[n - 1] = 1;
		if (xf_push_reshape(r, n, shape, err))
			return err->code;
		return xf_push_transpose(r, n, perm, err);
	}
	return wb_err_set(err, WB_E_INTERNAL, "unknown recipe");
}

static int
preset_has(const char **params, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(params[i], name) == 0)
			return (int)i;
	return -1;
}

static int
preset_looks_embedding(const char *prefix)
{
	char low[256];
	size_t i;

	for (i = 0; prefix[i] != '\0' && i < sizeof(low) - 1; i++)
		low[i] = (char)tolower((unsigned char)prefix[i]);
	low[i] = '\0';
	return strstr(low, "emb") != NULL || strstr(low, "wte") != NULL ||
	    strstr(low, "wpe") != NULL || strstr(low, "tok") != NULL;
}

const struct preset *
preset_infer(const char *prefix, const char **params,
    const struct xf_shape *shapes, size_t n, int first_conv, int *certain,
    char *why, size_t whylen)
{
	const struct preset *pr = NULL;
	int w = preset_has(params, n, "weight");
	int b = preset_has(params, n, "bias");
	size_t i, j;

	*certain = 1;
	why[0] = '\0';
	if (preset_has(params, n, "running_mean") >= 0 &&
	    preset_has(params, n, "running_var") >= 0) {
		pr = preset_find("BatchNormalization");
	} else if (w >= 0) {
		const struct xf_shape *s = &shapes[w];

		switch (s->ndim) {
		case 5:
			pr = preset_find("Conv3D");
			break;
		case 4:
			if (s->d[1] == 1 && s->d[0] > 1 && !first_conv) {
				pr = preset_find("DepthwiseConv2D");
				*certain = 0;
				snprintf(why, whylen, "one input channel per "
				    "group: taken as a depthwise convolution "
				    "(groups = channels); use Conv2D if it is "
				    "a convolution of a 1-channel input");
			} else {
				pr = preset_find("Conv2D");
				if (s->d[1] == 1 && s->d[0] > 1) {
					*certain = 0;
					snprintf(why, whylen, "first convolution "
					    "with one input channel: taken as "
					    "Conv2D on a 1-channel input; use "
					    "DepthwiseConv2D if groups = "
					    "channels");
				}
			}
			break;
		case 3:
			pr = preset_find("Conv1D");
			break;
		case 2:
			if (b >= 0) {
				pr = preset_find("Dense");
			} else if (preset_looks_embedding(prefix)) {
				pr = preset_find("Embedding");
				*certain = 0;
				snprintf(why, whylen, "2-D weight without bias "
				    "in a module named like an embedding");
			} else {
				pr = preset_find("Dense");
				*certain = 0;
				snprintf(why, whylen, "2-D weight without bias: "
				    "a Linear(bias=False), or an Embedding");
			}
			break;
		case 1:
			pr = preset_find("LayerNormalization");
			*certain = 0;
			snprintf(why, whylen, "per-channel weight and bias "
			    "without running statistics: taken as LayerNorm");
			break;
		}
	}
	if (pr == NULL) {
		snprintf(why, whylen, "no layer type fits parameters of "
		    "module '%s'", prefix);
		return NULL;
	}
	/* Every parameter must be one the preset reads. */
	for (i = 0; i < n; i++) {
		for (j = 0; j < PRESET_MAX_PARAMS && pr->params[j].keras; j++)
			if (strcmp(pr->params[j].param, params[i]) == 0)
				break;
		if (j == PRESET_MAX_PARAMS || pr->params[j].keras == NULL) {
			snprintf(why, whylen, "module '%s' has parameter '%s' "
			    "that %s does not take", prefix, params[i],
			    pr->type);
			return NULL;
		}
	}
	return pr;
}
