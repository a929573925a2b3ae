#include "train_testing.h"

#include <stdlib.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/tokenizer.h"
#include "test_support.h"
#include "tiny_model.h"

#define DEMO_TOKENIZER "data/demo-tokenizer"

int test_write_trainable_model(const char *dir)
{
    struct al_tokenizer *tokenizer = al_tokenizer_load(DEMO_TOKENIZER);
    if (!tokenizer)
        return -1;
    struct tiny_model_spec spec = tiny_model_default_spec();
    spec.hidden_size = 32;
    spec.intermediate_size = 64;
    spec.num_heads = 4;
    spec.num_kv_heads = 2;
    spec.vocab_size = al_tokenizer_vocab_size(tokenizer);
    spec.max_position_embeddings = 2048;
    al_tokenizer_free(tokenizer);
    if (al_mkdirs(dir) != 0 || tiny_model_write(&spec, dir) != 0)
        return -1;
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        char *from = al_path_join(DEMO_TOKENIZER, files[i]), *to = al_path_join(dir, files[i]);
        int rc = test_copy_file(from, to);
        free(from);
        free(to);
        if (rc != 0)
            return al_fail("cannot copy %s", files[i]);
    }
    return 0;
}
