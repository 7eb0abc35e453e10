/*
 * plan: from (index, spec) to a list of layers and weights, each weight with
 * its source tensors, transform recipe and final shape.  See plan.h.
 *
 * Keys are looked up through a small open-addressing hash table so that
 * archives with tens of thousands of tensors plan in linear time.  A module
 * prefix is a key minus its last component ("layer1.0.conv1" for
 * "layer1.0.conv1.weight"); `match` entries run over the distinct prefixes
 * in archive order.
 *
 * Memory is what limits a plan of that size, not time: a weight is some
 * 800 bytes (most of it the transform recipe the converter reads), its
 * strings and source shapes come from an arena, stripped keys point into
 * the index, and the report's per-layer JSON, several times larger than
 * the plan, is built only when someone wants it (plan_report_layers).
 */
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "preset.h"

#define PLAN_MATCH_MAX	10	/* $0..$9 */
#define PLAN_CHUNK	(64u << 10)	/* bytes per arena chunk */

/*
 * Names, paths and shapes are many and small, and all die with the plan:
 * they are carved from chunks instead of malloc'ed one by one, which
 * saves the per-allocation overhead and the frees.
 */
struct plan_arena {
	struct plan_arena *next;
	size_t		 used, cap;
	uint64_t	 data[];	/* aligned for any field we store */
};

/* n bytes aligned to align (a power of two), or NULL. */
static void *
plan_alloc(struct plan_arena **a, size_t n, size_t align)
{
	struct plan_arena *c = *a;
	size_t off = c != NULL ? (c->used + align - 1) & ~(align - 1) : 0;
	char *r;

	if (c == NULL || off > c->cap || c->cap - off < n) {
		size_t cap = n > PLAN_CHUNK / 4 ? n : PLAN_CHUNK;

		if ((c = malloc(sizeof(*c) + cap)) == NULL)
			return NULL;
		c->used = 0;
		c->cap = cap;
		/* A large block goes behind the current chunk, whose room
		 * is still good for small things. */
		if (*a != NULL && n > PLAN_CHUNK / 4) {
			c->next = (*a)->next;
			(*a)->next = c;
			c->used = n;
			return c->data;
		}
		c->next = *a;
		*a = c;
		off = 0;
	}
	r = (char *)c->data + off;
	c->used = off + n;
	return r;
}

