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

	if (w == NULL || w->base->ndim == ndim)
		return 0;
	plan_problem(p, WB_E_MAPPING, l->name, w->name,
	    p->ix->e[w->src[0]].key, "%s '%s': tensor '%s' has shape %s; %s",
	    l->type, l->name, p->ix->e[w->src[0]].key,
	    xf_shape_str(w->base, s, sizeof(s)), what);
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
	d[0] = k->base->d[1];
	d[1] = k->base->d[0];
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
	n = k->base->ndim;
	o = k->base->d[0];
	if (g < 1 || o % (uint64_t)g != 0) {
		plan_problem(p, WB_E_MAPPING, l->name, "kernel", NULL,
		    "%s '%s': groups=%lld does not divide the %llu output "
		    "channels", l->type, l->name, g, (unsigned long long)o);
		k->bad = 1;
	}
	if (in > 0 && (uint64_t)in != k->base->d[1] * (uint64_t)g) {
		plan_problem(p, WB_E_MAPPING, l->name, "kernel",
		    p->ix->e[k->src[0]].key, "%s '%s': in_channels=%lld but "
		    "the kernel has %llu input channels per group x %lld "
		    "groups", l->type, l->name, in,
		    (unsigned long long)k->base->d[1], g);
		k->bad = 1;
	}
	for (i = 2; i < n; i++)
		d[i - 2] = k->base->d[i];
	d[n - 2] = k->base->d[1];
	d[n - 1] = o;
	preset_expect(k, n, d);
	preset_expect(b, 1, &o);
}

static void
preset_check_depthwise(struct plan *p, struct plan_layer *l, const json_t *e)
{
	const struct preset *pr = preset_find(l->type);
	struct plan_weight *k = preset_weight(l, "kernel");
	struct plan_weight *b = preset_weight(l, "bias");
	long long m = preset_int(e, "depth_multiplier", 1);
	uint64_t d[XF_MAX_DIMS], cm;
	char what[96];
	int n, i;

	snprintf(what, sizeof(what), "a depthwise Conv%dd weight is %d-D "
	    "(channels*multiplier, 1, kernel...)", pr->kernel_ndim - 2,
	    pr->kernel_ndim);
	if (k == NULL || preset_rank(p, l, k, pr->kernel_ndim, what))
		return;
	n = k->base->ndim;
	cm = k->base->d[0];
	if (k->base->d[1] != 1) {
		plan_problem(p, WB_E_MAPPING, l->name, "kernel",
		    p->ix->e[k->src[0]].key, "%s '%s': tensor '%s' has %llu "
		    "input channels per group; a depthwise convolution (groups "
		    "= in_channels) has 1", l->type, l->name,
		    p->ix->e[k->src[0]].key, (unsigned long long)k->base->d[1]);
		k->bad = 1;
		return;
	}
	if (m < 1 || cm % (uint64_t)m != 0) {
		plan_problem(p, WB_E_MAPPING, l->name, "kernel", NULL,
		    "%s '%s': depth_multiplier=%lld does not divide the %llu "
		    "output channels", l->type, l->name, m,
		    (unsigned long long)cm);
		k->bad = 1;
		return;
	}
	for (i = 2; i < n; i++)
		d[i - 2] = k->base->d[i];
	d[n - 2] = cm / (uint64_t)m;
	d[n - 1] = (uint64_t)m;
	preset_expect(k, n, d);
	preset_expect(b, 1, &cm);
}

