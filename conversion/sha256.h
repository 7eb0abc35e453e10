/*
 * sha256: SHA-256 over byte buffers, one shot or streamed, via libcrypto EVP.
 *
 * Tensors are hashed when read from the archive and again when read back
 * from the written weight file, so the two sides must agree on the bytes:
 * hash float32 data exactly as it lies in memory (little-endian on every
 * platform we build for).  The streaming form lets a reader hash a large
 * tensor in bounded blocks instead of holding a second full copy.
 *
 * These functions take no struct wb_err: the only failures are libcrypto
 * running out of memory or refusing the digest, and the caller knows which
 * tensor it was hashing, so it writes the message.  Each returns 0 or a
 * wb_code (WB_E_NOMEM, WB_E_INTERNAL).
 */
#ifndef SHA256_H
#define SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "wb_err.h"

#define SHA256_LEN	32
#define SHA256_HEXLEN	64	/* without the terminating NUL */

struct sha256_ctx;

/* out receives the digest of the len bytes at buf (NULL is fine for len 0). */
int	sha256_buf(const void *buf, size_t len, uint8_t out[SHA256_LEN]);

/* Lower-case hex of a digest into out (65 bytes, NUL-terminated). */
void	sha256_hex(const uint8_t digest[SHA256_LEN], char out[SHA256_HEXLEN + 1]);

/*
 * Streaming.  sha256_new() gives the caller a context to release with
 * sha256_free(); after sha256_final() it must not be updated again.
 */
int	sha256_new(struct sha256_ctx **out);
int	sha256_update(struct sha256_ctx *c, const void *buf, size_t len);
int	sha256_final(struct sha256_ctx *c, uint8_t out[SHA256_LEN]);
void	sha256_free(struct sha256_ctx *c);	/* c may be NULL */

/*
 * The digest and size of the file at path.  A reader thread fills blocks
 * while this one hashes them; bytes in the page cache come from it, the
 * others with O_DIRECT when the file system takes it, so a file just
 * written past the cache is not pulled through fresh cache pages.  Returns 0, WB_E_IO with *errnum set
 * to the errno of the failed call, WB_E_NOMEM or WB_E_INTERNAL.
 */
int	sha256_file(const char *path, uint8_t out[SHA256_LEN], uint64_t *size,
	    int *errnum);

#endif
