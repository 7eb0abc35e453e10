/*
 * plan: match a mapping spec against an archive's tensor list.
 *
 * The planner needs only the index (names, dtypes, shapes), never tensor
 * data, so a dry run, the shape report and every mapping error come before a
 * single byte is inflated.  It expands `match` entries, picks (or infers) a
 * preset for each layer, resolves every target weight to its source keys and
 * a transform recipe, computes and checks the final shapes, and records all
 * problems in the report instead of stopping at the first.
 *
 * The plan owns its layers and weights; the index and spec it was built from
 * must outlive it.  The report (a jansson object) is owned by the plan until
 * the caller takes it with plan_take_report().  Problems, warnings and the
 * tensor lists go into the report as planning finds them; the per-layer
 * part only when asked for (plan_report_layers), because for tens of
 * thousands of weights it costs more memory than the plan itself.
 */
#ifndef PLAN_H
#define PLAN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kh5.h"
#include "npz.h"
#include "spec.h"
#include "wb_err.h"
#include "xform.h"

struct plan_weight {
	const char	*name;		/* Keras variable name: "kernel" */
	const char	*path;		/* dataset path inside the layer group */
	const char	*sub;		/* sublayer path ("cell", "forward_layer/cell") or NULL */
	int		 nsrc;
	long		 src[XF_MAX_SOURCES];	/* index entries */
	struct xf_shape	*in;		/* nsrc shapes (at least one slot) */
	const struct xf_shape *base;	/* the tensor the layer checks see:
					   in[0], or v of a weight norm */
	struct xf_recipe recipe;
	struct xf_shape	 out;		/* final shape */
	int		 has_expect;
	struct xf_shape	 expect;	/* what the Keras layer requires */
	int		 bad;		/* a problem was reported for it */
	int		 mismatch;	/* final shape is not what Keras needs */
	int		 capsrc;	/* slots in in[] */
	json_t		*jw;		/* borrowed: its object in the report,
					   once plan_report_layers() made it */
};

struct plan_layer {
	const char	*name;		/* Keras layer name */
	const char	*type;		/* preset name */
	const char	*from;		/* source prefix, after stripping */
	const char	*group;		/* HDF5 group path of the layer */
	const char	*snake;		/* Keras 3 class key if not the preset's ("bidirectional") */
	const char	*note;		/* for the report, or NULL */
	const char	*keras3_path;	/* the spec entry's, or NULL */
	long		 spec_index;	/* its spec entry, -1 until known */
	int		 inferred;	/* type came from "auto" */
	int		 finished;	/* planned to the end: it is reported */
	size_t		 nw, capw;
	struct plan_weight *w;		/* grows while the layer is planned:
					   a weight pointer is good until the
					   layer's next weight is added */
	json_t		*jl;		/* borrowed: its object in the report */
};

/* Strings and small arrays of a plan, freed together with it. */
struct plan_arena;

struct plan {
	const struct npz_index *ix;
	const struct spec *spec;
	enum kh5_format	 format;
	size_t		 nlayers, caplayers;
	struct plan_layer *l;
	const char	**skey;		/* per index entry: key after strip_prefixes */
	uint8_t		*ignored;	/* per index entry */
	uint32_t	*uses;		/* per index entry: weights reading it */
	size_t		 nproblems;
	int		 layers_reported; /* plan_report_layers() ran */
	struct plan_arena *arena;
	json_t		*report;
	json_t		*problems, *warnings;	/* borrowed from report */
};

/*
 * Build the plan.  format overrides the spec's target.format when not NULL.
 * Returns 0 when the plan has no problems, WB_E_MAPPING (or WB_E_SPEC) when
 * it has some (they are all in the report; err holds the first), or another
 * code for internal failures.  *out is set whenever it could be allocated,
 * even on failure, so the caller can take the report.
 */
int	plan_build(const struct npz_index *ix, const struct spec *spec,
	    const char *format, struct plan **out, struct wb_err *err);
void	plan_free(struct plan *p);

/*
 * The report's "layers" array is filled on demand: a conversion nobody
 * reads a report of never builds one.  plan_report_layers() fills it
 * (once; later calls do nothing) and sets every layer's jl and weight's
 * jw.  Returns 0 or WB_E_NOMEM (err set), when the report is incomplete.
 */
int	plan_report_layers(struct plan *p, struct wb_err *err);

/* Fill the layers and hand the report to the caller (who then owns it). */
json_t	*plan_take_report(struct plan *p);

/*
 * Record a problem in the report.  layer/weight/key may be NULL.  code is a
 * wb_code; the message names the tensor or field.  Counted in nproblems.
 */
void	plan_problem(struct plan *p, enum wb_code code, const char *layer,
	    const char *weight, const char *key, const char *fmt, ...)
	    __attribute__((format(printf, 6, 7)));
void	plan_warning(struct plan *p, const char *layer, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/* The kh5 layout of the plan.  Pointers borrow from p. */
int	plan_layout(const struct plan *p, struct kh5_layer **layers,
	    struct kh5_weight **weights, struct wb_err *err);

/* Index entry for a (stripped) key, or -1. */
long	plan_find(const struct plan *p, const char *key);

/*
 * For presets that build their own weights (RNNs, attention, ...): the
 * planner's working state, and what a build hook may do with it.
 */
struct plan_ctx;

struct plan	*plan_ctx_plan(struct plan_ctx *c);
/* The entry of a (stripped, not ignored) key, or -1. */
long	plan_ctx_key(struct plan_ctx *c, const char *key);
/* Add a weight reading src[0..nsrc-1]; sub is the Keras 3 sublayer path. */
struct plan_weight *plan_ctx_weight(struct plan_ctx *c, struct plan_layer *l,
	    const char *name, const char *sub, const long *src, int nsrc);
/*
 * Add a weight read from parameter `param` of module `from`, accepting a
 * weight-norm pair for "weight" (folded first; base is then v's shape).
 * Returns NULL if the tensor is absent: reported as missing when required.
 */
struct plan_weight *plan_ctx_param(struct plan_ctx *c, struct plan_layer *l,
	    const char *name, const char *sub, const char *from,
	    const char *param, int required);
/* Report a required tensor that is not in the archive. */
void	plan_ctx_missing(struct plan_ctx *c, struct plan_layer *l,
	    const char *weight, const char *key);

#endif
