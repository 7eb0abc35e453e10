/*
 * sha256: a thin wrapper over libcrypto's EVP digest interface.  EVP rather
 * than the deprecated SHA256_* calls so that OpenSSL 3 picks the fastest
 * provider implementation; the opaque context keeps OpenSSL out of every
 * other header.
 */
#include <stdlib.h>

#include <openssl/evp.h>

#include "sha256.h"

struct sha256_ctx {
	EVP_MD_CTX	*md;
};

int
sha256_new(struct sha256_ctx **out)
{
	struct sha256_ctx *c = NULL;
	int rc = 0;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->md = EVP_MD_CTX_new()) == NULL) {
		rc = WB_E_NOMEM;
		goto out;
	}
	if (EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
		rc = WB_E_INTERNAL;
		goto out;
	}
	*out = c;
	c = NULL;
out:
	sha256_free(c);
	return rc;
}

int
sha256_update(struct sha256_ctx *c, const void *buf, size_t len)
{
	if (len == 0)
		return 0;
	if (EVP_DigestUpdate(c->md, buf, len) != 1)
		return WB_E_INTERNAL;
	return 0;
}

int
sha256_final(struct sha256_ctx *c, uint8_t out[SHA256_LEN])
{
	unsigned int n = 0;

	if (EVP_DigestFinal_ex(c->md, out, &n) != 1 || n != SHA256_LEN)
		return WB_E_INTERNAL;
	return 0;
}

void
sha256_free(struct sha256_ctx *c)
{
	if (c == NULL)
		return;
	EVP_MD_CTX_free(c->md);
	free(c);
}

int
sha256_buf(const void *buf, size_t len, uint8_t out[SHA256_LEN])
{
	struct sha256_ctx *c = NULL;
	int rc;

	if ((rc = sha256_new(&c)) != 0)
		goto out;
	if ((rc = sha256_update(c, buf, len)) != 0)
		goto out;
	rc = sha256_final(c, out);
out:
	sha256_free(c);
	return rc;
}

void
sha256_hex(const uint8_t digest[SHA256_LEN], char out[SHA256_HEXLEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < SHA256_LEN; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 0xf];
	}
	out[SHA256_HEXLEN] = '\0';
}
