/*
 * test_sha256: known-answer vectors (FIPS 180-2 examples) and agreement
 * between the one-shot and the streaming interfaces across odd block sizes,
 * which is how kh5_verify hashes a tensor read back in slabs.
 */
#include <stdint.h>
#include <stdlib.h>

#include "sha256.h"
#include "t.h"

static void
hex_of(const void *buf, size_t len, char out[SHA256_HEXLEN + 1])
{
	uint8_t d[SHA256_LEN];

	CHECK(sha256_buf(buf, len, d) == 0);
	sha256_hex(d, out);
}

int
main(void)
{
	char h[SHA256_HEXLEN + 1];
	uint8_t one[SHA256_LEN], streamed[SHA256_LEN];
	struct sha256_ctx *c = NULL;
	unsigned char *big;
	size_t i, off, step;
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

	hex_of("abc", 3, h);
	CHECK_STR(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	hex_of(NULL, 0, h);
	CHECK_STR(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	hex_of(two, strlen(two), h);
	CHECK_STR(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

	big = malloc(100000);
	CHECK(big != NULL);
	if (big == NULL)
		return t_done("sha256");
	for (i = 0; i < 100000; i++)
		big[i] = (unsigned char)(i * 31 + 7);
	CHECK(sha256_buf(big, 100000, one) == 0);
	for (step = 1; step <= 65536; step = step * 7 + 3) {
		CHECK(sha256_new(&c) == 0);
		for (off = 0; off < 100000; off += step)
			CHECK(sha256_update(c, big + off,
			    100000 - off < step ? 100000 - off : step) == 0);
		CHECK(sha256_final(c, streamed) == 0);
		CHECK(memcmp(one, streamed, SHA256_LEN) == 0);
		sha256_free(c);
		c = NULL;
	}
	sha256_free(NULL);
	free(big);
	return t_done("sha256");
}
