/* The tokenizer API around the models: loading folders and configs, special ids, special
 * token parsing, lstrip/rstrip, offsets of split and byte-fallback characters, decoding
 * with and without special tokens, and errors that name the bad file. */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/tokenizer.h"
#include "test_support.h"

static struct al_tokenizer *load_shared_dir(const char *relative)
{
    char *path = test_shared_path(relative);
    struct al_tokenizer *tokenizer = al_tokenizer_load(path);
    cr_assert_not_null(tokenizer, "%s", al_error_message());
    free(path);
    return tokenizer;
}

static struct al_tokens encode(const struct al_tokenizer *tokenizer, const char *text, unsigned flags)
{
    struct al_tokens tokens = {0};
    cr_assert_eq(al_tokenizer_encode(tokenizer, text, strlen(text), flags, &tokens), 0, "%s", al_error_message());
    return tokens;
}

static bool contains_id(const struct al_tokens *tokens, int32_t id)
{
    for (size_t i = 0; i < tokens->count; i++)
        if (tokens->ids[i] == id)
            return true;
    return false;
}

/* ---- special ids from tokenizer_config.json ---- */

Test(tokenizer_api, llama32_folder_has_its_special_tokens)
{
    struct al_tokenizer *tokenizer = load_shared_dir("tokenizers/llama-3.2");
    cr_expect_eq(al_tokenizer_kind(tokenizer), AL_TOKENIZER_BYTE_LEVEL_BPE);
    cr_expect_eq(al_tokenizer_vocab_size(tokenizer), 128256);
    cr_expect_eq(al_tokenizer_bos_id(tokenizer), 128000);
    cr_expect_eq(al_tokenizer_eos_id(tokenizer), 128009); /* <|eot_id|> in the Instruct config */
    cr_expect_eq(al_tokenizer_pad_id(tokenizer), -1);
    cr_expect_str_eq(al_tokenizer_id_to_piece(tokenizer, 128009), "<|eot_id|>");
    cr_expect_str_eq(al_tokenizer_id_to_piece(tokenizer, 9906), "Hello");
    cr_expect_eq(al_tokenizer_piece_to_id(tokenizer, "ĠHello"), 22691);
    cr_expect_eq(al_tokenizer_piece_to_id(tokenizer, "no such piece"), -1);
    cr_expect_null(al_tokenizer_id_to_piece(tokenizer, 128256));
    cr_expect(al_tokenizer_is_special(tokenizer, 128009));
    cr_expect(!al_tokenizer_is_special(tokenizer, 9906));

    int32_t ends[AL_TOKENIZER_MAX_END_OF_TURN];
    int count = al_tokenizer_end_of_turn_ids(tokenizer, ends, AL_TOKENIZER_MAX_END_OF_TURN);
    cr_assert_eq(count, 3);
    cr_expect_eq(ends[0], 128009);
    cr_expect_eq(ends[1], 128008); /* <|eom_id|> */
    cr_expect_eq(ends[2], 128001); /* <|end_of_text|> */
    al_tokenizer_free(tokenizer);
}

Test(tokenizer_api, qwen25_folder_has_no_bos_and_adds_nothing)
{
    struct al_tokenizer *tokenizer = load_shared_dir("tokenizers/qwen2.5");
    cr_expect_eq(al_tokenizer_bos_id(tokenizer), -1);
    cr_expect_eq(al_tokenizer_eos_id(tokenizer), 151645); /* <|im_end|> */
    cr_expect_eq(al_tokenizer_pad_id(tokenizer), 151643); /* <|endoftext|> */
    struct al_tokens plain = encode(tokenizer, "Hello", 0);
    struct al_tokens with_special = encode(tokenizer, "Hello", AL_TOKENIZE_ADD_SPECIAL);
    cr_expect_eq(plain.count, 1);
    cr_expect_eq(with_special.count, 1);
    al_tokens_free(&plain);
    al_tokens_free(&with_special);
    al_tokenizer_free(tokenizer);
}

