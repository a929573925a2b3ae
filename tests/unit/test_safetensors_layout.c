/* The safetensors layout rules, exactly: the header ends where the data section begins,
 * and the tensors tile the data section with no gap, no overlap and no trailing byte. A
 * header length one byte short shifts every tensor by one byte (NaN logits), and only
 * these rules notice it. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/safetensors.h"
#include "test_support.h"

/* Two F32 tensors of 2 elements each, back to back: 16 data bytes. The header carries
 * four spaces of padding, as aligned writers leave. */
#define TWO_TENSORS                                                                                            \
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"                                       \
    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}    "

/* 8-byte length (as declared), the header text, then data_size bytes of 0x3f. */
static char *write_file(const char *name, uint64_t declared, const char *header, size_t data_size)
{
    char *dir = test_tmpdir();
    size_t header_size = strlen(header), total = 8 + header_size + data_size;
    uint8_t *bytes = malloc(total);
    for (int i = 0; i < 8; i++)
        bytes[i] = (uint8_t)(declared >> (8 * i));
    memcpy(bytes + 8, header, header_size);
    memset(bytes + 8 + header_size, 0x3f, data_size);
    char *path = test_write_file(dir, name, bytes, total);
    cr_assert_not_null(path);
    free(bytes);
    free(dir);
    return path;
}

static void expect_refused(const char *path, const char *fragment)
{
    al_error_clear();
    struct al_safetensors *st = al_safetensors_open(path);
    cr_assert_null(st, "%s was accepted", path);
    cr_assert(strstr(al_error_message(), path), "the message does not name the file: %s", al_error_message());
    cr_assert(strstr(al_error_message(), fragment), "the message lacks \"%s\": %s", fragment, al_error_message());
}

Test(safetensors_layout, an_exact_file_opens)
{
    char *path = write_file("ok.safetensors", strlen(TWO_TENSORS), TWO_TENSORS, 16);
    struct al_safetensors *st = al_safetensors_open(path);
    cr_assert_not_null(st, "%s", al_error_message());
    al_safetensors_close(st);
    free(path);
}

Test(safetensors_layout, a_header_length_one_byte_short_is_refused)
{
    char *path = write_file("short.safetensors", strlen(TWO_TENSORS) - 1, TWO_TENSORS, 16);
    expect_refused(path, "header length is 1 bytes short");
    free(path);
}

Test(safetensors_layout, trailing_bytes_after_the_last_tensor_are_refused)
{
    char *path = write_file("trailing.safetensors", strlen(TWO_TENSORS), TWO_TENSORS, 17);
    expect_refused(path, "1 trailing bytes after the last tensor");
    free(path);
}

Test(safetensors_layout, a_gap_between_tensors_is_refused)
{
    const char *header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}";
    char *path = write_file("gap.safetensors", strlen(header), header, 20);
    expect_refused(path, "4 bytes of the data section before tensor b belong to no tensor");
    const char *late = "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
    char *late_path = write_file("late.safetensors", strlen(late), late, 12);
    expect_refused(late_path, "before tensor b");
    free(late_path);
    free(path);
}

Test(safetensors_layout, overlapping_tensors_are_still_refused)
{
    const char *header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
    char *path = write_file("overlap.safetensors", strlen(header), header, 12);
    expect_refused(path, "tensors a and b overlap");
    free(path);
}

/* What the writer produces satisfies the rules (so the checks cost real files nothing). */
Test(safetensors_layout, written_files_tile_exactly)
{
    char *dir = test_tmpdir();
    char *path = al_path_join(dir, "w.safetensors");
    struct al_safetensors_writer *w = al_safetensors_writer_create();
    float a[3] = {1, 2, 3}, b[5] = {4, 5, 6, 7, 8};
    int64_t shape_a[1] = {3}, shape_b[1] = {5};
    cr_assert_eq(al_safetensors_writer_add(w, "a", AL_DTYPE_F32, 1, shape_a, a), 0, "%s", al_error_message());
    cr_assert_eq(al_safetensors_writer_add(w, "b", AL_DTYPE_F32, 1, shape_b, b), 0, "%s", al_error_message());
    cr_assert_eq(al_safetensors_writer_write(w, path), 0, "%s", al_error_message());
    al_safetensors_writer_free(w);
    struct al_safetensors *st = al_safetensors_open(path);
    cr_assert_not_null(st, "%s", al_error_message());
    al_safetensors_close(st);
    free(path);
    free(dir);
}
