/* GGUF files built byte by byte for the hostile-input tests (little-endian, as the format
 * is on every machine these tests run on). Header-only: each test file gets its own copy. */
#ifndef AGENTLORA_TEST_GGUF_BYTES_H
#define AGENTLORA_TEST_GGUF_BYTES_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

struct bytes {
    uint8_t data[4096];
    size_t size;
};

static inline void put(struct bytes *b, const void *p, size_t n)
{
    cr_assert_leq(b->size + n, sizeof b->data);
    memcpy(b->data + b->size, p, n);
    b->size += n;
}
static inline void put_u32(struct bytes *b, uint32_t v) { put(b, &v, 4); }
static inline void put_u64(struct bytes *b, uint64_t v) { put(b, &v, 8); }
static inline void put_string(struct bytes *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

#endif