/* Transposed convs: PyTorch (I, O/g, k..) -> Keras (k.., O, I). */
static void
preset_check_convt(struct plan *p, struct plan_layer *l, const json_t *e)
{
	const struct preset *pr = preset_find(l->type);
	struct plan_weight *k = preset_weight(l, "kernel");
	struct plan_weight *b = preset_weight(l, "bias");
	long long g = preset_int(e, "groups", 1);
	long long pad = preset_int(e, "padding", -1);
	long long opad = preset_int(e, "output_padding", 0);
	uint64_t d[XF_MAX_DIMS], o, in;
	char what[96];
	int n, i;

	snprintf(what, sizeof(what), "a ConvTranspose%dd weight is %d-D (in, "
	    "out/groups, kernel...)", pr->kernel_ndim - 2, pr->kernel_ndim);
	if (k == NULL || preset_rank(p, l, k, pr->kernel_ndim, what))
		return;
	n = k->base->ndim;
	in = k->base->d[0];
	if (g < 1 || in % (uint64_t)g != 0) {
		plan_problem(p, WB_E_MAPPING, l->name, "kernel", NULL, "%s '%s': "
		    "groups=%lld does not divide the %llu input channels",
		    l->type, l->name, g, (unsigned long long)in);
		k->bad = 1;
		return;
	}
	o = k->base->d[1] * (uint64_t)g;
	for (i = 2; i < n; i++)
		d[i - 2] = k->base->d[i];
	d[n - 2] = o;
	d[n - 1] = in;
	preset_expect(k, n, d);
	preset_expect(b, 1, &o);
	/* PyTorch's padding crops the output; Keras has no such option. */
	if (pad < 0 && opad > 0)
		pad = 0;
	if (pad < 0)
		plan_warning(p, l->name, "%s '%s': if the PyTorch layer used "
		    "padding or output_padding, build Keras %s with "
		    "padding='valid' plus Cropping (give \"padding\" and "
		    "\"output_padding\" in the spec for the exact crop)",
		    l->type, l->name, l->type);
	else if ((pad > 0 || opad > 0) && opad <= pad)
		plan_warning(p, l->name, "%s '%s': PyTorch padding=%lld, "
		    "output_padding=%lld crop the output; build Keras %s(%llu, "
		    "..., padding='valid') followed by Cropping%dD with (%lld, "
		    "%lld) per spatial axis (padding='same' is only equal when "
		    "kernel - stride = 2*padding and output_padding = 0)",
		    l->type, l->name, pad, opad, l->type, (unsigned long long)o,
		    pr->kernel_ndim - 2, pad, pad - opad);
	else if (opad > pad)
		plan_warning(p, l->name, "%s '%s': PyTorch output_padding=%lld "
		    "exceeds padding=%lld, so the last %lld rows/columns hold "
		    "only the bias: build Keras %s(%llu, ..., padding='valid', "
		    "use_bias=False), then Cropping%dD((%lld, 0)), "
		    "ZeroPadding%dD((0, %lld)) per spatial axis, then add the "
		    "bias", l->type, l->name, opad, pad, opad - pad, l->type,
		    (unsigned long long)o, pr->kernel_ndim - 2, pad,
		    pr->kernel_ndim - 2, opad - pad);
	if (g > 1)
		plan_warning(p, l->name, "%s '%s': Keras transposed convolutions "
		    "have no groups; the %lld groups are written as one "
		    "block-diagonal kernel", l->type, l->name, g);
}

/* All vectors of the layer have one length: the channel count. */
static void
preset_check_vectors(struct plan *p, struct plan_layer *l, const json_t *e)
{
	long long g = preset_int(e, "groups", 0);
	uint64_t c = 0;
	size_t i;
	char s[128];

	for (i = 0; i < l->nw; i++) {
		struct plan_weight *w = &l->w[i];

		if (w->base->ndim != 1) {
			plan_problem(p, WB_E_MAPPING, l->name, w->name,
			    p->ix->e[w->src[0]].key, "%s '%s': tensor '%s' has "
			    "shape %s; expected a vector (channels,)", l->type,
			    l->name, p->ix->e[w->src[0]].key,
			    xf_shape_str(w->base, s, sizeof(s)));
			w->bad = 1;
			continue;
		}
		if (c == 0)
			c = w->base->d[0];
	}
	if (g > 0 && c > 0 && c % (uint64_t)g != 0)
		plan_problem(p, WB_E_MAPPING, l->name, NULL, NULL, "%s '%s': "
		    "groups=%lld does not divide the %llu channels", l->type,
		    l->name, g, (unsigned long long)c);
	for (i = 0; i < l->nw; i++)
		if (!l->w[i].bad)
			preset_expect(&l->w[i], 1, &c);
}

/* LayerNorm over one or several trailing axes. */
static void
preset_check_layernorm(struct plan *p, struct plan_layer *l, const json_t *e)
{
	const json_t *cf = json_object_get(e, "channels_first");
	struct xf_shape want;
	size_t i;
	int k;

	if (l->nw == 0 || l->w[0].base->ndim <= 1) {
		preset_check_vectors(p, l, e);
		return;
	}
	want = *l->w[0].base;
	if (json_is_true(cf)) {
		for (k = 0; k + 1 < want.ndim; k++)
			want.d[k] = l->w[0].base->d[k + 1];
		want.d[want.ndim - 1] = l->w[0].base->d[0];
	}
	for (i = 0; i < l->nw; i++)
		preset_expect(&l->w[i], want.ndim, want.d);
}