static char *
plan_strndup(struct plan_arena **a, const char *s, size_t n)
{
	char *d = plan_alloc(a, n + 1, 1);

	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static char *
plan_strdup(struct plan_arena **a, const char *s)
{
	return plan_strndup(a, s, strlen(s));
}

static void
plan_arena_free(struct plan_arena *a)
{
	struct plan_arena *next;

	for (; a != NULL; a = next) {
		next = a->next;
		free(a);
	}
}

struct plan_map {
	size_t		 cap;	/* power of two */
	const char	**key;
	long		*val;
};

static uint64_t
plan_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static int
plan_map_init(struct plan_map *m, size_t n)
{
	m->cap = 16;
	while (m->cap < n * 2 + 1)
		m->cap <<= 1;
	m->key = calloc(m->cap, sizeof(*m->key));
	m->val = calloc(m->cap, sizeof(*m->val));
	return m->key != NULL && m->val != NULL ? 0 : -1;
}

static void
plan_map_free(struct plan_map *m)
{
	free(m->key);
	free(m->val);
}

/* Returns the slot of key: an existing one or the empty one to fill. */
static size_t
plan_map_slot(const struct plan_map *m, const char *key)
{
	size_t i = (size_t)plan_hash(key) & (m->cap - 1);

	while (m->key[i] != NULL && strcmp(m->key[i], key) != 0)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static long
plan_map_get(const struct plan_map *m, const char *key)
{
	size_t i = plan_map_slot(m, key);

	return m->key[i] != NULL ? m->val[i] : -1;
}

/* The planner's working state beyond struct plan. */
struct plan_ctx {
	struct plan	*p;
	struct plan_map	 keys;		/* stripped key -> entry */
	struct plan_map	 pmap;		/* prefix -> prefix number */
	size_t		 npfx;
	const char	**pfx;		/* distinct prefixes, archive order */
	struct plan_arena *tmp;		/* the prefixes; freed after planning */
	long		*pfx_first;	/* first entry of each prefix */
	long		*pfx_last;	/* and its last */
	long		*next;		/* per entry: next entry, same prefix */
	const char	**param;	/* per entry: last key component */
	struct plan_map	 explicit;	/* prefixes named by "from" */
	int		 seen_conv;	/* for inference of the first conv */
	struct wb_err	*err;
};

void
plan_problem(struct plan *p, enum wb_code code, const char *layer,
    const char *weight, const char *key, const char *fmt, ...)
{
	char msg[WB_ERR_MSG_MAX];
	json_t *o;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->nproblems++;
	o = json_pack("{s:s, s:s}", "code", wb_err_name(code), "message", msg);
	if (o == NULL)
		return;
	if (layer != NULL)
		json_object_set_new(o, "layer", json_string(layer));
	if (weight != NULL)
		json_object_set_new(o, "weight", json_string(weight));
	if (key != NULL)
		json_object_set_new(o, "key", json_string(key));
	json_array_append_new(p->problems, o);
}

void
plan_warning(struct plan *p, const char *layer, const char *fmt, ...)
{
	char msg[WB_ERR_MSG_MAX];
	json_t *o;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = json_pack("{s:s}", "message", msg);
	if (o == NULL)
		return;
	if (layer != NULL)
		json_object_set_new(o, "layer", json_string(layer));
	json_array_append_new(p->warnings, o);
}

long
plan_find(const struct plan *p, const char *key)
{
	size_t i;

	/* Only used outside planning (tests); linear is fine there. */
	for (i = 0; i < p->ix->n; i++)
		if (!p->ignored[i] && strcmp(p->skey[i], key) == 0)
			return (long)i;
	return -1;
}

static json_t *
plan_shape_json(const struct xf_shape *s)
{
	json_t *a = json_array();
	int i;

	for (i = 0; a != NULL && i < s->ndim; i++)
		json_array_append_new(a, json_integer((json_int_t)s->d[i]));
	return a;
}

/* The shape of an entry; ndim -1 if it has more axes than a weight may. */
static void
plan_entry_shape(const struct npz_entry *e, struct xf_shape *s)
{
	if (e->hdr.ndim > XF_MAX_DIMS) {
		s->ndim = -1;
		return;
	}
	s->ndim = e->hdr.ndim;
	memcpy(s->d, e->hdr.shape, (size_t)e->hdr.ndim * sizeof(s->d[0]));
}

static json_t *
plan_entry_json(const struct plan *p, long idx)
{
	const struct npz_entry *e = &p->ix->e[idx];
	json_t *shape = json_array();
	int i;

	for (i = 0; shape != NULL && i < e->hdr.ndim; i++)
		json_array_append_new(shape, json_integer(
		    (json_int_t)e->hdr.shape[i]));
	return json_pack("{s:s, s:o, s:s}", "key", e->key, "shape", shape,
	    "dtype", npy_dtype_name(&e->hdr));
}

static struct plan_layer *
plan_new_layer(struct plan_ctx *w, const char *name, const char *type,
    const char *from, int inferred)
{
	struct plan *p = w->p;
	struct plan_layer *l;

	if (p->nlayers == p->caplayers) {
		size_t cap = p->caplayers ? p->caplayers * 2 : 16;
		struct plan_layer *nl = realloc(p->l, cap * sizeof(*nl));

		if (nl == NULL)
			return NULL;
		p->l = nl;
		p->caplayers = cap;
	}
	l = &p->l[p->nlayers];
	memset(l, 0, sizeof(*l));
	l->spec_index = -1;
	l->name = plan_strdup(&p->arena, name);
	l->type = plan_strdup(&p->arena, type);
	l->from = plan_strdup(&p->arena, from != NULL ? from : "");
	l->inferred = inferred;
	if (l->name == NULL || l->type == NULL || l->from == NULL)
		return NULL;
	p->nlayers++;
	return l;
}

/*
 * A new weight with room for nsrc sources (at least one slot, so that
 * in[0] is always a shape).  name is copied.
 */
static struct plan_weight *
plan_new_weight(struct plan *p, struct plan_layer *l, size_t hint,
    const char *name, int nsrc)
{
	struct plan_weight *pw;

	if (nsrc < 1)
		nsrc = 1;
	if (nsrc > XF_MAX_SOURCES)
		nsrc = XF_MAX_SOURCES;
	if (l->nw == l->capw) {
		size_t cap = l->capw ? l->capw * 2 : (hint ? hint : 4);
		struct plan_weight *nw = realloc(l->w, cap * sizeof(*nw));

		if (nw == NULL)
			return NULL;
		l->w = nw;
		l->capw = cap;
	}
	pw = &l->w[l->nw];
	memset(pw, 0, sizeof(*pw));
	pw->in = plan_alloc(&p->arena, (size_t)nsrc * sizeof(*pw->in),
	    sizeof(uint64_t));
	if ((pw->name = plan_strdup(&p->arena, name)) == NULL || pw->in == NULL)
		return NULL;
	memset(pw->in, 0, (size_t)nsrc * sizeof(*pw->in));
	pw->capsrc = nsrc;
	pw->base = &pw->in[0];
	l->nw++;
	return pw;
}

static int
plan_add_source(struct plan_ctx *w, struct plan_weight *pw, long idx)
{
	if (pw->nsrc >= pw->capsrc)
		return -1;
	pw->src[pw->nsrc] = idx;
	plan_entry_shape(&w->p->ix->e[idx], &pw->in[pw->nsrc]);
	if (pw->in[pw->nsrc].ndim < 0) {
		plan_problem(w->p, WB_E_MAPPING, NULL, pw->name,
		    w->p->ix->e[idx].key, "tensor '%s' has %d axes; a weight "
		    "has at most %d", w->p->ix->e[idx].key,
		    w->p->ix->e[idx].hdr.ndim, XF_MAX_DIMS);
		pw->in[pw->nsrc].ndim = 0;
		pw->bad = 1;
	}
	pw->nsrc++;
	w->p->uses[idx]++;
	return 0;
}

struct plan *
plan_ctx_plan(struct plan_ctx *c)
{
	return c->p;
}

long
plan_ctx_key(struct plan_ctx *c, const char *key)
{
	long idx = plan_map_get(&c->keys, key);

	return idx >= 0 && !c->p->ignored[idx] ? idx : -1;
}

struct plan_weight *
plan_ctx_weight(struct plan_ctx *c, struct plan_layer *l, const char *name,
    const char *sub, const long *src, int nsrc)
{
	struct plan_weight *pw;
	int i;

	char full[512];

	/* Report names are unique within a layer: "cell/kernel". */
	if (sub != NULL)
		snprintf(full, sizeof(full), "%s/%s", sub, name);
	if ((pw = plan_new_weight(c->p, l, 2, sub != NULL ? full : name,
	    nsrc)) == NULL ||
	    (pw->path = plan_strdup(&c->p->arena, name)) == NULL ||
	    (sub != NULL && (pw->sub = plan_strdup(&c->p->arena,
	    sub)) == NULL)) {
		wb_err_set(c->err, WB_E_NOMEM, "out of memory");
		return NULL;
	}
	for (i = 0; i < nsrc && i < XF_MAX_SOURCES; i++)
		plan_add_source(c, pw, src[i]);
	return pw;
}

void
plan_ctx_missing(struct plan_ctx *c, struct plan_layer *l, const char *weight,
    const char *key)
{
	plan_problem(c->p, WB_E_MAPPING, l->name, weight, key, "%s '%s' %s: no "
	    "tensor '%s' in the archive", l->type, l->name, weight, key);
	json_array_append_new(json_object_get(c->p->report, "missing"),
	    json_pack("{s:s, s:s, s:s}", "layer", l->name, "weight", weight,
	    "key", key));
}

/*
 * "from.param" (or "param" for the root module) into buf, cut to fit as
 * snprintf would: the key of a parameter, made for every parameter of
 * every layer, so without the cost of a format string.
 */
static void
plan_key(char *buf, size_t len, const char *from, const char *param)
{
	size_t f = strlen(from), n = strlen(param), o;

	if (f > len - 1)
		f = len - 1;
	memcpy(buf, from, f);
	o = f;
	if (*from != '\0' && o < len - 1)
		buf[o++] = '.';
	if (n > len - 1 - o)
		n = len - 1 - o;
	memcpy(buf + o, param, n);
	buf[o + n] = '\0';
}

/*
 * A "weight" parameter may be stored as a weight-norm pair: old-style
 * weight_g/weight_v or parametrizations.weight.original0/1.  Returns the
 * number of sources found (1 plain, 2 weight norm, 0 none).
 */
static int
plan_weight_sources(struct plan_ctx *c, const char *from, const char *param,
    long *src)
{
	char key[1024], k2[1024];
	int i;

	plan_key(key, sizeof(key), from, param);
	if ((src[0] = plan_ctx_key(c, key)) >= 0)
		return 1;
	if (strcmp(param, "weight") != 0)
		return 0;
	for (i = 0; i < 2; i++) {
		const char *dot = *from ? "." : "";

		if (i == 0) {
			snprintf(key, sizeof(key), "%s%sweight_g", from, dot);
			snprintf(k2, sizeof(k2), "%s%sweight_v", from, dot);
		} else {
			snprintf(key, sizeof(key), "%s%sparametrizations.weight."
			    "original0", from, dot);
			snprintf(k2, sizeof(k2), "%s%sparametrizations.weight."
			    "original1", from, dot);
		}
		src[0] = plan_ctx_key(c, key);
		src[1] = plan_ctx_key(c, k2);
		if (src[0] >= 0 && src[1] >= 0)
			return 2;
	}
	return 0;
}

struct plan_weight *
plan_ctx_param(struct plan_ctx *c, struct plan_layer *l, const char *name,
    const char *sub, const char *from, const char *param, int required)
{
	struct plan_weight *pw;
	char key[1024];
	long src[2];
	int n;

	if ((n = plan_weight_sources(c, from, param, src)) == 0) {
		if (required) {
			plan_key(key, sizeof(key), from, param);
			plan_ctx_missing(c, l, name, key);
		}
		return NULL;
	}
	if ((pw = plan_ctx_weight(c, l, name, sub, src, n)) == NULL)
		return NULL;
	if (n == 2) {
		/* Fold g * v / ||v|| before the layer's own transform. */
		pw->recipe.combine = XF_WNORM;
		pw->base = &pw->in[1];
	}
	return pw;
}

/* The `expect` field: {"kernel": [3, 3, 16, 32], ...}. */
static void
plan_user_expect(struct plan *p, struct plan_layer *l, const json_t *expect,
    const char *path)
{
	const char *k;
	json_t *v;
	size_t i, j;

	if (expect == NULL)
		return;
	if (!json_is_object(expect)) {
		plan_problem(p, WB_E_SPEC, l->name, NULL, NULL, "%s.expect: "
		    "must be an object of weight name -> shape", path);
		return;
	}
	json_object_foreach((json_t *)expect, k, v) {
		struct plan_weight *pw = NULL;
		struct xf_shape s = { 0 };

		for (i = 0; i < l->nw; i++)
			if (strcmp(l->w[i].name, k) == 0)
				pw = &l->w[i];
		if (pw == NULL) {
			plan_problem(p, WB_E_SPEC, l->name, k, NULL, "%s.expect: "
			    "layer '%s' has no weight '%s'", path, l->name, k);
			continue;
		}
		if (!json_is_array(v) || json_array_size(v) > XF_MAX_DIMS) {
			plan_problem(p, WB_E_SPEC, l->name, k, NULL, "%s.expect."
			    "%s: must be an array of dimensions", path, k);
			continue;
		}
		s.ndim = (int)json_array_size(v);
		for (j = 0; j < json_array_size(v); j++) {
			json_t *d = json_array_get(v, j);

			if (!json_is_integer(d) || json_integer_value(d) < 0) {
				plan_problem(p, WB_E_SPEC, l->name, k, NULL,
				    "%s.expect.%s: dimensions are integers >= 0",
				    path, k);
				s.ndim = -1;
				break;
			}
			s.d[j] = (uint64_t)json_integer_value(d);
		}
		if (s.ndim < 0)
			continue;
		if (pw->has_expect && (pw->expect.ndim != s.ndim ||
		    memcmp(pw->expect.d, s.d, (size_t)s.ndim * sizeof(s.d[0])))) {
			char a[128], b[128];

			plan_problem(p, WB_E_MAPPING, l->name, k, NULL,
			    "%s '%s' %s: \"expect\" says %s but the layer's "
			    "tensors give %s", l->type, l->name, k,
			    xf_shape_str(&s, a, sizeof(a)),
			    xf_shape_str(&pw->expect, b, sizeof(b)));
			pw->mismatch = 1;
		}
		pw->has_expect = 1;
		pw->expect = s;
	}
}

/*
 * Plan shapes and compare them with expectations.  The layer's report
 * entry is made later, from what is recorded here (plan_report_layers).
 */
static int
plan_finish_layer(struct plan_ctx *w, struct plan_layer *l,
    const json_t *entry, const char *path, const char *note)
{
	struct plan *p = w->p;
	struct plan_weight *fit;
	size_t i;

	plan_user_expect(p, l, json_object_get(entry, "expect"), path);
	if (note != NULL && *note != '\0' &&
	    (l->note = plan_strdup(&p->arena, note)) == NULL)
		return wb_err_set(w->err, WB_E_NOMEM, "out of memory");
	for (i = 0; i < l->nw; i++) {
		struct plan_weight *pw = &l->w[i];
		struct wb_err e = { 0 };
		char a[128], b[128];

		if (!pw->bad && xf_plan(&pw->recipe, pw->in, pw->nsrc, &pw->out,
		    &e) != 0) {
			plan_problem(p, e.code, l->name, pw->name,
			    p->ix->e[pw->src[0]].key, "%s '%s' %s: %s", l->type,
			    l->name, pw->name, e.msg);
			pw->bad = 1;
		}
		if (!pw->bad && pw->has_expect &&
		    (pw->out.ndim != pw->expect.ndim ||
		    memcmp(pw->out.d, pw->expect.d,
		    (size_t)pw->out.ndim * sizeof(pw->out.d[0])) != 0)) {
			if (!pw->mismatch)
				plan_problem(p, WB_E_MAPPING, l->name, pw->name,
				    p->ix->e[pw->src[0]].key, "%s '%s' %s: "
				    "converted shape %s does not match the %s "
				    "the Keras layer needs", l->type, l->name,
				    pw->name, xf_shape_str(&pw->out, a,
				    sizeof(a)), xf_shape_str(&pw->expect, b,
				    sizeof(b)));
			pw->mismatch = 1;
		}
	}
	/* The layer takes no more weights: give back the spare room. */
	if (l->nw > 0 && l->nw < l->capw &&
	    (fit = realloc(l->w, l->nw * sizeof(*fit))) != NULL) {
		l->w = fit;
		l->capw = l->nw;
	}
	l->finished = 1;
	return 0;
}

/* Check that every field of the entry is one the preset takes. */
static void
plan_check_options(struct plan *p, const struct preset *pr,
    const json_t *entry, const char *path, const char *lname)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)entry, k, v) {
		if (!preset_takes(pr, k))
			plan_problem(p, WB_E_SPEC, lname, NULL, NULL,
			    "%s.%s: %s layers do not take this field", path, k,
			    pr->type);
	}
}

