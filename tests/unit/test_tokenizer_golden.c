/* Golden comparisons: tests/golden/tokenizers/corpus.json holds hard strings and the ids
 * (and start offsets) that Hugging Face `tokenizers` and the `sentencepiece` package give
 * for them (make_tokenizer_golden.py); mistral-common's samples give Mistral v3 chats
 * with control tokens. Also checked on the same strings: decode(encode(x)) == x for
 * byte-level BPE, and offsets that never decrease and stay inside the text. */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/tokenizer.h"
#include "test_support.h"

#define CORPUS_PATH "tests/golden/tokenizers/corpus.json"

static cJSON *load_corpus(void)
{
    cJSON *corpus = al_json_load_file(CORPUS_PATH);
    cr_assert_not_null(corpus, "%s", al_error_message());
    return corpus;
}

static struct al_tokenizer *load_shared(const char *relative, bool sentencepiece)
{
    char *path = test_shared_path(relative);
    struct al_tokenizer *tokenizer = sentencepiece ? al_tokenizer_load_sentencepiece(path) : al_tokenizer_load_json(path);
    cr_assert_not_null(tokenizer, "%s", al_error_message());
    free(path);
    return tokenizer;
}

static bool ids_equal(const struct al_tokens *tokens, const cJSON *expected)
{
    if ((int)tokens->count != cJSON_GetArraySize(expected))
        return false;
    size_t i = 0;
    const cJSON *id;
    cJSON_ArrayForEach(id, expected)
        if (tokens->ids[i++] != (int32_t)id->valuedouble)
            return false;
    return true;
}

/* Hugging Face gives character offsets (converted to bytes by the generator); a token
 * that starts inside a character starts, for it, at that character. */
static size_t character_start(const char *text, size_t offset)
{
    while (offset > 0 && ((unsigned char)text[offset] & 0xC0) == 0x80)
        offset--;
    return offset;
}

static void check_offsets_sane(const struct al_tokens *tokens, size_t length, const char *what)
{
    for (size_t i = 0; i < tokens->count; i++) {
        cr_assert_leq(tokens->offsets[i], length, "%s: offset %zu beyond the text", what, i);
        if (i > 0)
            cr_assert_geq(tokens->offsets[i], tokens->offsets[i - 1], "%s: offset %zu decreases", what, i);
    }
}

/* Offsets must equal Hugging Face's (NFC-composed characters included). `text_changes`
 * only excuses decode(encode(x)) from giving back x: the tokenizer normalised the text or
 * added a prefix space (the decoded text must still be Hugging Face's). */
static void check_byte_level_case(const struct al_tokenizer *tokenizer, const char *name, const char *text,
                                  const cJSON *expected, unsigned flags, size_t case_index, bool text_changes)
{
    size_t length = strlen(text);
    struct al_tokens tokens = {0};
    cr_assert_eq(al_tokenizer_encode(tokenizer, text, length, flags, &tokens), 0, "%s", al_error_message());
    const cJSON *ids = cJSON_GetObjectItem(expected, "ids");
    const cJSON *offsets = cJSON_GetObjectItem(expected, "offsets");
    cr_expect(ids_equal(&tokens, ids), "%s case %zu (flags %u): ids differ from Hugging Face", name, case_index, flags);
    if (ids_equal(&tokens, ids)) {
        size_t i = 0;
        const cJSON *offset;
        cJSON_ArrayForEach(offset, offsets) {
            size_t ours = character_start(text, tokens.offsets[i]), theirs = (size_t)offset->valuedouble;
            cr_expect(ours == theirs,
                      "%s case %zu token %zu: offset %zu, Hugging Face %zu", name, case_index, i, ours, theirs);
            i++;
        }
    }
    check_offsets_sane(&tokens, length, name);

    size_t decoded_length = 0;
    char *decoded = al_tokenizer_decode(tokenizer, tokens.ids, tokens.count, false, &decoded_length);
    cr_assert_not_null(decoded, "%s", al_error_message());
    const char *hugging_face = cJSON_GetObjectItem(expected, "decoded")->valuestring;
    cr_expect_str_eq(decoded, hugging_face, "%s case %zu: decodes differently from Hugging Face", name, case_index);
    if (!text_changes)
        cr_expect(decoded_length == length && memcmp(decoded, text, length) == 0,
                  "%s case %zu: decode(encode(x)) != x: [%s]", name, case_index, decoded);
    free(decoded);
    al_tokens_free(&tokens);
}

