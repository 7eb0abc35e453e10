/*
 * spec: parsing and validating the mapping spec.  See spec.h and
 * docs/spec.md.
 *
 * Validation here is structural: types, allowed values, unknown keys,
 * regexes.  Whether a layer's options fit its preset and the archive is the
 * planner's business, because only the planner sees the tensors.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "spec.h"

/*
 * The keys of a Custom entry.  Preset entries are checked by the planner
 * against the preset's own option list (preset_takes), so the two lists
 * cannot drift apart.
 */
static const char *const spec_custom_keys[] = {
	"name", "type", "from", "note", "expect", "keras3_path", "weights",
	NULL
};

static const char *const spec_weight_keys[] = {
	"name", "from", "combine", "transform", "expect", "note", NULL
};

static int
spec_key_known(const char *key, const char *const *keys)
{
	if (key[0] == '_')	/* "_comment" and friends are for people */
		return 1;
	for (; *keys != NULL; keys++)
		if (strcmp(key, *keys) == 0)
			return 1;
	return 0;
}

struct spec_ctx {
	json_t		*problems;
	struct wb_err	*err;
	int		 n;
};

static void spec_bad(struct spec_ctx *c, const char *field, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

static void
spec_bad(struct spec_ctx *c, const char *field, const char *fmt, ...)
{
	char msg[WB_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->n++;
	wb_err_set(c->err, WB_E_SPEC, "spec: %s: %s", field, msg);
	if (c->problems != NULL)
		json_array_append_new(c->problems, json_pack("{s:s, s:s, s:s}",
		    "code", wb_err_name(WB_E_SPEC), "field", field,
		    "message", msg));
}

int
spec_format_valid(const char *fmt)
{
	return fmt != NULL &&
	    (strcmp(fmt, "keras-h5") == 0 || strcmp(fmt, "keras3") == 0);
}

static void
spec_unknown_keys(struct spec_ctx *c, const json_t *obj,
    const char *const *keys, const char *path)
{
	const char *k;
	json_t *v;
	char f[256];

	json_object_foreach((json_t *)obj, k, v) {
		if (spec_key_known(k, keys))
			continue;
		snprintf(f, sizeof(f), "%s%s%s", path, *path ? "." : "", k);
		spec_bad(c, f, "unknown field (see docs/spec.md)");
	}
}

static const char *
spec_string(struct spec_ctx *c, const json_t *obj, const char *key,
    const char *path, int required)
{
	json_t *v = json_object_get(obj, key);
	char f[256];

	snprintf(f, sizeof(f), "%s%s%s", path, *path ? "." : "", key);
	if (v == NULL) {
		if (required)
			spec_bad(c, f, "missing (required)");
		return NULL;
	}
	if (!json_is_string(v)) {
		spec_bad(c, f, "must be a string");
		return NULL;
	}
	return json_string_value(v);
}

/* A JSON array of strings into a NULL-free pointer array (borrowed). */
static int
spec_strings(struct spec_ctx *c, const json_t *arr, const char *path,
    const char ***out, size_t *n, const char *extra)
{
	size_t i, cnt = 0, cap;
	const char **v;
	char f[256];

	if (arr != NULL && !json_is_array(arr)) {
		spec_bad(c, path, "must be an array of strings");
		arr = NULL;
	}
	cap = (arr ? json_array_size(arr) : 0) + 1;
	if ((v = calloc(cap, sizeof(*v))) == NULL)
		return wb_err_set(c->err, WB_E_NOMEM, "out of memory");
	for (i = 0; arr != NULL && i < json_array_size(arr); i++) {
		json_t *s = json_array_get(arr, i);

		snprintf(f, sizeof(f), "%s[%zu]", path, i);
		if (!json_is_string(s)) {
			spec_bad(c, f, "must be a string");
			continue;
		}
		v[cnt++] = json_string_value(s);
	}
	if (extra != NULL)
		v[cnt++] = extra;
	*out = v;
	*n = cnt;
	return 0;
}

/*
 * glibc's regcomp copies a repeated expression once per repetition, so
 * stacked or nested quantifiers ("a++++", "((a{9}){9}){9}") grow its
 * automaton exponentially, and back-references make matching
 * backtrack without bound.  Before compiling, estimate the expanded size
 * (each atom 1, a group the sum of its parts, "+" doubling, "{n,m}"
 * multiplying by its largest count) and refuse what could not be compiled
 * and matched in bounded time and memory.  Names are matched against
 * module prefixes: nothing sensible comes near the limit.
 */
static int
spec_regex_bounded(struct spec_ctx *c, const char *re, const char *field)
{
	uint64_t stack[SPEC_REGEX_DEPTH + 1], atom = 0;
	const char *p;
	int depth = 0;

	stack[0] = 0;
	for (p = re; *p != '\0'; p++) {
		uint64_t mult = 0;

		switch (*p) {
		case '\\':
			if (p[1] >= '1' && p[1] <= '9') {
				spec_bad(c, field, "back-references (\\%c) are "
				    "not supported: they make matching take "
				    "unbounded time", p[1]);
				return -1;
			}
			if (p[1] != '\0')
				p++;
			stack[depth] += atom;
			atom = 1;
			continue;
		case '[':
			/* A bracket expression is one atom: "[]a]", "[^]a]". */
			p++;
			if (*p == '^')
				p++;
			if (*p == ']')
				p++;
			while (*p != '\0' && *p != ']')
				p++;
			if (*p == '\0')
				p--;
			stack[depth] += atom;
			atom = 1;
			continue;
		case '(':
			if (depth == SPEC_REGEX_DEPTH) {
				spec_bad(c, field, "groups nested more than %d "
				    "deep", SPEC_REGEX_DEPTH);
				return -1;
			}
			stack[depth] += atom;
			atom = 0;
			stack[++depth] = 0;
			continue;
		case ')':
			if (depth > 0) {
				atom = stack[depth] + atom;
				depth--;
			}
			continue;
		case '|':
			stack[depth] += atom;
			atom = 0;
			continue;
		case '*':
		case '?':
			mult = 1;
			break;
		case '+':
			mult = 2;
			break;
		case '{': {
			unsigned long a = 0, b = 0;
			char *end;

			a = strtoul(p + 1, &end, 10);
			b = a;
			if (*end == ',') {
				b = strtoul(end + 1, &end, 10);
				if (b == 0)
					b = a + 1;	/* "{n,}" is x{n}x* */
			}
			if (*end == '}') {
				p = end;
				mult = (a > b ? a : b) + 1;
				break;
			}
			/* Not a bound: a literal '{'. */
			stack[depth] += atom;
			atom = 1;
			continue;
		}
		default:
			stack[depth] += atom;
			atom = 1;
			continue;
		}
		/* A quantifier multiplies the atom before it. */
		atom = atom * mult > SPEC_REGEX_COST ? SPEC_REGEX_COST + 1 :
		    atom * mult;
		if (atom > SPEC_REGEX_COST)
			break;
	}
	while (depth > 0) {
		atom += stack[depth];
		depth--;
	}
	if (stack[0] + atom > SPEC_REGEX_COST) {
		spec_bad(c, field, "pattern too complex: stacked or nested "
		    "repetitions would expand it past %d states", SPEC_REGEX_COST);
		return -1;
	}
	return 0;
}

static void
spec_parse_layer(struct spec_ctx *c, struct spec_layer *l, size_t i)
{
	char path[64], f[160];
	const json_t *j = l->j;
	int rc;

	snprintf(path, sizeof(path), "layers[%zu]", i);
	if (!json_is_object(j)) {
		spec_bad(c, path, "must be an object");
		return;
	}
	l->name = spec_string(c, j, "name", path, 1);
	l->type = spec_string(c, j, "type", path, 1);
	l->from = spec_string(c, j, "from", path, 0);
	l->match = spec_string(c, j, "match", path, 0);
	if (l->name != NULL && (l->name[0] == '\0' ||
	    strlen(l->name) > SPEC_MAX_NAME || strchr(l->name, '/') != NULL)) {
		snprintf(f, sizeof(f), "%s.name", path);
		spec_bad(c, f, "'%s' is not a valid layer name (1 to %d bytes, "
		    "no '/')", l->name, SPEC_MAX_NAME);
	}
	if (l->from != NULL && l->match != NULL)
		spec_bad(c, path, "give either \"from\" or \"match\", not both");
	if (l->type != NULL && strcmp(l->type, "Custom") == 0) {
		spec_unknown_keys(c, j, spec_custom_keys, path);
		if (l->match != NULL)
			spec_bad(c, path, "a Custom layer cannot use \"match\"");
		if (!json_is_array(json_object_get(j, "weights"))) {
			snprintf(f, sizeof(f), "%s.weights", path);
			spec_bad(c, f, "a Custom layer needs a \"weights\" array");
		}
	} else if (l->type != NULL) {
		if (l->from == NULL && l->match == NULL)
			spec_bad(c, path, "needs \"from\" (a module prefix such "
			    "as \"features.0\") or \"match\" (a regex over "
			    "prefixes)");
		if (json_object_get(j, "weights") != NULL) {
			snprintf(f, sizeof(f), "%s.weights", path);
			spec_bad(c, f, "only Custom layers list \"weights\"");
		}
		if (strcmp(l->type, "auto") == 0 && l->match == NULL) {
			snprintf(f, sizeof(f), "%s.type", path);
			spec_bad(c, f, "\"auto\" is only allowed with \"match\"");
		}
	}
	if (l->match != NULL) {
		snprintf(f, sizeof(f), "%s.match", path);
		if (strlen(l->match) > SPEC_MAX_REGEX) {
			spec_bad(c, f, "pattern longer than %d bytes",
			    SPEC_MAX_REGEX);
			return;
		}
		if (spec_regex_bounded(c, l->match, f) != 0)
			return;
		rc = regcomp(&l->re, l->match, REG_EXTENDED);
		if (rc != 0) {
			char msg[128];

			regerror(rc, &l->re, msg, sizeof(msg));
			spec_bad(c, f, "bad regular expression '%s': %s",
			    l->match, msg);
			return;
		}
		l->has_re = 1;
		if (l->re.re_nsub > 9)
			spec_bad(c, f, "at most 9 capture groups ($1..$9)");
	}
	if (l->type != NULL && strcmp(l->type, "Custom") == 0) {
		const json_t *ws = json_object_get(j, "weights"), *w;
		size_t k;

		json_array_foreach(ws, k, w) {
			char wp[128];

			snprintf(wp, sizeof(wp), "%s.weights[%zu]", path, k);
			if (!json_is_object(w)) {
				spec_bad(c, wp, "must be an object");
				continue;
			}
			spec_unknown_keys(c, w, spec_weight_keys, wp);
			spec_string(c, w, "name", wp, 1);
			if (json_object_get(w, "from") == NULL) {
				snprintf(f, sizeof(f), "%s.from", wp);
				spec_bad(c, f, "missing (required)");
			}
		}
	}
}

int
spec_parse(json_t *root, json_t *problems, struct spec **out,
    struct wb_err *err)
{
	static const char *const top_keys[] = { "weightbridge_spec", "target",
	    "source", "unmapped", "layers", "note", NULL };
	static const char *const target_keys[] = { "format", "keras_version",
	    "backend", NULL };
	static const char *const source_keys[] = { "strip_prefixes", "ignore",
	    NULL };
	struct spec_ctx c = { problems, err, 0 };
	struct spec *s = NULL;
	const json_t *v, *target, *source, *layers;
	const char *u;
	size_t i;
	int rc = 0;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	s->root = json_incref(root);
	s->format = "keras-h5";
	s->keras_version = "2.15.0";
	s->backend = "tensorflow";
	if (!json_is_object(root)) {
		spec_bad(&c, "$", "the spec must be a JSON object");
		goto out;
	}
	spec_unknown_keys(&c, root, top_keys, "");
	v = json_object_get(root, "weightbridge_spec");
	if (v == NULL)
		spec_bad(&c, "weightbridge_spec", "missing (required; use 1)");
	else if (!json_is_integer(v) || json_integer_value(v) != SPEC_VERSION)
		spec_bad(&c, "weightbridge_spec", "unsupported version (this "
		    "build reads version %d)", SPEC_VERSION);
	s->version = SPEC_VERSION;

	target = json_object_get(root, "target");
	if (target != NULL && !json_is_object(target)) {
		spec_bad(&c, "target", "must be an object");
		target = NULL;
	}
	if (target != NULL) {
		const char *t;

		spec_unknown_keys(&c, target, target_keys, "target");
		if ((t = spec_string(&c, target, "format", "target", 0)) != NULL) {
			if (spec_format_valid(t))
				s->format = t;
			else
				spec_bad(&c, "target.format", "'%s' is not a "
				    "format (use \"keras-h5\" or \"keras3\")", t);
		}
		if ((t = spec_string(&c, target, "keras_version", "target", 0)))
			s->keras_version = t;
		if ((t = spec_string(&c, target, "backend", "target", 0)))
			s->backend = t;
	}

	source = json_object_get(root, "source");
	if (source != NULL && !json_is_object(source)) {
		spec_bad(&c, "source", "must be an object");
		source = NULL;
	}
	if (source != NULL)
		spec_unknown_keys(&c, source, source_keys, "source");
	if ((rc = spec_strings(&c, json_object_get(source, "strip_prefixes"),
	    "source.strip_prefixes", &s->strip, &s->nstrip, NULL)) != 0)
		goto out;
	/* BatchNorm's step counter is never a Keras weight. */
	if ((rc = spec_strings(&c, json_object_get(source, "ignore"),
	    "source.ignore", &s->ignore, &s->nignore,
	    "*num_batches_tracked")) != 0)
		goto out;

	s->unmapped = SPEC_UNMAPPED_ERROR;
	if ((u = spec_string(&c, root, "unmapped", "", 0)) != NULL) {
		if (strcmp(u, "error") == 0)
			s->unmapped = SPEC_UNMAPPED_ERROR;
		else if (strcmp(u, "warn") == 0)
			s->unmapped = SPEC_UNMAPPED_WARN;
		else if (strcmp(u, "ignore") == 0)
			s->unmapped = SPEC_UNMAPPED_IGNORE;
		else
			spec_bad(&c, "unmapped", "'%s' is not one of \"error\", "
			    "\"warn\", \"ignore\"", u);
	}

	layers = json_object_get(root, "layers");
	if (!json_is_array(layers) || json_array_size(layers) == 0) {
		spec_bad(&c, "layers", "must be a non-empty array of layer "
		    "entries");
		goto out;
	}
	if (json_array_size(layers) > SPEC_MAX_LAYERS) {
		spec_bad(&c, "layers", "more than %d entries", SPEC_MAX_LAYERS);
		goto out;
	}
	s->nlayers = json_array_size(layers);
	if ((s->layers = calloc(s->nlayers, sizeof(*s->layers))) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < s->nlayers; i++) {
		s->layers[i].j = json_array_get(layers, i);
		spec_parse_layer(&c, &s->layers[i], i);
	}
out:
	if (rc == 0 && c.n > 0)
		rc = WB_E_SPEC;
	if (rc != 0) {
		spec_free(s);
		s = NULL;
	}
	*out = s;
	return rc;
}

void
spec_free(struct spec *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nlayers; i++)
		if (s->layers[i].has_re)
			regfree(&s->layers[i].re);
	free(s->layers);
	free(s->strip);
	free(s->ignore);
	json_decref(s->root);
	free(s);
}

int
spec_load_buffer(const char *buf, size_t len, json_t **out,
    struct wb_err *err)
{
	json_error_t je;
	json_t *j;

	*out = NULL;
	if (len > SPEC_MAX_BYTES)
		return wb_err_set(err, WB_E_LIMIT, "spec is %zu bytes; the "
		    "limit is %u", len, SPEC_MAX_BYTES);
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (j == NULL)
		return wb_err_set(err, WB_E_SPEC,
		    "spec is not valid JSON: line %d, column %d: %s",
		    je.line, je.column, je.text);
	*out = j;
	return 0;
}

int
spec_load_file(const char *path, json_t **out, struct wb_err *err)
{
	struct stat st;
	FILE *f = NULL;
	char *buf = NULL;
	size_t got;
	int rc = 0;

	*out = NULL;
	if ((f = fopen(path, "rb")) == NULL) {
		rc = wb_err_set(err, errno == ENOENT ? WB_E_NOTFOUND : WB_E_IO,
		    "cannot open spec '%s': %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = wb_err_set(err, WB_E_USAGE, "spec '%s' is not a regular "
		    "file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > SPEC_MAX_BYTES) {
		rc = wb_err_set(err, WB_E_LIMIT, "spec '%s' is %lld bytes; the "
		    "limit is %u", path, (long long)st.st_size, SPEC_MAX_BYTES);
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	got = fread(buf, 1, (size_t)st.st_size, f);
	if (got != (size_t)st.st_size) {
		rc = wb_err_set(err, WB_E_IO, "short read on spec '%s'", path);
		goto out;
	}
	rc = spec_load_buffer(buf, got, out, err);
out:
	free(buf);
	if (f != NULL)
		fclose(f);
	return rc;
}