static int
plan_preset_layer(struct plan_ctx *w, const struct spec_layer *sl,
    const char *path, const char *name, const char *type, const char *from,
    int inferred, const char *note)
{
	struct plan *p = w->p;
	const struct preset *pr = preset_find(type);
	struct plan_layer *l;
	char key[1024], looked[1024];
	size_t i, n, off = 0;

	if (pr == NULL) {
		plan_problem(p, WB_E_SPEC, name, NULL, NULL, "%s.type: unknown "
		    "layer type '%s' (known: %s)", path, type, preset_list());
		return 0;
	}
	plan_check_options(p, pr, sl->j, path, name);
	if ((l = plan_new_layer(w, name, type, from, inferred)) == NULL)
		return wb_err_set(w->err, WB_E_NOMEM, "out of memory");
	l->snake = pr->snake;
	/* Room for every parameter at once (trimmed when finished). */
	for (n = 0; n < PRESET_MAX_PARAMS && pr->params[n].keras; n++)
		;
	if (pr->build == NULL && n > 0 &&
	    (l->w = malloc(n * sizeof(*l->w))) == NULL)
		return wb_err_set(w->err, WB_E_NOMEM, "out of memory");
	l->capw = pr->build == NULL ? n : 0;
	if (pr->build != NULL) {
		size_t before = p->nproblems;

		pr->build(w, l, sl->j);
		if (w->err->code != WB_OK)
			return w->err->code;
		if (l->nw == 0 && p->nproblems == before)
			plan_problem(p, WB_E_MAPPING, name, NULL, from, "%s '%s': "
			    "no tensors under '%s'", type, name, from);
	}
	for (i = 0; pr->build == NULL && i < PRESET_MAX_PARAMS &&
	    pr->params[i].keras; i++) {
		const struct preset_param *pp = &pr->params[i];
		struct plan_weight *pw;
		struct wb_err e = { 0 };
		enum xf_combine combine;

		plan_key(key, sizeof(key), from, pp->param);
		pw = plan_ctx_param(w, l, pp->legacy && p->format ==
		    KH5_LEGACY ? pp->legacy : pp->keras, NULL, from, pp->param,
		    !pp->optional);
		if (w->err->code != WB_OK)
			return w->err->code;
		if (pw == NULL)
			continue;
		/* The Keras name, whatever the legacy dataset is called. */
		pw->name = pp->keras;
		combine = pw->recipe.combine;
		if (preset_recipe(pr, pp, sl->j, pw->base, &pw->recipe,
		    &e) != 0) {
			plan_problem(p, e.code, name, pp->keras, key,
			    "%s '%s' %s: %s", type, name, pp->keras, e.msg);
			pw->bad = 1;
		}
		pw->recipe.combine = combine;	/* preset_recipe resets it */
	}
	if (l->nw == 0 && p->nproblems == 0 && pr->build == NULL) {
		looked[0] = '\0';
		for (i = 0; i < n; i++) {
			plan_key(key, sizeof(key), from, pr->params[i].param);
			off += (size_t)snprintf(looked + off, off <
			    sizeof(looked) ? sizeof(looked) - off : 0,
			    "%s'%s'", off ? ", " : "", key);
		}
		plan_problem(p, WB_E_MAPPING, name, NULL, from, "%s '%s': no "
		    "tensors under '%s' (looked for %s)", type, name, from,
		    looked);
	}
	if (pr->check != NULL)
		pr->check(p, l, sl->j);
	return plan_finish_layer(w, l, sl->j, path, note);
}