static void
preset_check_prelu(struct plan *p, struct plan_layer *l, const json_t *e)
{
	struct plan_weight *a = preset_weight(l, "alpha");
	long long r = preset_int(e, "input_rank", 0);
	uint64_t d[4] = { 1, 1, 1, 1 };

	if (a == NULL || preset_rank(p, l, a, 1, "a PReLU weight is 1-D "
	    "(num_parameters,)"))
		return;
	if (r < 2 || r > 5)
		return;		/* the recipe reports it */
	d[r - 2] = a->base->d[0];
	preset_expect(a, (int)r - 1, d);
	plan_warning(p, l->name, "PReLU '%s': build Keras PReLU(shared_axes=%s)",
	    l->name, r == 2 ? (a->base->d[0] == 1 ? "[1]" : "None") :
	    r == 3 ? (a->base->d[0] == 1 ? "[1, 2]" : "[1]") :
	    r == 4 ? (a->base->d[0] == 1 ? "[1, 2, 3]" : "[1, 2]") :
	    (a->base->d[0] == 1 ? "[1, 2, 3, 4]" : "[1, 2, 3]"));
}

/*
 * Recurrent layers.  PyTorch keeps one module per stack with per-layer
 * keys weight_ih_l{K}[_reverse]; Keras has one layer per K, its weights on
 * the cell.  LSTM gates are i,f,g,o in both; GRU gates are r,z,n in
 * PyTorch and z,r,h in Keras, and only reset_after=True computes PyTorch's
 * GRU.  Keras has one bias (LSTM, SimpleRNN: b_ih + b_hh) or, for GRU, the
 * (2, 3H) stack [b_ih; b_hh].
 */
static int
preset_rnn_gates(const char *type)
{
	return strcmp(type, "LSTM") == 0 ? 4 : strcmp(type, "GRU") == 0 ? 3 : 1;
}

static void
preset_gru_reorder(struct xf_recipe *r, int axis)
{
	struct xf_op op;

	memset(&op, 0, sizeof(op));
	op.kind = XF_REORDER;
	op.axis = axis;
	op.n = 3;
	op.a[0] = 1;	/* z */
	op.a[1] = 0;	/* r */
	op.a[2] = 2;	/* n (h) */
	xf_push(r, &op, NULL);
}

static void
preset_build_rnn(struct plan_ctx *c, struct plan_layer *l, const json_t *e)
{
	struct plan *p = plan_ctx_plan(c);
	const json_t *bj = json_object_get(e, "bidirectional");
	const json_t *ra = json_object_get(e, "reset_after");
	int gates = preset_rnn_gates(l->type), gru = gates == 3, dirs, d;
	long long k = preset_int(e, "layer", 0);
	const char *f = l->from, *dot = *l->from ? "." : "";
	char key[4][1100], probe[1100];
	int64_t t[2] = { 1, 0 };

	if (gru && ra != NULL && !json_is_true(ra)) {
		plan_problem(p, WB_E_MAPPING, l->name, NULL, NULL, "GRU '%s': "
		    "reset_after=false cannot reproduce PyTorch's GRU, which "
		    "applies the reset gate after the recurrent matmul (n = "
		    "tanh(W_in x + b_in + r * (W_hn h + b_hn))); build Keras "
		    "GRU(reset_after=True)", l->name);
		return;
	}
	snprintf(probe, sizeof(probe), "%s%sweight_hr_l%lld", f, dot, k);
	if (plan_ctx_key(c, probe) >= 0) {
		plan_problem(p, WB_E_MAPPING, l->name, NULL, probe, "LSTM '%s': "
		    "the PyTorch LSTM uses proj_size ('%s' is present); Keras's "
		    "LSTM has no output projection, so it needs a custom RNN "
		    "cell (h = (o * tanh(c)) W_hr^T); refusing rather than "
		    "dropping the projection", l->name, probe);
		return;
	}
	snprintf(probe, sizeof(probe), "%s%sweight_ih_l%lld_reverse", f, dot, k);
	dirs = bj != NULL ? (json_is_true(bj) ? 2 : 1) :
	    (plan_ctx_key(c, probe) >= 0 ? 2 : 1);
	if (dirs == 2)
		l->snake = "bidirectional";
	for (d = 0; d < dirs; d++) {
		const char *sfx = d ? "_reverse" : "";
		const char *sub = dirs == 1 ? "cell" : d ? "backward_layer/cell" :
		    "forward_layer/cell";
		static const char *const what[4] = { "weight_ih", "weight_hh",
		    "bias_ih", "bias_hh" };
		long src[4];
		struct plan_weight *w;
		int i;

		for (i = 0; i < 4; i++) {
			snprintf(key[i], sizeof(key[i]), "%s%s%s_l%lld%s", f, dot,
			    what[i], k, sfx);
			src[i] = plan_ctx_key(c, key[i]);
		}
		for (i = 0; i < 2; i++) {
			if (src[i] < 0) {
				plan_ctx_missing(c, l, i ? "recurrent_kernel" :
				    "kernel", key[i]);
				continue;
			}
			w = plan_ctx_weight(c, l, i ? "recurrent_kernel" :
			    "kernel", sub, &src[i], 1);
			if (w == NULL)
				return;
			if (gru)
				preset_gru_reorder(&w->recipe, 0);
			xf_push_transpose(&w->recipe, 2, t, NULL);
		}
		if ((src[2] < 0) != (src[3] < 0)) {
			plan_problem(p, WB_E_MAPPING, l->name, "bias",
			    key[src[2] < 0 ? 2 : 3], "%s '%s': '%s' is missing "
			    "while '%s' is present; PyTorch RNNs have both biases "
			    "or neither (bias=False)", l->type, l->name,
			    key[src[2] < 0 ? 2 : 3], key[src[2] < 0 ? 3 : 2]);
			continue;
		}
		if (src[2] < 0)
			continue;	/* bias=False: use_bias=False */
		if ((w = plan_ctx_weight(c, l, "bias", sub, &src[2], 2)) == NULL)
			return;
		w->recipe.combine = gru ? XF_STACK : XF_SUM;
		if (gru)
			preset_gru_reorder(&w->recipe, 1);
	}
	if (gru)
		plan_warning(p, l->name, "GRU '%s': build Keras GRU(units, "
		    "reset_after=True) (the default); gates are reordered from "
		    "PyTorch's r,z,n to Keras's z,r,h", l->name);
	if (dirs == 2)
		plan_warning(p, l->name, "%s '%s': written as Bidirectional(%s("
		    "units, return_sequences=True), merge_mode='concat'): "
		    "forward weights from *_l%lld, backward from *_l%lld_reverse",
		    l->type, l->name, l->type, k, k);
}

