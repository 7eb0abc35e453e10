/*
 * preset: the layer table.  One row per Keras layer type: which PyTorch
 * parameters it reads, which Keras variables it writes and in what order,
 * the transform each one needs, and the consistency checks of the layer.
 *
 * Adding a layer type is a row in preset.c (plus, for an unusual shape
 * rule, a check function) and a test.  The table is also what `template`
 * and `"type": "auto"` use to guess a layer from its parameter names.
 */
#ifndef PRESET_H
#define PRESET_H

#include <stddef.h>

#include <jansson.h>

#include "xform.h"

#define PRESET_MAX_PARAMS 8

enum preset_recipe {
	PR_COPY,	/* identity */
	PR_DENSE,	/* W.T, or the flatten row permutation */
	PR_CONV,	/* move axis 0 (out) last and axis 1 (in) second-to-last */
	PR_DEPTHWISE,	/* reshape (C*M,1,k..) -> (C,M,k..), then k.. first */
	PR_CONVT,	/* (I, O/g, k..) -> block diagonal (I, O, k..) -> (k.., O, I) */
	PR_CHANNELS_LAST, /* LayerNorm over (C, H, W): gamma (H, W, C) */
	PR_PRELU	/* (C) -> (1, .., 1, C) for the input rank */
};

struct preset_param {
	const char	*keras;		/* Keras 3 variable name */
	const char	*legacy;	/* tf-keras dataset name when it differs */
	const char	*param;		/* PyTorch parameter suffix */
	int		 optional;
	enum preset_recipe recipe;
};

struct plan;
struct plan_ctx;
struct plan_layer;

struct preset {
	const char	*type;		/* "Conv2D" */
	const char	*snake;		/* Keras 3 group key: "conv2d" */
	int		 kernel_ndim;	/* source weight rank it needs; 0 = any */
	struct preset_param params[PRESET_MAX_PARAMS];
	const char	*options[8];	/* extra spec fields it accepts */
	/* Layer-level checks; sets expected shapes, reports problems. */
	void		(*check)(struct plan *p, struct plan_layer *l,
			    const json_t *entry);
	const char	*advice;	/* said once per conversion (eps, ...) */
	/* Builds the layer's weights itself (RNNs, attention); NULL = the
	 * generic builder over params. */
	void		(*build)(struct plan_ctx *c, struct plan_layer *l,
			    const json_t *entry);
};

/* The row for a type name, or NULL. */
const struct preset *preset_find(const char *type);

/* "Dense, Conv1D, ..." for error messages. */
const char *preset_list(void);

/* Does this preset take the spec field `key`? (common fields always) */
int	preset_takes(const struct preset *pr, const char *key);

/*
 * Build the recipe of parameter `pp` given the layer's spec entry and the
 * source shape.  Returns 0, or WB_E_SPEC / WB_E_MAPPING with a message.
 */
int	preset_recipe(const struct preset *pr, const struct preset_param *pp,
	    const json_t *entry, const struct xf_shape *src,
	    struct xf_recipe *r, struct wb_err *err);

/*
 * Guess the preset for a module from its parameter names and shapes.
 * Returns NULL if nothing fits.  *certain is 0 when another type would fit
 * the same tensors (e.g. a 4-D kernel with one input channel: a depthwise
 * conv or a conv on a one-channel input); why says what was assumed.
 * first_conv is 1 if no convolution came earlier in the archive.
 */
const struct preset *preset_infer(const char *prefix, const char **params,
	    const struct xf_shape *shapes, size_t n, int first_conv,
	    int *certain, char *why, size_t whylen);

#endif
