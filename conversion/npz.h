/*
 * npz: reading .npz archives (zip of .npy members).
 *
 * Reading is done in two passes so that memory never holds the archive:
 *  1. npz_index_read() walks every member once, parses each .npy header
 *     (inflating only the first bytes of compressed members) and returns
 *     the tensor list with names, dtypes and shapes.  Planning uses only this.
 *  2. npz_reader_*() walks the members again in archive order and hands out
 *     each member's data; the converter writes each tensor where the plan
 *     puts it, so tensors are visited in archive order whatever the spec's
 *     order.
 * Both passes enforce the caps in struct npz_limits and check that every
 * member's data is exactly nelem * itemsize bytes long.
 */
#ifndef NPZ_H
#define NPZ_H

#include <stddef.h>
#include <stdint.h>

#include "npy.h"
#include "wb_err.h"

/* Safe defaults; every one can be raised or lowered by the caller. */
#define NPZ_DEF_MAX_MEMBERS	100000
#define NPZ_DEF_MAX_TENSOR	(4ULL << 30)	/* 4 GiB per tensor */
#define NPZ_DEF_MAX_TOTAL	(16ULL << 30)	/* 16 GiB uncompressed */
#define NPZ_DEF_MAX_RATIO	1000		/* uncompressed / compressed */
#define NPZ_NAME_MAX		1024		/* bytes in a member name */

struct npz_limits {
	uint64_t	 max_members;
	uint64_t	 max_tensor_bytes;
	uint64_t	 max_total_bytes;
	uint64_t	 max_ratio;	/* per member, for members > 1 MiB */
};

void	npz_limits_default(struct npz_limits *l);

enum npz_method {
	NPZ_STORED = 0,
	NPZ_DEFLATED = 8
};

struct npz_entry {
	char		*name;		/* member name, e.g. "fc.weight.npy" */
	char		*key;		/* name without ".npy": the state_dict key */
	struct npy_header hdr;
	enum npz_method	 method;
	uint64_t	 comp_size;	/* 0 if the archive did not say */
	uint64_t	 size;		/* uncompressed member size */
	uint64_t	 offset;	/* of its local header (regular files) */
	uint32_t	 crc32;		/* of the whole member, from the directory */
	int		 located;	/* offset and crc32 are known */
};

/* Owned by the caller; free with npz_index_free(). */
struct npz_index {
	size_t		 n;
	struct npz_entry *e;		/* in archive order */
	uint64_t	 total_bytes;	/* sum of hdr.nbytes */
	uint64_t	 file_size;
};

/*
 * Read the tensor list of the archive at path.  Members whose names do not
 * end in ".npy", duplicate names, names with NUL, "..", a leading '/', or
 * bytes that are not UTF-8 are refused with WB_E_ARCHIVE naming the member.
 * From a regular file, a member of at most 4 KiB is read whole and its
 * sizes and CRC-32 checked; of a larger one only the header is read (the
 * second pass checks the rest).  Large archives are read on a few threads.
 */
int	npz_index_read(const char *path, const struct npz_limits *lim,
	    struct npz_index **out, struct wb_err *err);
void	npz_index_free(struct npz_index *ix);

/* Index of the entry with this key, or -1. */
long	npz_index_find(const struct npz_index *ix, const char *key);

/* The tensor list as JSON text (for `inspect --json` and /v1/inspect). */
struct json_t;
struct json_t *npz_index_json(const struct npz_index *ix);

/* The second pass. */
struct npz_reader;

int	npz_reader_open(const char *path, const struct npz_index *ix,
	    const struct npz_limits *lim, struct npz_reader **out,
	    struct wb_err *err);
/*
 * Advance to the next member.  Returns 1 and sets *idx to its position in
 * the index, 0 at the end of the archive, or -1 on error (err is set).
 */
int	npz_reader_next(struct npz_reader *r, size_t *idx, struct wb_err *err);
/*
 * Read the current member's data (exactly hdr.nbytes bytes) into buf.
 * Fails with WB_E_NPY if the member holds fewer or more bytes.
 */
int	npz_reader_read(struct npz_reader *r, void *buf, size_t len,
	    struct wb_err *err);
void	npz_reader_close(struct npz_reader *r);

/*
 * Random access, for the parallel converter: each thread opens its own
 * cursor and reads any member by index, in any order.  Only for archives
 * indexed from a regular file (every entry `located`).  A read checks the
 * local header against the directory, the .npy header against the index,
 * the exact data length, the caps, and the member's CRC-32; deflate
 * members are inflated in a stream (isa-l), never whole in memory twice.
 */
struct npz_cursor;

int	npz_cursor_open(const char *path, const struct npz_index *ix,
	    const struct npz_limits *lim, struct npz_cursor **out,
	    struct wb_err *err);
/* Read member idx's data (exactly hdr.nbytes) into buf. */
int	npz_cursor_read(struct npz_cursor *c, size_t idx, void *buf, size_t len,
	    struct wb_err *err);
/*
 * The same in pieces, for a tensor too big to hold whole: begin checks the
 * member's headers; each part reads the next len bytes of its data, in
 * order; end checks that exactly hdr.nbytes were read, that the member
 * ends there, and its CRC-32 (so damage inside the data is reported only
 * at the end: a caller discards what it made of the parts on any error).
 */
int	npz_cursor_begin(struct npz_cursor *c, size_t idx, struct wb_err *err);
int	npz_cursor_part(struct npz_cursor *c, void *buf, size_t len,
	    struct wb_err *err);
int	npz_cursor_end(struct npz_cursor *c, struct wb_err *err);
void	npz_cursor_close(struct npz_cursor *c);

/* 1 if every entry can be read through a cursor. */
int	npz_index_random_access(const struct npz_index *ix);

#endif
