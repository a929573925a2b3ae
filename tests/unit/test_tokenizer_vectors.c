/* llama.cpp's tokenizer test vectors (generated from the Hugging Face tokenizers): every
 * input must encode to exactly the listed ids, without special tokens added. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/tokenizer.h"
#include "test_support.h"

#define VECTOR_SEPARATOR "\n__ggml_vocab_test__\n"
/* The three files hold the same inputs; llama.cpp's generator writes this many. */
#define EXPECTED_VECTOR_COUNT 46

static char *read_shared(const char *relative, size_t *length)
{
    char *path = test_shared_path(relative);
    char *text = al_file_read_all(path, length);
    cr_assert_not_null(text, "%s: %s", path, al_error_message());
    free(path);
    return text;
}

/* Splits the .inp text in place: inputs end at each separator (the file ends with one). */
static size_t split_inputs(char *text, char **inputs, size_t *lengths, size_t capacity)
{
    size_t count = 0;
    char *cursor = text;
    char *separator;
    while ((separator = strstr(cursor, VECTOR_SEPARATOR)) != NULL && count < capacity) {
        inputs[count] = cursor;
        lengths[count++] = (size_t)(separator - cursor);
        cursor = separator + strlen(VECTOR_SEPARATOR);
    }
    return count;
}

static void check_vectors(const char *tokenizer_relative, bool sentencepiece, const char *vector_name)
{
    char *tokenizer_path = test_shared_path(tokenizer_relative);
    struct al_tokenizer *tokenizer = sentencepiece ? al_tokenizer_load_sentencepiece(tokenizer_path)
                                                   : al_tokenizer_load_json(tokenizer_path);
    cr_assert_not_null(tokenizer, "%s", al_error_message());

    char inp_name[256], out_name[256];
    snprintf(inp_name, sizeof inp_name, "tokenizers/test-vectors/llama.cpp/%s.inp", vector_name);
    snprintf(out_name, sizeof out_name, "tokenizers/test-vectors/llama.cpp/%s.out", vector_name);
    size_t inp_length, out_length;
    char *inp = read_shared(inp_name, &inp_length);
    char *out = read_shared(out_name, &out_length);

    char *inputs[128];
    size_t lengths[128];
    size_t count = split_inputs(inp, inputs, lengths, 128);
    cr_assert_eq(count, EXPECTED_VECTOR_COUNT, "%s: %zu inputs", vector_name, count);

    char *line_state = NULL;
    char *line = out;
    size_t mismatches = 0;
    for (size_t i = 0; i < count; i++) {
        char *newline = strchr(line, '\n');
        cr_assert_not_null(newline, "%s: fewer output lines than inputs", vector_name);
        *newline = '\0';
        struct al_tokens tokens = {0};
        cr_assert_eq(al_tokenizer_encode(tokenizer, inputs[i], lengths[i], 0, &tokens), 0, "%s",
                     al_error_message());
        size_t k = 0;
        bool same = true;
        for (char *number = strtok_r(line, " ", &line_state); number; number = strtok_r(NULL, " ", &line_state)) {
            if (k >= tokens.count || tokens.ids[k] != atoi(number))
                same = false;
            k++;
        }
        if (k != tokens.count)
            same = false;
        if (!same) {
            mismatches++;
            cr_log_error("%s: input %zu (%.*s) encodes differently", vector_name, i, (int)lengths[i], inputs[i]);
        }
        al_tokens_free(&tokens);
        line = newline + 1;
    }
    cr_expect_eq(mismatches, 0, "%s: %zu of %zu inputs differ", vector_name, mismatches, count);
    free(inp);
    free(out);
    free(tokenizer_path);
    al_tokenizer_free(tokenizer);
}

Test(tokenizer_vectors, qwen2_matches_llama_cpp)
{
    check_vectors("tokenizers/qwen2.5/tokenizer.json", false, "ggml-vocab-qwen2.gguf");
}

Test(tokenizer_vectors, llama3_bpe_matches_llama_cpp)
{
    check_vectors("tokenizers/llama-3.2/tokenizer.json", false, "ggml-vocab-llama-bpe.gguf");
}

Test(tokenizer_vectors, llama2_sentencepiece_matches_llama_cpp)
{
    check_vectors("tokenizers/llama2-sentencepiece/tokenizer.model", true, "ggml-vocab-llama-spm.gguf");
}