Test(tokenizer_api, sentencepiece_folder_adds_bos_when_asked)
{
    char *dir = test_tmpdir();
    char *source = test_shared_path("tokenizers/llama2-sentencepiece/tokenizer.model");
    char *target = al_path_join(dir, "tokenizer.model");
    cr_assert_eq(test_copy_file(source, target), 0);
    struct al_tokenizer *tokenizer = al_tokenizer_load(dir);
    cr_assert_not_null(tokenizer, "%s", al_error_message());
    cr_expect_eq(al_tokenizer_kind(tokenizer), AL_TOKENIZER_SENTENCEPIECE);
    cr_expect_eq(al_tokenizer_vocab_size(tokenizer), 32000);
    cr_expect_eq(al_tokenizer_bos_id(tokenizer), 1);
    cr_expect_eq(al_tokenizer_eos_id(tokenizer), 2);
    cr_expect_eq(al_tokenizer_unk_id(tokenizer), 0);
    cr_expect_eq(al_tokenizer_pad_id(tokenizer), -1);
    cr_expect(al_tokenizer_is_special(tokenizer, 1));
    cr_expect(!al_tokenizer_is_special(tokenizer, 15043));
    cr_expect_str_eq(al_tokenizer_id_to_piece(tokenizer, 15043), "▁Hello");

    struct al_tokens tokens = encode(tokenizer, "Hello world", AL_TOKENIZE_ADD_SPECIAL);
    cr_assert_eq(tokens.count, 3);
    cr_expect_eq(tokens.ids[0], 1);
    cr_expect_eq(tokens.ids[1], 15043);
    cr_expect_eq(tokens.ids[2], 3186);
    cr_expect_eq(tokens.offsets[0], 0);
    cr_expect_eq(tokens.offsets[2], 5);
    al_tokens_free(&tokens);
    al_tokenizer_free(tokenizer);
    free(target);
    free(source);
    free(dir);
}

Test(tokenizer_api, sentencepiece_config_adds_tokens_and_eos)
{
    char *dir = test_tmpdir();
    char *source = test_shared_path("tokenizers/llama2-sentencepiece/tokenizer.model");
    char *target = al_path_join(dir, "tokenizer.model");
    cr_assert_eq(test_copy_file(source, target), 0);
    static const char config[] =
        "{\"add_bos_token\": true, \"add_eos_token\": true, \"pad_token\": \"</s>\","
        " \"bos_token\": {\"content\": \"<s>\"},"
        " \"added_tokens_decoder\": {\"1\": {\"content\": \"<s>\", \"special\": true},"
        " \"31999\": {\"content\": \"<|tag|>\", \"special\": true, \"lstrip\": true}}}";
    char *config_path = test_write_file(dir, "tokenizer_config.json", config, sizeof config - 1);
    struct al_tokenizer *tokenizer = al_tokenizer_load(dir);
    cr_assert_not_null(tokenizer, "%s", al_error_message());
    cr_expect_eq(al_tokenizer_pad_id(tokenizer), 2);
    cr_expect_eq(al_tokenizer_piece_to_id(tokenizer, "<|tag|>"), 31999);

    const char *text = "Hi <|tag|>there";
    struct al_tokens tokens = encode(tokenizer, text, AL_TOKENIZE_PARSE_SPECIAL | AL_TOKENIZE_ADD_SPECIAL);
    /* <s> ▁Hi <|tag|> there </s>: lstrip takes the space, "there" follows a special token */
    cr_assert_eq(tokens.count, 5);
    cr_expect_eq(tokens.ids[0], 1);
    cr_expect_eq(tokens.ids[2], 31999);
    cr_expect_eq(tokens.offsets[2], 2);
    cr_expect_str_eq(al_tokenizer_id_to_piece(tokenizer, tokens.ids[3]), "there");
    cr_expect_eq(tokens.ids[4], 2);
    cr_expect_eq(tokens.offsets[4], strlen(text));
    al_tokens_free(&tokens);
    al_tokenizer_free(tokenizer);
    free(config_path);
    free(target);
    free(source);
    free(dir);
}

/* ---- special-token parsing ---- */

Test(tokenizer_api, special_tokens_are_parsed_only_when_asked)
{
    struct al_tokenizer *tokenizer = load_shared_dir("tokenizers/qwen2.5");
    const char *text = "<|im_start|>user\nHi<|im_end|> <tool_call>";
    struct al_tokens parsed = encode(tokenizer, text, AL_TOKENIZE_PARSE_SPECIAL);
    struct al_tokens literal = encode(tokenizer, text, 0);
    cr_expect_eq(parsed.ids[0], 151644);
    cr_expect_eq(parsed.offsets[0], 0);
    cr_expect(contains_id(&parsed, 151645));
    cr_expect(!contains_id(&literal, 151644));
    cr_expect(!contains_id(&literal, 151645));
    /* <tool_call> is a non-special added token: matched either way, as in Hugging Face */
    cr_expect_eq(parsed.ids[parsed.count - 1], 151657);
    cr_expect_eq(literal.ids[literal.count - 1], 151657);
    cr_expect_eq(parsed.offsets[parsed.count - 1], strlen(text) - strlen("<tool_call>"));
    al_tokens_free(&parsed);
    al_tokens_free(&literal);
    al_tokenizer_free(tokenizer);
}

