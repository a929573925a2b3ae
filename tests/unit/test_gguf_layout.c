/* GGUF tensor data laid out as writers lay it out: each tensor at the aligned end of the
 * one listed before it. Overlapping data, or a tensor type changed in its info (which
 * changes how many bytes it needs), is refused when the file is opened. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/gguf.h"
#include "gguf_bytes.h"
#include "test_support.h"

static void put_tensor(struct bytes *b, const char *name, uint32_t type, uint64_t offset)
{
    put_string(b, name);
    put_u32(b, 2);
    put_u64(b, 32); /* 32 x 2 values */
    put_u64(b, 2);
    put_u32(b, type);
    put_u64(b, offset);
}

/* Two 32 x 2 tensors "a" and "b" (types and offsets as given), then 512 data bytes. */
static char *write_two_tensors(uint32_t type_a, uint64_t offset_a, uint32_t type_b, uint64_t offset_b)
{
    struct bytes b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, 2);
    put_u64(&b, 1);
    put_string(&b, "general.architecture");
    put_u32(&b, AL_GGUF_STRING);
    put_string(&b, "llama");
    put_tensor(&b, "a", type_a, offset_a);
    put_tensor(&b, "b", type_b, offset_b);
    while (b.size % 32)
        b.data[b.size++] = 0;
    b.size += 512;
    char *dir = test_tmpdir();
    char *path = test_write_file(dir, "layout.gguf", b.data, b.size);
    free(dir);
    cr_assert_not_null(path);
    return path;
}

static void expect_refused(const char *path, const char *fragment)
{
    al_error_clear();
    struct al_gguf *g = al_gguf_open(path);
    cr_assert_null(g, "%s opened", path);
    cr_assert(strstr(al_error_message(), path), "the message does not name the file: %s", al_error_message());
    cr_assert(strstr(al_error_message(), fragment), "the message lacks \"%s\": %s", fragment, al_error_message());
}

Test(gguf_layout, tensors_back_to_back_open)
{
    char *path = write_two_tensors(AL_GGML_F32, 0, AL_GGML_F32, 256);
    struct al_gguf *g = al_gguf_open(path);
    cr_assert_not_null(g, "%s", al_error_message());
    al_gguf_close(g);
    free(path);
}

Test(gguf_layout, overlapping_tensor_data_is_refused)
{
    char *path = write_two_tensors(AL_GGML_F32, 0, AL_GGML_F32, 128);
    expect_refused(path, "tensor b: data at offset 128, but a ends at 256");
    cr_assert(strstr(al_error_message(), "overlap"), "%s", al_error_message());
    free(path);
}

/* A file laid out for F32 "a" whose info now says F16: a needs 128 bytes, so b's offset
 * leaves a gap and b would be read where the writer did not put it. */
Test(gguf_layout, a_type_that_shrinks_the_byte_size_is_refused)
{
    char *path = write_two_tensors(AL_GGML_F16, 0, AL_GGML_F32, 256);
    expect_refused(path, "leave a gap");
    free(path);
}

/* Laid out for F16 "a" (b at 128), info says F32: a would run into b. */
Test(gguf_layout, a_type_that_grows_the_byte_size_is_refused)
{
    char *path = write_two_tensors(AL_GGML_F32, 0, AL_GGML_F16, 128);
    expect_refused(path, "overlap");
    free(path);
}