enum text_change {
    KEEPS_TEXT,        /* decode(encode(x)) == x */
    NORMALIZES_NFC,    /* == NFC(x) */
    ADDS_PREFIX_SPACE, /* == " " + x where x does not start with a space */
};

static void check_byte_level(const char *name, struct al_tokenizer *tokenizer, enum text_change change)
{
    cJSON *corpus = load_corpus();
    size_t index = 0;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, cJSON_GetObjectItem(corpus, "cases")) {
        const char *text = cJSON_GetObjectItem(entry, "text")->valuestring;
        const cJSON *expected = cJSON_GetObjectItem(cJSON_GetObjectItem(entry, "byte_level"), name);
        cr_assert_not_null(expected, "corpus has no %s results", name);
        bool text_changes = (change == NORMALIZES_NFC && cJSON_IsTrue(cJSON_GetObjectItem(entry, "nfc_changes_it"))) ||
                            change == ADDS_PREFIX_SPACE;
        check_byte_level_case(tokenizer, name, text, cJSON_GetObjectItem(expected, "special"),
                              AL_TOKENIZE_PARSE_SPECIAL, index, text_changes);
        check_byte_level_case(tokenizer, name, text, cJSON_GetObjectItem(expected, "plain"), 0, index, text_changes);
        index++;
    }
    cr_assert_gt(index, 30, "the corpus is missing cases");
    cJSON_Delete(corpus);
    al_tokenizer_free(tokenizer);
}

static void check_sentencepiece(const char *name, struct al_tokenizer *tokenizer)
{
    cJSON *corpus = load_corpus();
    size_t index = 0;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, cJSON_GetObjectItem(corpus, "cases")) {
        const char *text = cJSON_GetObjectItem(entry, "text")->valuestring;
        const cJSON *expected = cJSON_GetObjectItem(cJSON_GetObjectItem(entry, "sentencepiece"), name);
        cr_assert_not_null(expected, "corpus has no %s results", name);
        struct al_tokens tokens = {0};
        cr_assert_eq(al_tokenizer_encode(tokenizer, text, strlen(text), 0, &tokens), 0, "%s", al_error_message());
        cr_expect(ids_equal(&tokens, expected), "%s case %zu: ids differ from sentencepiece", name, index);
        check_offsets_sane(&tokens, strlen(text), name);
        al_tokens_free(&tokens);
        index++;
    }
    cr_assert_gt(index, 30, "the corpus is missing cases");
    cJSON_Delete(corpus);
    al_tokenizer_free(tokenizer);
}

Test(tokenizer_golden, qwen25_matches_hugging_face)
{
    check_byte_level("qwen2.5", load_shared("tokenizers/qwen2.5/tokenizer.json", false), NORMALIZES_NFC);
}

Test(tokenizer_golden, llama32_matches_hugging_face)
{
    check_byte_level("llama-3.2", load_shared("tokenizers/llama-3.2/tokenizer.json", false), KEEPS_TEXT);
}

Test(tokenizer_golden, tiny_trained_bpe_matches_hugging_face)
{
    struct al_tokenizer *tokenizer = al_tokenizer_load_json("tests/golden/tokenizers/tiny-bpe/tokenizer.json");
    cr_assert_not_null(tokenizer, "%s", al_error_message());
    check_byte_level("tiny-bpe", tokenizer, KEEPS_TEXT);
}

Test(tokenizer_golden, tiny_bpe_with_digits_and_prefix_space_matches_hugging_face)
{
    struct al_tokenizer *tokenizer = al_tokenizer_load_json("tests/golden/tokenizers/tiny-bpe/tokenizer_digits.json");
    cr_assert_not_null(tokenizer, "%s", al_error_message());
    check_byte_level("tiny-bpe-digits", tokenizer, ADDS_PREFIX_SPACE);
}

Test(tokenizer_golden, llama2_matches_sentencepiece)
{
    check_sentencepiece("llama2", load_shared("tokenizers/llama2-sentencepiece/tokenizer.model", true));
}

Test(tokenizer_golden, mistral_v3_matches_sentencepiece)
{
    check_sentencepiece("mistral-v3", load_shared("tokenizers/mistral-sentencepiece/tokenizer.model.v3", true));
}