static void
preset_check_rnn(struct plan *p, struct plan_layer *l, const json_t *e)
{
	int gates = preset_rnn_gates(l->type);
	uint64_t hk[2], rk[2], b1, b2[2];
	size_t i;

	for (i = 0; i < l->nw; i++) {
		struct plan_weight *w = &l->w[i];
		const char *base = strrchr(w->name, '/');
		struct plan_weight *rec;
		uint64_t h, in;
		size_t j;

		base = base ? base + 1 : w->name;
		if (strcmp(base, "kernel") != 0)
			continue;
		/* the recurrent kernel of the same cell follows */
		for (rec = NULL, j = i + 1; j < l->nw && rec == NULL; j++)
			if (strstr(l->w[j].name, "recurrent_kernel") != NULL)
				rec = &l->w[j];
		if (preset_rank(p, l, w, 2, "an RNN input weight is 2-D "
		    "(gates*hidden, input)") || rec == NULL ||
		    preset_rank(p, l, rec, 2, "an RNN hidden weight is 2-D "
		    "(gates*hidden, hidden)"))
			continue;
		h = rec->base->d[1];
		in = w->base->d[1];
		if (rec->base->d[0] != (uint64_t)gates * h ||
		    w->base->d[0] != (uint64_t)gates * h) {
			plan_problem(p, WB_E_MAPPING, l->name, w->name,
			    p->ix->e[w->src[0]].key, "%s '%s': weights of shapes "
			    "(%llu, %llu) and (%llu, %llu) are not those of a "
			    "%s with %d gate%s", l->type, l->name,
			    (unsigned long long)w->base->d[0],
			    (unsigned long long)in,
			    (unsigned long long)rec->base->d[0],
			    (unsigned long long)h, l->type, gates,
			    gates > 1 ? "s" : "");
			w->bad = 1;
			continue;
		}
		hk[0] = in;
		hk[1] = (uint64_t)gates * h;
		rk[0] = h;
		rk[1] = hk[1];
		preset_expect(w, 2, hk);
		preset_expect(rec, 2, rk);
		for (j = i + 1; j < l->nw; j++) {
			const char *bn = strrchr(l->w[j].name, '/');

			if (strcmp(bn ? bn + 1 : l->w[j].name, "kernel") == 0)
				break;
			if (strstr(l->w[j].name, "bias") == NULL)
				continue;
			if (gates == 3) {
				b2[0] = 2;
				b2[1] = hk[1];
				preset_expect(&l->w[j], 2, b2);
			} else {
				b1 = hk[1];
				preset_expect(&l->w[j], 1, &b1);
			}
		}
	}
}