/* A transform op object: {"transpose": [..]}, {"reshape": [..]}, ... */
static int
plan_custom_op(const json_t *op, struct xf_recipe *r, struct wb_err *err)
{
	struct xf_op o;
	const char *k;
	json_t *v, *x;
	size_t i;

	memset(&o, 0, sizeof(o));
	if (!json_is_object(op) || json_object_size(op) != 1)
		return wb_err_set(err, WB_E_SPEC, "each transform step is an "
		    "object with one key: transpose, reshape, split or reorder");
	json_object_foreach((json_t *)op, k, v) {
		if (strcmp(k, "transpose") == 0 || strcmp(k, "reshape") == 0) {
			o.kind = k[0] == 't' ? XF_TRANSPOSE : XF_RESHAPE;
			if (!json_is_array(v) || json_array_size(v) > XF_MAX_DIMS)
				return wb_err_set(err, WB_E_SPEC, "%s takes an "
				    "array of at most %d integers", k,
				    XF_MAX_DIMS);
			json_array_foreach(v, i, x) {
				if (!json_is_integer(x))
					return wb_err_set(err, WB_E_SPEC, "%s "
					    "takes integers", k);
				o.a[i] = json_integer_value(x);
			}
			o.n = (int)json_array_size(v);
		} else if (strcmp(k, "split") == 0) {
			o.kind = XF_SPLIT;
			if (json_unpack(v, "{s:i, s:i, s:i}", "axis", &o.axis,
			    "parts", &o.parts, "index", &o.index) != 0)
				return wb_err_set(err, WB_E_SPEC, "split takes "
				    "{\"axis\": A, \"parts\": N, \"index\": I}");
		} else if (strcmp(k, "reorder") == 0) {
			json_t *b = NULL;

			o.kind = XF_REORDER;
			if (json_unpack(v, "{s:i, s:o}", "axis", &o.axis,
			    "blocks", &b) != 0 || !json_is_array(b) ||
			    json_array_size(b) > XF_MAX_DIMS)
				return wb_err_set(err, WB_E_SPEC, "reorder takes "
				    "{\"axis\": A, \"blocks\": [i, ...]}");
			json_array_foreach(b, i, x) {
				if (!json_is_integer(x))
					return wb_err_set(err, WB_E_SPEC,
					    "reorder blocks are integers");
				o.a[i] = json_integer_value(x);
			}
			o.n = (int)json_array_size(b);
		} else {
			return wb_err_set(err, WB_E_SPEC, "unknown transform "
			    "'%s' (known: transpose, reshape, split, reorder)",
			    k);
		}
	}
	return xf_push(r, &o, err);
}

static int
plan_custom_recipe(const json_t *jw, struct xf_recipe *r, struct wb_err *err)
{
	const json_t *t = json_object_get(jw, "transform");
	const json_t *c = json_object_get(jw, "combine");
	const char *cs;
	size_t i;
	int rc;

	memset(r, 0, sizeof(*r));
	if (c != NULL) {
		cs = json_string_value(c);
		if (cs != NULL && strcmp(cs, "sum") == 0)
			r->combine = XF_SUM;
		else if (cs != NULL && strcmp(cs, "stack") == 0)
			r->combine = XF_STACK;
		else if (cs != NULL && strcmp(cs, "concat") == 0)
			r->combine = XF_CONCAT;
		else if (cs != NULL && strcmp(cs, "weight_norm") == 0)
			r->combine = XF_WNORM;
		else
			return wb_err_set(err, WB_E_SPEC, "combine must be "
			    "\"sum\", \"stack\", \"concat\" or \"weight_norm\"");
	}
	if (t == NULL)
		return 0;
	if (json_is_object(t))
		return plan_custom_op(t, r, err);
	if (!json_is_array(t))
		return wb_err_set(err, WB_E_SPEC, "transform is a step object "
		    "or an array of them");
	for (i = 0; i < json_array_size(t); i++)
		if ((rc = plan_custom_op(json_array_get(t, i), r, err)) != 0)
			return rc;
	return 0;
}

