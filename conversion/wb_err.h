/*
 * wb_err: the one error type of weightbridge.
 *
 * Every fallible function takes a `struct wb_err *` as its last argument and
 * returns 0 on success or the error code on failure.  The code is stable and
 * machine-readable (it becomes the problem+json `type` over HTTP and picks the
 * CLI exit status); the message is for people and names the tensor, field or
 * byte offset that is wrong.  The first error set wins: later calls to
 * wb_err_set() on an already-set error are ignored, so the innermost, most
 * specific message survives.
 */
#ifndef WB_ERR_H
#define WB_ERR_H

#include <stdarg.h>

enum wb_code {
	WB_OK = 0,
	WB_E_USAGE,	/* bad arguments to a command or function (client) */
	WB_E_NOTFOUND,	/* an input file or resource does not exist (client) */
	WB_E_ARCHIVE,	/* the .npz is not a readable zip archive (client) */
	WB_E_NPY,	/* a member is not a valid .npy (client) */
	WB_E_DTYPE,	/* a dtype we refuse: pickles, complex, strings (client) */
	WB_E_LIMIT,	/* a configured cap was exceeded (client) */
	WB_E_SPEC,	/* the mapping spec is malformed (client) */
	WB_E_MAPPING,	/* the spec does not fit the archive (client) */
	WB_E_CANCELLED,	/* the caller asked us to stop */
	WB_E_IO,	/* reading or writing our own files failed (server) */
	WB_E_NOMEM,	/* allocation failed (server) */
	WB_E_OUTPUT,	/* HDF5 writing or verification failed (server) */
	WB_E_INTERNAL,	/* a bug (server) */
	WB_E__COUNT
};

#define WB_ERR_MSG_MAX 512

struct wb_err {
	enum wb_code	 code;
	char		 msg[WB_ERR_MSG_MAX];
	const char	*file;	/* where it was found, for server-side faults */
	int		 line;
};

/* Set err (if not already set) and return code.  err may be NULL. */
int	wb_err_set_at(struct wb_err *err, const char *file, int line,
	    enum wb_code code, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));
#define wb_err_set(err, code, ...) \
	wb_err_set_at((err), __FILE__, __LINE__, (code), __VA_ARGS__)

void	wb_err_clear(struct wb_err *err);

/* Stable short name of a code, e.g. "npy-invalid".  Never NULL. */
const char *wb_err_name(enum wb_code code);

/* A one-line title for people, e.g. "Invalid .npy member". */
const char *wb_err_title(enum wb_code code);

/* 1 if the caller's input is to blame (HTTP 4xx, CLI exit 2). */
int	wb_err_is_client(enum wb_code code);

#endif