/* Depthwise then pointwise conv, nothing between: SeparableConv2D. */
static void
preset_build_separable(struct plan_ctx *c, struct plan_layer *l,
    const json_t *e)
{
	struct plan *p = plan_ctx_plan(c);
	const char *pwp = json_string_value(json_object_get(e, "pointwise"));
	const char *f = l->from, *dot = *l->from ? "." : "";
	long long m = preset_int(e, "depth_multiplier", 1);
	char k[4][1100];
	long src[4], fold[4];
	struct plan_weight *w, *pwk;
	int wn;
	int64_t shape[4], perm[4] = { 2, 3, 0, 1 }, perm2[4] = { 2, 3, 1, 0 };
	struct xf_shape dw;

	if (pwp == NULL) {
		plan_problem(p, WB_E_SPEC, l->name, NULL, NULL, "SeparableConv2D "
		    "'%s': give \"pointwise\": the prefix of the 1x1 conv that "
		    "follows the depthwise conv \"from\"", l->name);
		return;
	}
	snprintf(k[0], sizeof(k[0]), "%s%sweight", f, dot);
	snprintf(k[1], sizeof(k[1]), "%s%sbias", f, dot);
	snprintf(k[2], sizeof(k[2]), "%s.weight", pwp);
	snprintf(k[3], sizeof(k[3]), "%s.bias", pwp);
	src[1] = plan_ctx_key(c, k[1]);
	src[3] = plan_ctx_key(c, k[3]);
	w = plan_ctx_param(c, l, "depthwise_kernel", NULL, f, "weight", 1);
	pwk = plan_ctx_param(c, l, "pointwise_kernel", NULL, pwp, "weight", 1);
	if (w == NULL || pwk == NULL)
		return;
	dw = *w->base;
	if (dw.ndim != 4 || dw.d[1] != 1 || m < 1 ||
	    dw.d[0] % (uint64_t)m != 0) {
		plan_problem(p, WB_E_MAPPING, l->name, "depthwise_kernel", k[0],
		    "SeparableConv2D '%s': '%s' is not a depthwise kernel "
		    "(C*M, 1, kh, kw) with depth_multiplier %lld", l->name, k[0],
		    m);
		w->bad = 1;
		return;
	}
	shape[0] = (int64_t)(dw.d[0] / (uint64_t)m);
	shape[1] = m;
	shape[2] = (int64_t)dw.d[2];
	shape[3] = (int64_t)dw.d[3];
	xf_push_reshape(&w->recipe, 4, shape, NULL);
	xf_push_transpose(&w->recipe, 4, perm, NULL);
	w = pwk;
	if (w->base->ndim != 4 || w->base->d[1] != dw.d[0] ||
	    w->base->d[2] != 1 || w->base->d[3] != 1) {
		plan_problem(p, WB_E_MAPPING, l->name, "pointwise_kernel", k[2],
		    "SeparableConv2D '%s': '%s' must be a 1x1 conv over the "
		    "%llu depthwise outputs", l->name, k[2],
		    (unsigned long long)dw.d[0]);
		w->bad = 1;
		return;
	}
	xf_push_transpose(&w->recipe, 4, perm2, NULL);
	wn = pwk->recipe.combine == XF_WNORM;
	/* One Keras bias, after the pointwise step: b_pw + W_pw @ b_dw. */
	if (src[1] >= 0) {
		int n = 0;

		/* A weight-normed pointwise conv brings g and v. */
		fold[n++] = pwk->src[0];
		if (wn)
			fold[n++] = pwk->src[1];
		fold[n++] = src[1];
		if (src[3] >= 0)
			fold[n++] = src[3];
		if ((w = plan_ctx_weight(c, l, "bias", NULL, fold, n)) == NULL)
			return;
		w->recipe.combine = wn ? XF_FOLD_WNORM : XF_FOLD;
	} else if (src[3] >= 0) {
		plan_ctx_weight(c, l, "bias", NULL, &src[3], 1);
	}
}

/*
 * nn.MultiheadAttention -> keras MultiHeadAttention(num_heads=h,
 * key_dim=E/h): q, k, v split from in_proj (or separate when kdim/vdim
 * differ), each kernel (E_in, h, D) and bias (h, D); output (h, D, E).
 */
