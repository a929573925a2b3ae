/* The mistral-v3 render, tokenized with the real SentencePiece v3 model, against the
 * token ids of mistral-common's reference samples: the text form and the tokenizer
 * together must give exactly what Mistral's own tokenizer gives. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/chat_template.h"
#include "agentlora/conversation.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/tokenizer.h"
#include "test_support.h"

static void check_sample_tokens(const char *sample)
{
    char *dir = test_shared_path("templates/mistral-common-samples");
    char *model_path = test_shared_path("tokenizers/mistral-sentencepiece/tokenizer.model.v3");
    char *sample_path = al_strdup_printf("%s/%s/sample.json", dir, sample);
    char *tokens_path = al_strdup_printf("%s/%s/tokens_v3.json", dir, sample);

    size_t length;
    char *record_text = al_file_read_all(sample_path, &length);
    cr_assert_not_null(record_text, "%s", al_error_message());
    struct al_conversation conv;
    cr_assert_eq(al_conversation_from_text(&conv, record_text, length, sample_path, 1), 0, "%s",
                 al_error_message());
    struct al_rendered_chat rendered;
    cr_assert_eq(al_chat_render(AL_CHAT_MISTRAL_V3, &conv, NULL, &rendered), 0, "%s", al_error_message());

    struct al_tokenizer *tokenizer = al_tokenizer_load_sentencepiece(model_path);
    cr_assert_not_null(tokenizer, "%s", al_error_message());
    struct al_tokens tokens = {0};
    /* The render holds its own <s>; control tokens written in it are parsed. */
    cr_assert_eq(al_tokenizer_encode(tokenizer, rendered.text, rendered.length, AL_TOKENIZE_PARSE_SPECIAL, &tokens),
                 0, "%s", al_error_message());

    cJSON *document = al_json_load_file(tokens_path);
    cr_assert_not_null(document, "%s", al_error_message());
    const cJSON *expected = cJSON_GetObjectItemCaseSensitive(document, "tokens");
    cr_assert(cJSON_IsArray(expected), "%s has no \"tokens\" list", tokens_path);
    size_t n_expected = (size_t)cJSON_GetArraySize(expected);
    size_t i = 0;
    const cJSON *id;
    cJSON_ArrayForEach(id, expected) {
        cr_assert_lt(i, tokens.count, "%s: only %zu tokens, expected %zu", sample, tokens.count, n_expected);
        cr_assert_eq(tokens.ids[i], (int32_t)id->valueint, "%s: token %zu is %d (%s), expected %d (%s)", sample, i,
                     tokens.ids[i], al_tokenizer_id_to_piece(tokenizer, tokens.ids[i]), id->valueint,
                     al_tokenizer_id_to_piece(tokenizer, id->valueint));
        i++;
    }
    cr_assert_eq(tokens.count, n_expected, "%s: %zu tokens, expected %zu", sample, tokens.count, n_expected);

    cJSON_Delete(document);
    al_tokens_free(&tokens);
    al_tokenizer_free(tokenizer);
    al_rendered_chat_free(&rendered);
    al_conversation_free(&conv);
    free(record_text);
    free(tokens_path);
    free(sample_path);
    free(model_path);
    free(dir);
}

Test(chat_template_mistral_tokens, no_tools) { check_sample_tokens("no_tools"); }
Test(chat_template_mistral_tokens, get_weather_full) { check_sample_tokens("get_weather_full"); }
Test(chat_template_mistral_tokens, get_weather_no_history) { check_sample_tokens("get_weather_no_history"); }
Test(chat_template_mistral_tokens, get_weather_no_system_prompt) { check_sample_tokens("get_weather_no_system_prompt"); }
Test(chat_template_mistral_tokens, parallel_calls) { check_sample_tokens("parallel_calls"); }
Test(chat_template_mistral_tokens, several_calls) { check_sample_tokens("several_calls"); }
