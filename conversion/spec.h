/*
 * spec: the mapping spec (docs/spec.md), parsed and validated.
 *
 * A spec is JSON and a public contract.  Parsing checks every field's type
 * and value and refuses unknown fields (a typo must not be silently
 * ignored); all structural problems are collected, each naming its JSON
 * path, e.g. `layers[3].type`.  Regexes of `match` entries are compiled here
 * so a bad pattern is reported with the spec, not during planning.
 */
#ifndef SPEC_H
#define SPEC_H

#include <regex.h>
#include <stddef.h>

#include <jansson.h>

#include "wb_err.h"

#define SPEC_VERSION		1
#define SPEC_MAX_BYTES		(4u << 20)	/* spec documents are small */
#define SPEC_MAX_LAYERS		100000
#define SPEC_MAX_REGEX		1024		/* bytes in a `match` pattern */
#define SPEC_REGEX_COST		20000		/* expanded size of a pattern */
#define SPEC_REGEX_DEPTH	32		/* nesting of its groups */
#define SPEC_MAX_NAME		256		/* bytes in a layer/weight name */

enum spec_unmapped {
	SPEC_UNMAPPED_ERROR,
	SPEC_UNMAPPED_WARN,
	SPEC_UNMAPPED_IGNORE
};

struct spec_layer {
	const json_t	*j;		/* borrowed from the spec's root */
	const char	*name;		/* NULL only if missing (a problem) */
	const char	*type;
	const char	*from;		/* NULL for match / Custom entries */
	const char	*match;
	regex_t		 re;
	int		 has_re;
};

struct spec {
	json_t		*root;		/* owned (one reference) */
	int		 version;
	const char	*format;	/* "keras-h5" | "keras3" */
	const char	*keras_version;	/* legacy root attribute */
	const char	*backend;
	const char	**strip;	/* strip_prefixes */
	size_t		 nstrip;
	const char	**ignore;	/* fnmatch globs, num_batches_tracked included */
	size_t		 nignore;
	enum spec_unmapped unmapped;
	size_t		 nlayers;
	struct spec_layer *layers;
};

/*
 * Parse root (the spec takes its own reference).  Every problem found is
 * appended to problems (a JSON array of {"code","field","message"}) when it
 * is not NULL.  Returns 0, WB_E_SPEC (err holds the first problem) or
 * WB_E_NOMEM.  On success *out is owned by the caller.
 */
int	spec_parse(json_t *root, json_t *problems, struct spec **out,
	    struct wb_err *err);
void	spec_free(struct spec *s);

/*
 * Load a spec document from a file or a buffer (size-capped, duplicate keys
 * refused, the JSON error's line and column in the message).
 */
int	spec_load_file(const char *path, json_t **out, struct wb_err *err);
int	spec_load_buffer(const char *buf, size_t len, json_t **out,
	    struct wb_err *err);

/* Is `fmt` a known output format name? */
int	spec_format_valid(const char *fmt);

#endif