static void
preset_build_mha(struct plan_ctx *c, struct plan_layer *l, const json_t *e)
{
	static const char *const subs[3] = { "query_dense", "key_dense",
	    "value_dense" };
	static const char *const sep[3] = { "q_proj_weight", "k_proj_weight",
	    "v_proj_weight" };
	struct plan *p = plan_ctx_plan(c);
	const char *f = l->from, *dot = *l->from ? "." : "";
	long long h = preset_int(e, "num_heads", 0);
	char k[8][1100];
	long in_w, in_b, out_w, out_b, sw[3];
	uint64_t emb;
	int64_t t[2] = { 1, 0 }, shp[3];
	struct plan_weight *w;
	int i;

	snprintf(k[0], sizeof(k[0]), "%s%sin_proj_weight", f, dot);
	snprintf(k[1], sizeof(k[1]), "%s%sin_proj_bias", f, dot);
	snprintf(k[2], sizeof(k[2]), "%s%sout_proj.weight", f, dot);
	snprintf(k[3], sizeof(k[3]), "%s%sout_proj.bias", f, dot);
	snprintf(k[4], sizeof(k[4]), "%s%sbias_k", f, dot);
	if (plan_ctx_key(c, k[4]) >= 0) {
		plan_problem(p, WB_E_MAPPING, l->name, NULL, k[4],
		    "MultiHeadAttention '%s': the PyTorch layer uses add_bias_kv "
		    "('%s' is present); Keras MultiHeadAttention has no "
		    "equivalent", l->name, k[4]);
		return;
	}
	in_w = plan_ctx_key(c, k[0]);
	in_b = plan_ctx_key(c, k[1]);
	out_w = plan_ctx_key(c, k[2]);
	out_b = plan_ctx_key(c, k[3]);
	if (out_w < 0) {
		plan_ctx_missing(c, l, "output_dense/kernel", k[2]);
		return;
	}
	emb = p->ix->e[out_w].hdr.shape[0];
	if (h < 1) {
		plan_problem(p, WB_E_SPEC, l->name, NULL, NULL,
		    "MultiHeadAttention '%s': give \"num_heads\" (PyTorch's "
		    "num_heads; key_dim = embed_dim / num_heads)", l->name);
		return;
	}
	if (emb % (uint64_t)h != 0) {
		plan_problem(p, WB_E_MAPPING, l->name, NULL, k[2],
		    "MultiHeadAttention '%s': num_heads=%lld does not divide "
		    "embed_dim %llu", l->name, h, (unsigned long long)emb);
		return;
	}
	for (i = 0; i < 3; i++) {
		snprintf(k[5], sizeof(k[5]), "%s%s%s", f, dot, sep[i]);
		sw[i] = plan_ctx_key(c, k[5]);
		if (in_w < 0 && sw[i] < 0) {
			plan_ctx_missing(c, l, "kernel", in_w < 0 && i == 0 ?
			    k[0] : k[5]);
			return;
		}
	}
	for (i = 0; i < 3; i++) {
		struct xf_op op;

		memset(&op, 0, sizeof(op));
		op.kind = XF_SPLIT;
		op.axis = 0;
		op.parts = 3;
		op.index = i;
		if ((w = plan_ctx_weight(c, l, "kernel", subs[i], in_w >= 0 ?
		    &in_w : &sw[i], 1)) == NULL)
			return;
		if (in_w >= 0)
			xf_push(&w->recipe, &op, NULL);
		xf_push_transpose(&w->recipe, 2, t, NULL);
		shp[0] = in_w >= 0 ? (int64_t)emb :
		    (int64_t)p->ix->e[sw[i]].hdr.shape[1];
		shp[1] = h;
		shp[2] = (int64_t)(emb / (uint64_t)h);
		xf_push_reshape(&w->recipe, 3, shp, NULL);
		if (in_b >= 0) {
			if ((w = plan_ctx_weight(c, l, "bias", subs[i], &in_b,
			    1)) == NULL)
				return;
			xf_push(&w->recipe, &op, NULL);
			xf_push_reshape(&w->recipe, 2, shp + 1, NULL);
		}
	}
	if ((w = plan_ctx_weight(c, l, "kernel", "output_dense", &out_w,
	    1)) == NULL)
		return;
	xf_push_transpose(&w->recipe, 2, t, NULL);
	shp[0] = h;
	shp[1] = (int64_t)(emb / (uint64_t)h);
	shp[2] = (int64_t)emb;
	xf_push_reshape(&w->recipe, 3, shp, NULL);
	if (out_b >= 0 && plan_ctx_weight(c, l, "bias", "output_dense",
	    &out_b, 1) == NULL)
		return;
	plan_warning(p, l->name, "MultiHeadAttention '%s': build Keras "
	    "MultiHeadAttention(num_heads=%lld, key_dim=%llu, value_dim=%llu%s); "
	    "Keras calls layer(query, value, key) where PyTorch takes (query, "
	    "key, value), its attention_mask is True where attention is "
	    "allowed (PyTorch's boolean masks are True where it is blocked: "
	    "invert them), and it is batch-first", l->name, h,
	    (unsigned long long)(emb / (uint64_t)h),
	    (unsigned long long)(emb / (uint64_t)h),
	    in_b < 0 ? ", use_bias=False" : "");
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
	    { "flatten" }, preset_check_dense, NULL, NULL },
	{ "Conv1D", "conv1d", 3, {
	    { "kernel", NULL, "weight", 0, PR_CONV },
	    { "bias", NULL, "bias", 1, PR_COPY } },
	    { "groups", "in_channels" }, preset_check_conv, NULL, NULL },
	{ "Conv2D", "conv2d", 4, {
	    { "kernel", NULL, "weight", 0, PR_CONV },
	    { "bias", NULL, "bias", 1, PR_COPY } },
	    { "groups", "in_channels" }, preset_check_conv, NULL, NULL },
	{ "Conv3D", "conv3d", 5, {
	    { "kernel", NULL, "weight", 0, PR_CONV },
	    { "bias", NULL, "bias", 1, PR_COPY } },
	    { "groups", "in_channels" }, preset_check_conv, NULL, NULL },
	{ "DepthwiseConv2D", "depthwise_conv2d", 4, {
	    { "kernel", "depthwise_kernel", "weight", 0, PR_DEPTHWISE },
	    { "bias", NULL, "bias", 1, PR_COPY } },
	    { "depth_multiplier" }, preset_check_depthwise, NULL, NULL },
	{ "BatchNormalization", "batch_normalization", 0, {
	    { "gamma", NULL, "weight", 1, PR_COPY },
	    { "beta", NULL, "bias", 1, PR_COPY },
	    { "moving_mean", NULL, "running_mean", 0, PR_COPY },
	    { "moving_variance", NULL, "running_var", 0, PR_COPY } },
	    { "epsilon" }, preset_check_vectors, preset_eps_advice, NULL },
	{ "LayerNormalization", "layer_normalization", 0, {
	    { "gamma", NULL, "weight", 1, PR_CHANNELS_LAST },
	    { "beta", NULL, "bias", 1, PR_CHANNELS_LAST } },
	    { "epsilon", "channels_first" }, preset_check_layernorm,
	    preset_eps_advice, NULL },
	{ "Embedding", "embedding", 0, {
	    { "embeddings", NULL, "weight", 0, PR_COPY } },
	    { NULL }, preset_check_embedding, NULL, NULL },
	{ "Conv1DTranspose", "conv1d_transpose", 3, {
	    { "kernel", NULL, "weight", 0, PR_CONVT },
	    { "bias", NULL, "bias", 1, PR_COPY } },
	    { "groups", "padding", "output_padding" }, preset_check_convt,
	    NULL, NULL },
	{ "Conv2DTranspose", "conv2d_transpose", 4, {
	    { "kernel", NULL, "weight", 0, PR_CONVT },
	    { "bias", NULL, "bias", 1, PR_COPY } },
	    { "groups", "padding", "output_padding" }, preset_check_convt,
	    NULL, NULL },
	{ "Conv3DTranspose", "conv3d_transpose", 5, {
	    { "kernel", NULL, "weight", 0, PR_CONVT },
	    { "bias", NULL, "bias", 1, PR_COPY } },
	    { "groups", "padding", "output_padding" }, preset_check_convt,
	    NULL, NULL },
	{ "DepthwiseConv1D", "depthwise_conv1d", 3, {
	    { "kernel", "depthwise_kernel", "weight", 0, PR_DEPTHWISE },
	    { "bias", NULL, "bias", 1, PR_COPY } },
	    { "depth_multiplier" }, preset_check_depthwise, NULL, NULL },
	{ "SeparableConv2D", "separable_conv2d", 0, { { NULL } },
	    { "pointwise", "depth_multiplier" }, NULL, NULL,
	    preset_build_separable },
	{ "GroupNormalization", "group_normalization", 0, {
	    { "gamma", NULL, "weight", 1, PR_COPY },
	    { "beta", NULL, "bias", 1, PR_COPY } },
	    { "epsilon", "groups" }, preset_check_vectors, preset_eps_advice,
	    NULL },
	{ "PReLU", "p_re_lu", 0, {
	    { "alpha", NULL, "weight", 0, PR_PRELU } },
	    { "input_rank" }, preset_check_prelu, NULL, NULL },
	{ "LSTM", "lstm", 0, { { NULL } },
	    { "layer", "bidirectional" }, preset_check_rnn, NULL,
	    preset_build_rnn },
	{ "GRU", "gru", 0, { { NULL } },
	    { "layer", "bidirectional", "reset_after" }, preset_check_rnn, NULL,
	    preset_build_rnn },
	{ "SimpleRNN", "simple_rnn", 0, { { NULL } },
	    { "layer", "bidirectional" }, preset_check_rnn, NULL,
	    preset_build_rnn },
	{ "MultiHeadAttention", "multi_head_attention", 0, { { NULL } },
	    { "num_heads" }, NULL, NULL, preset_build_mha },
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
	for (i = 0; i < 8 && pr->options[i] != NULL; i++)
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
	case PR_CONVT:
		m = preset_int(entry, "groups", 1);
		if (n != pr->kernel_ndim || m < 1 ||
		    src->d[0] % (uint64_t)m != 0)
			return 0;	/* the layer check explains */
		if (m > 1) {
			struct xf_op op;

			memset(&op, 0, sizeof(op));
			op.kind = XF_BLOCKDIAG;
			op.parts = (int)m;
			if (xf_push(r, &op, err))
				return err->code;
		}
		for (i = 2; i < n; i++)
			perm[i - 2] = i;
		perm[n - 2] = 1;
		perm[n - 1] = 0;
		return xf_push_transpose(r, n, perm, err);
	case PR_CHANNELS_LAST:
		if (n <= 1)
			return 0;
		fl = json_object_get(entry, "channels_first");
		if (!json_is_boolean(fl))
			return wb_err_set(err, WB_E_SPEC, "the weight has shape "
			    "%s: say \"channels_first\": true if the LayerNorm "
			    "normalises a channels-first map such as (C, H, W) "
			    "(gamma and beta move to channels-last), or false to "
			    "keep the axis order", xf_shape_str(src, (char[128]){0},
			    128));
		if (!json_is_true(fl))
			return 0;
		for (i = 0; i + 1 < n; i++)
			perm[i] = i + 1;
		perm[n - 1] = 0;
		return xf_push_transpose(r, n, perm, err);
	case PR_PRELU:
		m = preset_int(entry, "input_rank", 0);
		if (m < 2 || m > 5)
			return wb_err_set(err, WB_E_SPEC, "give \"input_rank\": "
			    "the rank of the PyTorch input including the batch "
			    "axis (2 for (N, C), 3 for (N, C, L), 4 for NCHW, 5 "
			    "for NCDHW); Keras's alpha shape depends on it");
		if (n != 1)
			return 0;
		for (i = 0; i < m - 2; i++)
			shape[i] = 1;
		shape[m - 2] = (int64_t)src->d[0];
		return xf_push_reshape(r, (int)m - 1, shape, err);
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
	int ih = preset_has(params, n, "weight_ih_l0");
	int hh = preset_has(params, n, "weight_hh_l0");
	size_t i, j;

	*certain = 1;
	why[0] = '\0';
	/* A weight-norm pair stands for "weight" with v's shape. */
	if (w < 0 && (w = preset_has(params, n, "weight_v")) < 0)
		w = preset_has(params, n, "parametrizations.weight.original1");
	if (ih >= 0 && hh >= 0 && shapes[hh].ndim == 2 &&
	    shapes[hh].d[1] > 0) {
		uint64_t g = shapes[hh].d[0] / shapes[hh].d[1];

		pr = preset_find(g == 4 ? "LSTM" : g == 3 ? "GRU" : "SimpleRNN");
		if (preset_has(params, n, "weight_hr_l0") >= 0)
			snprintf(why, whylen, "an LSTM with proj_size, which "
			    "Keras cannot express");
	} else if (preset_has(params, n, "in_proj_weight") >= 0 ||
	    preset_has(params, n, "q_proj_weight") >= 0 ||
	    preset_has(params, n, "in_proj_bias") >= 0) {
		pr = preset_find("MultiHeadAttention");
		*certain = 0;
		snprintf(why, whylen, "set num_heads to the PyTorch module's "
		    "value");
	} else if (preset_has(params, n, "running_mean") >= 0 &&
	    preset_has(params, n, "running_var") >= 0) {
		pr = preset_find("BatchNormalization");
	} else if (w >= 0 && b < 0 && shapes[w].ndim == 1) {
		pr = preset_find("PReLU");
		*certain = 0;
		snprintf(why, whylen, "a lone per-channel weight: taken as PReLU; "
		    "set input_rank (4 for NCHW input)");
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
			if (s->d[1] == 1 && s->d[0] > 1 && !first_conv) {
				pr = preset_find("DepthwiseConv1D");
				*certain = 0;
				snprintf(why, whylen, "one input channel per "
				    "group: taken as a depthwise convolution");
			}
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
			    "without running statistics: taken as LayerNorm; "
			    "use GroupNormalization for GroupNorm or "
			    "InstanceNorm(affine=True)");
			break;
		}
	}
	if (pr == NULL) {
		snprintf(why, whylen, "no layer type fits parameters of "
		    "module '%s'", prefix);
		return NULL;
	}
	/* Every parameter must be one the preset reads. */
	for (i = 0; pr->build == NULL && i < n; i++) {
		if (strcmp(params[i], "weight_g") == 0 ||
		    strcmp(params[i], "weight_v") == 0 ||
		    strncmp(params[i], "parametrizations.weight.", 24) == 0)
			continue;
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
