/*
 * wb_err: stable error codes plus a message buffer.  See wb_err.h.
 */
#include <stdio.h>
#include <string.h>

#include "wb_err.h"

static const struct {
	const char	*name;
	const char	*title;
	int		 client;
} wb_err_table[WB_E__COUNT] = {
	[WB_OK] =		{ "ok",			"Success", 0 },
	[WB_E_USAGE] =		{ "usage",		"Invalid request", 1 },
	[WB_E_NOTFOUND] =	{ "not-found",		"Not found", 1 },
	[WB_E_ARCHIVE] =	{ "archive-invalid",	"Invalid .npz archive", 1 },
	[WB_E_NPY] =		{ "npy-invalid",	"Invalid .npy member", 1 },
	[WB_E_DTYPE] =		{ "dtype-unsupported",	"Unsupported dtype", 1 },
	[WB_E_LIMIT] =		{ "limit-exceeded",	"Limit exceeded", 1 },
	[WB_E_SPEC] =		{ "spec-invalid",	"Invalid mapping spec", 1 },
	[WB_E_MAPPING] =	{ "mapping-failed",	"Mapping does not fit the weights", 1 },
	[WB_E_CANCELLED] =	{ "cancelled",		"Cancelled", 1 },
	[WB_E_IO] =		{ "io-error",		"I/O error", 0 },
	[WB_E_NOMEM] =		{ "out-of-memory",	"Out of memory", 0 },
	[WB_E_OUTPUT] =		{ "output-failed",	"Writing the weight file failed", 0 },
	[WB_E_INTERNAL] =	{ "internal",		"Internal error", 0 },
};

int
wb_err_set_at(struct wb_err *err, const char *file, int line,
    enum wb_code code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || err->code != WB_OK)
		return code;
	err->code = code;
	err->file = file;
	err->line = line;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

void
wb_err_clear(struct wb_err *err)
{
	if (err == NULL)
		return;
	memset(err, 0, sizeof(*err));
}

const char *
wb_err_name(enum wb_code code)
{
	if ((unsigned)code >= WB_E__COUNT)
		return "internal";
	return wb_err_table[code].name;
}

const char *
wb_err_title(enum wb_code code)
{
	if ((unsigned)code >= WB_E__COUNT)
		return "Internal error";
	return wb_err_table[code].title;
}

int
wb_err_is_client(enum wb_code code)
{
	if ((unsigned)code >= WB_E__COUNT)
		return 0;
	return wb_err_table[code].client;
}