Test(tokenizer_api, lstrip_and_rstrip_tokens_match_hugging_face)
{
    struct al_tokenizer *tokenizer = al_tokenizer_load_json("tests/golden/tokenizers/tiny-bpe/tokenizer_strip.json");
    cr_assert_not_null(tokenizer, "%s", al_error_message());
    cJSON *corpus = al_json_load_file("tests/golden/tokenizers/corpus.json");
    cr_assert_not_null(corpus, "%s", al_error_message());
    int checked = 0;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, cJSON_GetObjectItem(corpus, "strip_cases")) {
        const char *text = cJSON_GetObjectItem(entry, "text")->valuestring;
        for (int parse = 0; parse < 2; parse++) {
            const cJSON *expected = cJSON_GetObjectItem(entry, parse ? "special" : "plain");
            struct al_tokens tokens = encode(tokenizer, text, parse ? AL_TOKENIZE_PARSE_SPECIAL : 0);
            cr_assert_eq((int)tokens.count, cJSON_GetArraySize(cJSON_GetObjectItem(expected, "ids")), "[%s]", text);
            for (size_t i = 0; i < tokens.count; i++) {
                cr_expect_eq(tokens.ids[i], cJSON_GetArrayItem(cJSON_GetObjectItem(expected, "ids"), (int)i)->valueint,
                             "[%s] token %zu", text, i);
                cr_expect_eq((int)tokens.offsets[i],
                             cJSON_GetArrayItem(cJSON_GetObjectItem(expected, "offsets"), (int)i)->valueint,
                             "[%s] offset %zu", text, i);
            }
            char *decoded = al_tokenizer_decode(tokenizer, tokens.ids, tokens.count, false, NULL);
            cr_expect_str_eq(decoded, cJSON_GetObjectItem(expected, "decoded")->valuestring);
            free(decoded);
            al_tokens_free(&tokens);
            checked++;
        }
    }
    cr_expect_geq(checked, 10);
    cJSON_Delete(corpus);
    al_tokenizer_free(tokenizer);
}

/* ---- offsets ---- */

Test(tokenizer_api, byte_fallback_pieces_start_at_successive_bytes)
{
    struct al_tokenizer *tokenizer = load_shared_dir("tokenizers/llama2-sentencepiece/");
    struct al_tokens tokens = encode(tokenizer, "a \xf0\x9f\xa6\x99", 0); /* "a 🦙" */
    /* ▁a ▁ <0xF0> <0x9F> <0xA6> <0x99> */
    cr_assert_eq(tokens.count, 6);
    size_t expected[] = {0, 1, 2, 3, 4, 5};
    for (size_t i = 0; i < 6; i++)
        cr_expect_eq(tokens.offsets[i], expected[i], "token %zu at %zu", i, tokens.offsets[i]);
    al_tokens_free(&tokens);
    al_tokenizer_free(tokenizer);
}

Test(tokenizer_api, byte_level_tokens_may_start_inside_a_character)
{
    struct al_tokenizer *tokenizer = load_shared_dir("tokenizers/llama-3.2");
    struct al_tokens tokens = encode(tokenizer, "\xf0\x9f\xa6\x99", 0); /* 🦙: ðŁ ¦ Ļ */
    cr_assert_eq(tokens.count, 3);
    cr_expect_eq(tokens.offsets[0], 0);
    cr_expect_eq(tokens.offsets[1], 2);
    cr_expect_eq(tokens.offsets[2], 3);
    al_tokens_free(&tokens);
    al_tokenizer_free(tokenizer);
}

Test(tokenizer_api, nfc_sequences_start_where_the_input_sequence_starts)
{
    struct al_tokenizer *tokenizer = load_shared_dir("tokenizers/qwen2.5");
    const char *text = "x e\xcc\x81"; /* "x e" + combining acute: NFC makes "é" */
    struct al_tokens tokens = encode(tokenizer, text, 0);
    struct al_tokens composed = encode(tokenizer, "x \xc3\xa9", 0);
    cr_assert_eq(tokens.count, composed.count);
    for (size_t i = 0; i < tokens.count; i++)
        cr_expect_eq(tokens.ids[i], composed.ids[i]);
    cr_expect_eq(tokens.offsets[tokens.count - 1], 1); /* "Ġé" starts at the space */
    al_tokens_free(&tokens);
    al_tokens_free(&composed);
    al_tokenizer_free(tokenizer);
}