static int
plan_custom_layer(struct plan_ctx *w, const struct spec_layer *sl,
    const char *path)
{
	struct plan *p = w->p;
	const json_t *ws = json_object_get(sl->j, "weights"), *jw;
	struct plan_layer *l;
	char wpath[128];
	size_t k, nw = json_array_size(ws);

	if ((l = plan_new_layer(w, sl->name, "Custom", sl->from, 0)) == NULL)
		return wb_err_set(w->err, WB_E_NOMEM, "out of memory");
	if (nw == 0)
		plan_problem(p, WB_E_SPEC, sl->name, NULL, NULL, "%s.weights: "
		    "a Custom layer needs at least one weight", path);
	json_array_foreach(ws, k, jw) {
		const char *wname = json_string_value(json_object_get(jw,
		    "name"));
		const json_t *from = json_object_get(jw, "from"), *f;
		struct plan_weight *pw;
		struct wb_err e = { 0 };
		size_t i;

		snprintf(wpath, sizeof(wpath), "%s.weights[%zu]", path, k);
		if (wname == NULL || *wname == '\0' || strchr(wname, '/')) {
			plan_problem(p, WB_E_SPEC, sl->name, NULL, NULL,
			    "%s.name: a weight needs a name without '/'", wpath);
			continue;
		}
		if ((pw = plan_new_weight(p, l, nw, wname,
		    json_is_array(from) ? (int)json_array_size(from) :
		    1)) == NULL)
			return wb_err_set(w->err, WB_E_NOMEM, "out of memory");
		pw->path = pw->name;
		if (json_is_string(from) || (json_is_array(from) &&
		    json_array_size(from) >= 1 &&
		    json_array_size(from) <= XF_MAX_SOURCES)) {
			for (i = 0; i < (json_is_string(from) ? 1 :
			    json_array_size(from)); i++) {
				const char *key;
				long idx;

				f = json_is_string(from) ? from :
				    json_array_get(from, i);
				if ((key = json_string_value(f)) == NULL) {
					plan_problem(p, WB_E_SPEC, sl->name,
					    wname, NULL, "%s.from: keys are "
					    "strings", wpath);
					pw->bad = 1;
					continue;
				}
				idx = plan_map_get(&w->keys, key);
				if (idx < 0 || p->ignored[idx]) {
					plan_problem(p, WB_E_MAPPING, sl->name,
					    wname, key, "Custom '%s' %s: no "
					    "tensor '%s' in the archive",
					    sl->name, wname, key);
					json_array_append_new(json_object_get(
					    p->report, "missing"), json_pack(
					    "{s:s, s:s, s:s}", "layer", sl->name,
					    "weight", wname, "key", key));
					pw->bad = 1;
					continue;
				}
				plan_add_source(w, pw, idx);
			}
		} else {
			plan_problem(p, WB_E_SPEC, sl->name, wname, NULL,
			    "%s.from: a key or an array of 1 to %d keys", wpath,
			    XF_MAX_SOURCES);
			pw->bad = 1;
		}
		if (plan_custom_recipe(jw, &pw->recipe, &e) != 0) {
			plan_problem(p, e.code, sl->name, wname, NULL, "%s: %s",
			    wpath, e.msg);
			pw->bad = 1;
		}
		if (pw->nsrc == 0)
			pw->bad = 1;
		if (json_object_get(jw, "expect") != NULL) {
			json_t *ex = json_pack("{s:O}", wname,
			    json_object_get(jw, "expect"));

			plan_user_expect(p, l, ex, wpath);
			json_decref(ex);
		}
	}
	return plan_finish_layer(w, l, sl->j, path, NULL);
}

/* "layer$1_$2" with captures of subject. */
static int
plan_expand_name(const char *tmpl, const char *subject,
    const regmatch_t *m, size_t nm, char *out, size_t len)
{
	size_t o = 0;
	const char *t;

	for (t = tmpl; *t != '\0'; t++) {
		if (*t == '$' && t[1] >= '0' && t[1] <= '9') {
			size_t g = (size_t)(t[1] - '0'), n;

			t++;
			if (g >= nm || m[g].rm_so < 0)
				return -1;
			n = (size_t)(m[g].rm_eo - m[g].rm_so);
			if (o + n >= len)
				return -1;
			memcpy(out + o, subject + m[g].rm_so, n);
			o += n;
			continue;
		}
		if (*t == '$' && t[1] == '$')
			t++;
		if (o + 1 >= len)
			return -1;
		out[o++] = *t;
	}
	out[o] = '\0';
	return 0;
}

static int
plan_auto_layer(struct plan_ctx *w, const struct spec_layer *sl,
    const char *path, const char *name, size_t pfx)
{
	const char *params[64];
	struct xf_shape shapes[64];
	const struct preset *pr;
	char why[256];
	size_t n = 0;
	long e;
	int certain;

	for (e = w->pfx_first[pfx]; e >= 0 && n < 64; e = w->next[e]) {
		params[n] = w->param[e];
		plan_entry_shape(&w->p->ix->e[e], &shapes[n]);
		n++;
	}
	pr = preset_infer(w->pfx[pfx], params, shapes, n, !w->seen_conv,
	    &certain, why, sizeof(why));
	if (pr == NULL) {
		plan_problem(w->p, WB_E_MAPPING, name, NULL, w->pfx[pfx],
		    "%s: cannot infer a layer type for '%s': %s; give this "
		    "module its own entry", path, w->pfx[pfx], why);
		return 0;
	}
	if (strncmp(pr->type, "Conv", 4) == 0 ||
	    strcmp(pr->type, "DepthwiseConv2D") == 0)
		w->seen_conv = 1;
	return plan_preset_layer(w, sl, path, name, pr->type, w->pfx[pfx], 1,
	    certain ? "type inferred" : why);
}

/* Has an earlier layer already read every tensor of prefix i? */
static int
plan_prefix_used(struct plan_ctx *w, size_t i)
{
	long e;

	for (e = w->pfx_first[i]; e >= 0; e = w->next[e])
		if (w->p->uses[e] == 0)
			return 0;
	return 1;
}