Test(tokenizer_golden, tiny_trained_sentencepiece_matches_sentencepiece)
{
    struct al_tokenizer *tokenizer = al_tokenizer_load_sentencepiece("tests/golden/tokenizers/tiny-spm/tokenizer.model");
    cr_assert_not_null(tokenizer, "%s", al_error_message());
    check_sentencepiece("tiny-spm", tokenizer);
}

Test(tokenizer_golden, llama32_adds_begin_of_text_when_asked)
{
    struct al_tokenizer *tokenizer = load_shared("tokenizers/llama-3.2/tokenizer.json", false);
    cJSON *corpus = load_corpus();
    struct al_tokens tokens = {0};
    cr_assert_eq(al_tokenizer_encode(tokenizer, "Hello world", 11, AL_TOKENIZE_ADD_SPECIAL, &tokens), 0);
    cr_expect(ids_equal(&tokens, cJSON_GetObjectItem(corpus, "llama3_hello_world_with_special")));
    cr_expect_eq(tokens.ids[0], 128000);
    cr_expect_eq(tokens.offsets[0], 0);
    al_tokens_free(&tokens);
    cJSON_Delete(corpus);
    al_tokenizer_free(tokenizer);
}

/* mistral-common's text_v3.txt spells the prompt as pieces: "▁" is a space and a
 * byte-fallback piece is "<0xNN>". Undoing that gives the text a chat template renders. */
static char *pieces_to_text(const char *pieces)
{
    static const char SPACE_MARK[] = "\xe2\x96\x81";
    char *text = malloc(strlen(pieces) + 1);
    size_t length = 0;
    for (const char *p = pieces; *p;) {
        unsigned byte;
        if (strncmp(p, SPACE_MARK, 3) == 0) {
            text[length++] = ' ';
            p += 3;
        } else if (strncmp(p, "<0x", 3) == 0 && p[5] == '>' && sscanf(p + 3, "%2x", &byte) == 1) {
            text[length++] = (char)byte;
            p += 6;
        } else {
            text[length++] = *p++;
        }
    }
    text[length] = '\0';
    return text;
}

Test(tokenizer_golden, mistral_v3_chats_match_mistral_common)
{
    static const char *const SAMPLES[] = {"no_tools", "get_weather_full", "get_weather_no_history",
                                          "get_weather_no_system_prompt", "parallel_calls", "several_calls"};
    struct al_tokenizer *tokenizer = load_shared("tokenizers/mistral-sentencepiece/tokenizer.model.v3", true);
    for (size_t s = 0; s < sizeof SAMPLES / sizeof SAMPLES[0]; s++) {
        char relative[256];
        snprintf(relative, sizeof relative, "templates/mistral-common-samples/%s/text_v3.txt", SAMPLES[s]);
        char *path = test_shared_path(relative);
        char *pieces = al_file_read_all(path, NULL);
        cr_assert_not_null(pieces, "%s", al_error_message());
        free(path);
        snprintf(relative, sizeof relative, "templates/mistral-common-samples/%s/tokens_v3.json", SAMPLES[s]);
        path = test_shared_path(relative);
        cJSON *expected = al_json_load_file(path);
        cr_assert_not_null(expected, "%s", al_error_message());
        free(path);

        char *text = pieces_to_text(pieces);
        struct al_tokens tokens = {0};
        cr_assert_eq(al_tokenizer_encode(tokenizer, text, strlen(text), AL_TOKENIZE_PARSE_SPECIAL, &tokens), 0,
                     "%s", al_error_message());
        cr_expect(ids_equal(&tokens, cJSON_GetObjectItem(expected, "tokens")), "%s: ids differ from mistral-common",
                  SAMPLES[s]);
        check_offsets_sane(&tokens, strlen(text), SAMPLES[s]);
        char *decoded = al_tokenizer_decode(tokenizer, tokens.ids, tokens.count, false, NULL);
        cr_assert_not_null(decoded, "%s", al_error_message());
        cr_expect_str_eq(decoded, text, "%s: decode(encode(x)) != x", SAMPLES[s]);
        free(decoded);
        al_tokens_free(&tokens);
        cJSON_Delete(expected);
        free(text);
        free(pieces);
    }
    al_tokenizer_free(tokenizer);
}