/* ---- decoding ---- */

Test(tokenizer_api, decode_writes_or_skips_special_tokens)
{
    struct al_tokenizer *tokenizer = load_shared_dir("tokenizers/llama-3.2");
    struct al_tokens tokens = encode(tokenizer, "<|start_header_id|>user<|end_header_id|>\n\nHi", AL_TOKENIZE_PARSE_SPECIAL | AL_TOKENIZE_ADD_SPECIAL);
    char *all = al_tokenizer_decode(tokenizer, tokens.ids, tokens.count, false, NULL);
    char *text_only = al_tokenizer_decode(tokenizer, tokens.ids, tokens.count, true, NULL);
    cr_expect_str_eq(all, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi");
    cr_expect_str_eq(text_only, "user\n\nHi");
    free(all);
    free(text_only);
    int32_t bad_id = 999999;
    cr_expect_null(al_tokenizer_decode(tokenizer, &bad_id, 1, false, NULL));
    cr_expect_neq(strstr(al_error_message(), "999999"), NULL, "%s", al_error_message());
    al_tokens_free(&tokens);
    al_tokenizer_free(tokenizer);
}

Test(tokenizer_api, sentencepiece_decode_keeps_the_space_after_a_control_token)
{
    struct al_tokenizer *tokenizer = load_shared_dir("tokenizers/llama2-sentencepiece");
    int32_t ids[] = {1, 15043, 3186}; /* <s> ▁Hello ▁world */
    char *all = al_tokenizer_decode(tokenizer, ids, 3, false, NULL);
    char *text_only = al_tokenizer_decode(tokenizer, ids, 3, true, NULL);
    cr_expect_str_eq(all, "<s> Hello world"); /* as Hugging Face's decode */
    cr_expect_str_eq(text_only, "Hello world");
    free(all);
    free(text_only);
    al_tokenizer_free(tokenizer);
}

/* ---- errors ---- */

Test(tokenizer_api, invalid_utf8_is_an_error_naming_the_byte)
{
    struct al_tokenizer *tokenizer = al_tokenizer_load_json("tests/golden/tokenizers/tiny-bpe/tokenizer.json");
    cr_assert_not_null(tokenizer, "%s", al_error_message());
    struct al_tokens tokens = {0};
    cr_expect_eq(al_tokenizer_encode(tokenizer, "ok\xff", 3, 0, &tokens), -1);
    cr_expect_neq(strstr(al_error_message(), "byte 2"), NULL, "%s", al_error_message());
    al_tokens_free(&tokens);
    al_tokenizer_free(tokenizer);
}

static void expect_load_error_names(struct al_tokenizer *tokenizer, const char *name)
{
    cr_expect_null(tokenizer);
    cr_expect_neq(strstr(al_error_message(), name), NULL, "message [%s] does not name %s", al_error_message(), name);
    al_tokenizer_free(tokenizer);
}

Test(tokenizer_api, truncated_sentencepiece_model_is_an_error_naming_it)
{
    char *source = test_shared_path("tokenizers/llama2-sentencepiece/tokenizer.model");
    size_t size = 0;
    char *bytes = al_file_read_all(source, &size);
    cr_assert_not_null(bytes, "%s", al_error_message());
    char *dir = test_tmpdir();
    char *model = test_write_file(dir, "tokenizer.model", bytes, size / 2);
    expect_load_error_names(al_tokenizer_load_sentencepiece(model), model);
    free(model);
    free(dir);
    free(bytes);
    free(source);
}

Test(tokenizer_api, missing_files_are_errors_naming_them)
{
    char *dir = test_tmpdir();
    char *json = al_path_join(dir, "tokenizer.json");
    char *model = al_path_join(dir, "tokenizer.model");
    expect_load_error_names(al_tokenizer_load_json(json), json);
    expect_load_error_names(al_tokenizer_load_sentencepiece(model), model);
    expect_load_error_names(al_tokenizer_load(dir), dir);
    free(json);
    free(model);
    free(dir);
}

Test(tokenizer_api, corrupt_files_are_errors_naming_them)
{
    char *dir = test_tmpdir();
    static const char truncated[] = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0";
    char *json = test_write_file(dir, "tokenizer.json", truncated, sizeof truncated - 1);
    expect_load_error_names(al_tokenizer_load_json(json), json);

    static const char wordpiece[] = "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}";
    char *other = test_write_file(dir, "wordpiece.json", wordpiece, sizeof wordpiece - 1);
    expect_load_error_names(al_tokenizer_load_json(other), other);
    cr_expect_neq(strstr(al_error_message(), "WordPiece"), NULL, "%s", al_error_message());

    static const char bad_merge[] =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a c\"]},"
        " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}";
    char *merge = test_write_file(dir, "merge.json", bad_merge, sizeof bad_merge - 1);
    expect_load_error_names(al_tokenizer_load_json(merge), merge);
    cr_expect_neq(strstr(al_error_message(), "merges[0]"), NULL, "%s", al_error_message());

    static const char huge_id[] =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
        " \"added_tokens\": [{\"id\": 2000000000, \"content\": \"<x>\"}],"
        " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}";
    char *huge = test_write_file(dir, "huge.json", huge_id, sizeof huge_id - 1);
    expect_load_error_names(al_tokenizer_load_json(huge), huge);
    cr_expect_neq(strstr(al_error_message(), "2000000000"), NULL, "%s", al_error_message());

    static const char not_byte_level[] =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
        " \"pre_tokenizer\": {\"type\": \"Metaspace\"}}";
    char *metaspace = test_write_file(dir, "metaspace.json", not_byte_level, sizeof not_byte_level - 1);
    expect_load_error_names(al_tokenizer_load_json(metaspace), metaspace);

    static const char garbage[] = "\x0a\xff\xff\xff\x0fnot a protobuf at all";
    char *model = test_write_file(dir, "tokenizer.model", garbage, sizeof garbage - 1);
    expect_load_error_names(al_tokenizer_load_sentencepiece(model), model);

    static const char bad_config[] = "{\"eos_token\": \"<|no_such_token|>\"}";
    char *config = test_write_file(dir, "tokenizer_config.json", bad_config, sizeof bad_config - 1);
    struct al_tokenizer *tokenizer = al_tokenizer_load_json("tests/golden/tokenizers/tiny-bpe/tokenizer.json");
    cr_assert_not_null(tokenizer, "%s", al_error_message());
    cr_expect_eq(al_tokenizer_apply_config(tokenizer, config), -1);
    cr_expect_neq(strstr(al_error_message(), config), NULL, "%s", al_error_message());
    al_tokenizer_free(tokenizer);

    free(json);
    free(other);
    free(merge);
    free(huge);
    free(metaspace);
    free(model);
    free(config);
    free(dir);
}

/* ---- thread safety ---- */

Test(tokenizer_api, encoding_on_several_threads_gives_the_serial_result)
{
    struct al_tokenizer *tokenizer = load_shared_dir("tokenizers/qwen2.5");
    enum { TEXT_COUNT = 64 };
    char *texts[TEXT_COUNT];
    struct al_tokens serial[TEXT_COUNT];
    for (int i = 0; i < TEXT_COUNT; i++) {
        texts[i] = al_strdup_printf("<|im_start|>user\nRequest %d: caf\xc3\xa9 %d \xf0\x9f\xa6\x99 %s<|im_end|>", i,
                                    i * 7919, i % 2 ? "tools" : "text");
        serial[i] = encode(tokenizer, texts[i], AL_TOKENIZE_PARSE_SPECIAL);
    }
    int mismatches = 0;
#pragma omp parallel for num_threads(4) reduction(+ : mismatches)
    for (int i = 0; i < TEXT_COUNT; i++) {
        for (int repeat = 0; repeat < 4; repeat++) {
            struct al_tokens tokens = {0};
            if (al_tokenizer_encode(tokenizer, texts[i], strlen(texts[i]), AL_TOKENIZE_PARSE_SPECIAL, &tokens) != 0 ||
                tokens.count != serial[i].count ||
                memcmp(tokens.ids, serial[i].ids, tokens.count * sizeof *tokens.ids) != 0 ||
                memcmp(tokens.offsets, serial[i].offsets, tokens.count * sizeof *tokens.offsets) != 0)
                mismatches++;
            al_tokens_free(&tokens);
        }
    }
    cr_expect_eq(mismatches, 0);
    for (int i = 0; i < TEXT_COUNT; i++) {
        cr_expect_gt(serial[i].count, 10);
        al_tokens_free(&serial[i]);
        free(texts[i]);
    }
    al_tokenizer_free(tokenizer);
}