static int
plan_match_layer(struct plan_ctx *w, const struct spec_layer *sl,
    const char *path)
{
	regmatch_t m[PLAN_MATCH_MAX];
	char name[SPEC_MAX_NAME + 1];
	size_t i, hits = 0;
	int rc;

	for (i = 0; i < w->npfx; i++) {
		if (plan_map_get(&w->explicit, w->pfx[i]) >= 0)
			continue;	/* an explicit entry owns it */
		if (regexec(&sl->re, w->pfx[i], PLAN_MATCH_MAX, m, 0) != 0)
			continue;
		hits++;
		if (plan_prefix_used(w, i))
			continue;	/* e.g. attention's out_proj */
		if (plan_expand_name(sl->name, w->pfx[i], m, PLAN_MATCH_MAX,
		    name, sizeof(name)) != 0 || strchr(name, '/') != NULL) {
			plan_problem(w->p, WB_E_SPEC, sl->name, NULL, w->pfx[i],
			    "%s.name: '%s' does not expand to a valid name for "
			    "'%s' (captures are $1..$%zu)", path, sl->name,
			    w->pfx[i], sl->re.re_nsub);
			continue;
		}
		if (strcmp(sl->type, "auto") == 0)
			rc = plan_auto_layer(w, sl, path, name, i);
		else
			rc = plan_preset_layer(w, sl, path, name, sl->type,
			    w->pfx[i], 0, NULL);
		if (rc != 0)
			return rc;
		if (strncmp(sl->type, "Conv", 4) == 0)
			w->seen_conv = 1;
	}
	if (hits == 0)
		plan_problem(w->p, WB_E_MAPPING, sl->name, NULL, NULL,
		    "%s.match: '%s' matches no module prefix in the archive",
		    path, sl->match);
	return 0;
}

static int
plan_index(struct plan_ctx *w)
{
	struct plan *p = w->p;
	const struct spec *s = p->spec;
	size_t i, j, n = p->ix->n;

	p->skey = calloc(n ? n : 1, sizeof(*p->skey));
	p->ignored = calloc(n ? n : 1, 1);
	p->uses = calloc(n ? n : 1, sizeof(*p->uses));
	w->pfx = calloc(n ? n : 1, sizeof(*w->pfx));
	w->pfx_first = calloc(n ? n : 1, sizeof(*w->pfx_first));
	w->pfx_last = calloc(n ? n : 1, sizeof(*w->pfx_last));
	w->next = calloc(n ? n : 1, sizeof(*w->next));
	w->param = calloc(n ? n : 1, sizeof(*w->param));
	if (!p->skey || !p->ignored || !p->uses || !w->pfx || !w->pfx_first ||
	    !w->pfx_last || !w->next || !w->param ||
	    plan_map_init(&w->keys, n) ||
	    plan_map_init(&w->pmap, n) ||
	    plan_map_init(&w->explicit, s->nlayers))
		return wb_err_set(w->err, WB_E_NOMEM, "out of memory");
	for (i = 0; i < s->nlayers; i++) {
		const char *f = s->layers[i].from;
		size_t sl;

		if (f == NULL || s->layers[i].match != NULL)
			continue;
		sl = plan_map_slot(&w->explicit, f);
		w->explicit.key[sl] = f;
		w->explicit.val[sl] = (long)i;
	}
	for (i = 0; i < n; i++) {
		const char *k = p->ix->e[i].key, *dot;
		size_t slot;
		long tail;

		for (j = 0; j < s->nstrip; j++) {
			size_t l = strlen(s->strip[j]);

			if (strncmp(k, s->strip[j], l) == 0) {
				k += l;
				break;
			}
		}
		/* Stripping drops a prefix: the rest of the key is it. */
		p->skey[i] = k;
		w->next[i] = -1;
		for (j = 0; j < s->nignore; j++)
			if (fnmatch(s->ignore[j], p->ix->e[i].key, 0) == 0 ||
			    fnmatch(s->ignore[j], p->skey[i], 0) == 0)
				p->ignored[i] = 1;
		slot = plan_map_slot(&w->keys, p->skey[i]);
		if (w->keys.key[slot] != NULL) {
			plan_problem(p, WB_E_MAPPING, NULL, NULL, p->skey[i],
			    "tensors '%s' and '%s' both become '%s' after "
			    "strip_prefixes", p->ix->e[w->keys.val[slot]].key,
			    p->ix->e[i].key, p->skey[i]);
			continue;
		}
		w->keys.key[slot] = p->skey[i];
		w->keys.val[slot] = (long)i;
		if (p->ignored[i])
			continue;
		/* Split "a.b.weight" into prefix "a.b" and param "weight";
		 * a parametrization belongs to the module that owns it. */
		dot = strstr(p->skey[i], ".parametrizations.");
		if (dot == NULL)
			dot = strrchr(p->skey[i], '.');
		w->param[i] = dot ? dot + 1 : p->skey[i];
		{
			size_t plen = dot ? (size_t)(dot - p->skey[i]) : 0;
			char buf[256], *pfx = buf;

			/* Look the prefix up before keeping a copy of it. */
			if (plen >= sizeof(buf) && (pfx = plan_strndup(&w->tmp,
			    p->skey[i], plen)) == NULL)
				return wb_err_set(w->err, WB_E_NOMEM,
				    "out of memory");
			if (pfx == buf) {
				memcpy(buf, p->skey[i], plen);
				buf[plen] = '\0';
			}
			slot = plan_map_slot(&w->pmap, pfx);
			if (w->pmap.key[slot] == NULL) {
				if (pfx == buf && (pfx = plan_strndup(&w->tmp,
				    buf, plen)) == NULL)
					return wb_err_set(w->err, WB_E_NOMEM,
					    "out of memory");
				w->pfx[w->npfx] = pfx;
				w->pfx_first[w->npfx] = (long)i;
				w->pfx_last[w->npfx] = (long)i;
				w->pmap.key[slot] = pfx;
				w->pmap.val[slot] = (long)w->npfx++;
				continue;
			}
			/* Append to the prefix's list of entries. */
			tail = w->pfx_last[w->pmap.val[slot]];
			w->next[tail] = (long)i;
			w->pfx_last[w->pmap.val[slot]] = (long)i;
		}
	}
	return 0;
}

/* Keras group paths, unique names. */
static void
plan_groups(struct plan_ctx *w)
{
	struct plan *p = w->p;
	struct plan_map names, counts;
	size_t i;
	char buf[512];

	memset(&names, 0, sizeof(names));
	memset(&counts, 0, sizeof(counts));
	if (plan_map_init(&names, p->nlayers) != 0 ||
	    plan_map_init(&counts, p->nlayers) != 0) {
		wb_err_set(w->err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < p->nlayers; i++) {
		struct plan_layer *l = &p->l[i];
		size_t slot = plan_map_slot(&names, l->name), j;

		if (names.key[slot] != NULL)
			plan_problem(p, WB_E_SPEC, l->name, NULL, NULL,
			    "two layers are named '%s'; Keras layer names are "
			    "unique", l->name);
		else {
			names.key[slot] = l->name;
			names.val[slot] = (long)i;
		}
		if (p->format == KH5_LEGACY) {
			l->group = l->name;
		} else if (l->keras3_path != NULL) {
			l->group = plan_strdup(&p->arena, l->keras3_path);
		} else {
			const char *snake = l->snake;
			long c;

			if (snake == NULL) {
				plan_problem(p, WB_E_SPEC, l->name, NULL, NULL,
				    "layer '%s' (%s) needs \"keras3_path\" "
				    "(e.g. \"layers/my_layer\") in the keras3 "
				    "format", l->name, l->type);
				snake = "custom";
			}
			slot = plan_map_slot(&counts, snake);
			c = counts.key[slot] ? counts.val[slot] : 0;
			if (counts.key[slot] == NULL)
				counts.key[slot] = snake;
			counts.val[slot] = c + 1;
			if (c == 0)
				snprintf(buf, sizeof(buf), "layers/%s", snake);
			else
				snprintf(buf, sizeof(buf), "layers/%s_%ld",
				    snake, c);
			l->group = plan_strdup(&p->arena, buf);
		}
		if (l->group == NULL) {
			wb_err_set(w->err, WB_E_NOMEM, "out of memory");
			goto out;
		}
		for (j = 0; j < l->nw; j++) {
			struct plan_weight *pw = &l->w[j];
			size_t k, nth = 0;
			char *np;

			/* Keras 3 numbers variables per (sub)layer. */
			for (k = 0; k < j; k++)
				if ((pw->sub == NULL && l->w[k].sub == NULL) ||
				    (pw->sub != NULL && l->w[k].sub != NULL &&
				    strcmp(pw->sub, l->w[k].sub) == 0))
					nth++;
			if (p->format == KH5_LEGACY)
				snprintf(buf, sizeof(buf), "%s/%s%s%s:0", l->name,
				    pw->sub ? pw->sub : "", pw->sub ? "/" : "",
				    pw->path);
			else
				snprintf(buf, sizeof(buf), "%s%svars/%zu",
				    pw->sub ? pw->sub : "", pw->sub ? "/" : "",
				    nth);
			if ((np = plan_strdup(&p->arena, buf)) == NULL) {
				wb_err_set(w->err, WB_E_NOMEM, "out of memory");
				goto out;
			}
			pw->path = np;
		}
	}
out:
	plan_map_free(&names);
	plan_map_free(&counts);
}

/* Warnings a user needs: eps defaults, Dense after convs with no flatten. */
static void
plan_advice(struct plan_ctx *w)
{
	struct plan *p = w->p;
	const struct preset *seen[16];
	size_t nseen = 0, i, j;
	uint64_t conv_out = 0;
	int f64 = 0;

	for (i = 0; i < p->nlayers; i++) {
		struct plan_layer *l = &p->l[i];
		const struct preset *pr = preset_find(l->type);

		for (j = 0; j < l->nw; j++) {
			int s;

			for (s = 0; s < l->w[j].nsrc; s++)
				if (strcmp(npy_dtype_name(&p->ix->e[
				    l->w[j].src[s]].hdr), "float32") != 0)
					f64 = 1;
		}
		if (pr == NULL)
			continue;
		if (pr->advice != NULL) {
			for (j = 0; j < nseen && seen[j] != pr; j++)
				;
			if (j == nseen && nseen < 16) {
				seen[nseen++] = pr;
				plan_warning(p, NULL, "%s: %s", pr->type,
				    pr->advice);
			}
		}
		if (pr->kernel_ndim >= 3 && l->nw > 0 && l->w[0].nsrc > 0)
			conv_out = l->w[0].in[0].d[0];
		if (strcmp(pr->type, "Dense") == 0 && (l->nw == 0 ||
		    l->w[0].bad)) {
			conv_out = 0;	/* its own problem is reported */
			continue;
		}
		if (strcmp(pr->type, "Dense") == 0 && conv_out > 0 &&
		    l->nw > 0 && l->w[0].in[0].ndim == 2) {
			uint64_t in = l->w[0].in[0].d[1];
			char desc[256];
			int flat;

			xf_describe(&l->w[0].recipe, desc, sizeof(desc));
			flat = strstr(desc, "reshape") != NULL;

			if (!flat && in != conv_out && in % conv_out == 0)
				plan_warning(p, l->name, "Dense '%s' follows "
				    "convolutions with %llu channels and has "
				    "%llu inputs: if PyTorch flattened an NCHW "
				    "map here, add \"flatten\": {\"chw\": "
				    "[%llu, H, W]} with H*W = %llu, or the rows "
				    "will be silently in the wrong order",
				    l->name, (unsigned long long)conv_out,
				    (unsigned long long)in,
				    (unsigned long long)conv_out,
				    (unsigned long long)(in / conv_out));
			conv_out = 0;
		}
	}
	if (f64)
		plan_warning(p, NULL, "some source tensors are not float32 "
		    "(see each weight's dtype); they are converted to float32, "
		    "the dtype of Keras variables");
}

static void
plan_unused(struct plan_ctx *w)
{
	struct plan *p = w->p;
	json_t *unused = json_object_get(p->report, "unused");
	json_t *ignored = json_object_get(p->report, "ignored");
	size_t i, n = 0;

	for (i = 0; i < p->ix->n; i++) {
		if (p->ignored[i]) {
			json_array_append_new(ignored,
			    json_string(p->ix->e[i].key));
			continue;
		}
		if (p->uses[i] > 0)
			continue;
		json_array_append_new(unused, plan_entry_json(p, (long)i));
		n++;
		if (p->spec->unmapped == SPEC_UNMAPPED_ERROR)
			plan_problem(p, WB_E_MAPPING, NULL, NULL,
			    p->ix->e[i].key, "tensor '%s' is not used by any "
			    "layer (set \"unmapped\": \"warn\" or add it to "
			    "source.ignore if that is intended)",
			    p->ix->e[i].key);
	}
	if (n > 0 && p->spec->unmapped == SPEC_UNMAPPED_WARN)
		plan_warning(p, NULL, "%zu source tensors are not used by any "
		    "layer (listed under \"unused\")", n);
}

int
plan_build(const struct npz_index *ix, const struct spec *spec,
    const char *format, struct plan **out, struct wb_err *err)
{
	struct plan_ctx w;
	struct plan *p;
	size_t i;
	int rc = 0;

	memset(&w, 0, sizeof(w));
	w.err = err;
	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return wb_err_set(err, WB_E_NOMEM, "out of memory");
	*out = p;
	w.p = p;
	p->ix = ix;
	p->spec = spec;
	if (format == NULL)
		format = spec->format;
	p->format = strcmp(format, "keras3") == 0 ? KH5_KERAS3 : KH5_LEGACY;
	p->report = json_pack("{s:i, s:s, s:s, s:{s:i, s:I}, s:[], s:[], "
	    "s:[], s:[], s:[], s:[]}", "weightbridge_report", 1, "status",
	    "failed", "format", format, "source", "tensors", (int)ix->n,
	    "bytes", (json_int_t)ix->total_bytes, "layers", "unused",
	    "ignored", "missing", "problems", "warnings");
	if (p->report == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	p->problems = json_object_get(p->report, "problems");
	p->warnings = json_object_get(p->report, "warnings");
	if ((rc = plan_index(&w)) != 0)
		goto out;
	for (i = 0; i < spec->nlayers; i++) {
		const struct spec_layer *sl = &spec->layers[i];
		char path[64];
		size_t before = p->nlayers, k;

		snprintf(path, sizeof(path), "layers[%zu]", i);
		if (strcmp(sl->type, "Custom") == 0)
			rc = plan_custom_layer(&w, sl, path);
		else if (sl->match != NULL)
			rc = plan_match_layer(&w, sl, path);
		else
			rc = plan_preset_layer(&w, sl, path, sl->name,
			    sl->type, sl->from, 0, NULL);
		if (rc != 0)
			goto out;
		for (k = before; k < p->nlayers; k++) {
			const json_t *kp = json_object_get(sl->j,
			    "keras3_path");

			if (!p->l[k].finished)
				continue;	/* not in the report */
			p->l[k].spec_index = (long)i;
			if (json_is_string(kp) && sl->match == NULL)
				p->l[k].keras3_path = json_string_value(kp);
		}
	}
	plan_groups(&w);
	if (err->code != WB_OK) {
		rc = err->code;
		goto out;
	}
	plan_unused(&w);
	plan_advice(&w);
	if (p->nproblems > 0) {
		json_t *first = json_array_get(p->problems, 0);

		rc = wb_err_set(err, WB_E_MAPPING, "%zu problem%s; first: %s",
		    p->nproblems, p->nproblems == 1 ? "" : "s",
		    json_string_value(json_object_get(first, "message")));
	}
out:
	plan_map_free(&w.keys);
	plan_map_free(&w.pmap);
	plan_map_free(&w.explicit);
	plan_arena_free(w.tmp);
	free(w.pfx);
	free(w.pfx_first);
	free(w.pfx_last);
	free(w.next);
	free(w.param);
	return rc;
}

void
plan_free(struct plan *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nlayers; i++)
		free(p->l[i].w);
	free(p->l);
	plan_arena_free(p->arena);
	free(p->skey);
	free(p->ignored);
	free(p->uses);
	json_decref(p->report);
	free(p);
}

static json_t *
plan_weight_json(const struct plan *p, const struct plan_weight *pw)
{
	json_t *srcs = json_array(), *jw;
	const char *status = "ok";
	char desc[256];
	int s;

	for (s = 0; srcs != NULL && s < pw->nsrc; s++)
		json_array_append_new(srcs, plan_entry_json(p, pw->src[s]));
	xf_describe(&pw->recipe, desc, sizeof(desc));
	if (!pw->bad && pw->mismatch)
		status = "mismatch";
	else if (pw->bad)
		status = "error";
	jw = json_pack("{s:s, s:s, s:o, s:s, s:s}", "name", pw->name,
	    "path", pw->path ? pw->path : "", "sources", srcs, "transform",
	    desc, "dtype", "float32");
	if (jw == NULL)
		return NULL;
	json_object_set_new(jw, "shape", pw->bad ? json_null() :
	    plan_shape_json(&pw->out));
	json_object_set_new(jw, "expected", pw->has_expect ?
	    plan_shape_json(&pw->expect) : json_null());
	json_object_set_new(jw, "status", json_string(status));
	return jw;
}

int
plan_report_layers(struct plan *p, struct wb_err *err)
{
	json_t *layers, *jl, *jws, *jw;
	size_t i, j;

	if (p->layers_reported || p->report == NULL)
		return 0;
	p->layers_reported = 1;
	if ((layers = json_object_get(p->report, "layers")) == NULL)
		return 0;
	for (i = 0; i < p->nlayers; i++) {
		struct plan_layer *l = &p->l[i];

		if (!l->finished)
			continue;
		jws = json_array();
		jl = json_pack("{s:s, s:s, s:s, s:b, s:o}", "name", l->name,
		    "type", l->type, "from", l->from, "inferred", l->inferred,
		    "weights", jws);
		if (jl == NULL || json_array_append_new(layers, jl) != 0)
			return wb_err_set(err, WB_E_NOMEM, "out of memory");
		if (l->note != NULL)
			json_object_set_new(jl, "note", json_string(l->note));
		if (l->spec_index >= 0)
			json_object_set_new(jl, "spec_index",
			    json_integer((json_int_t)l->spec_index));
		if (l->keras3_path != NULL)
			json_object_set_new(jl, "keras3_path",
			    json_string(l->keras3_path));
		if (l->group != NULL)
			json_object_set_new(jl, "group", json_string(l->group));
		l->jl = jl;
		for (j = 0; j < l->nw; j++) {
			if ((jw = plan_weight_json(p, &l->w[j])) == NULL ||
			    json_array_append_new(jws, jw) != 0)
				return wb_err_set(err, WB_E_NOMEM,
				    "out of memory");
			l->w[j].jw = jw;
		}
	}
	return 0;
}

json_t *
plan_take_report(struct plan *p)
{
	json_t *r;

	(void)plan_report_layers(p, NULL);
	r = p->report;
	p->report = NULL;
	return r;
}

int
plan_layout(const struct plan *p, struct kh5_layer **layers,
    struct kh5_weight **weights, struct wb_err *err)
{
	struct kh5_layer *kl;
	struct kh5_weight *kw;
	size_t i, j, n = 0, k = 0;

	for (i = 0; i < p->nlayers; i++)
		n += p->l[i].nw;
	kl = calloc(p->nlayers ? p->nlayers : 1, sizeof(*kl));
	kw = calloc(n ? n : 1, sizeof(*kw));
	if (kl == NULL || kw == NULL) {
		free(kl);
		free(kw);
		return wb_err_set(err, WB_E_NOMEM, "out of memory");
	}
	for (i = 0; i < p->nlayers; i++) {
		kl[i].name = p->l[i].group;
		kl[i].nweights = p->l[i].nw;
		kl[i].w = &kw[k];
		for (j = 0; j < p->l[i].nw; j++, k++) {
			kw[k].path = p->l[i].w[j].path;
			kw[k].ndim = p->l[i].w[j].out.ndim;
			kw[k].shape = p->l[i].w[j].out.d;
		}
	}
	*layers = kl;
	*weights = kw;
	return 0;
}
