/* Checkpoints: exact round trip, corruption and incompleteness detected, leftovers
 * ignored, resume selection, keep-last-K. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentlora/checkpoint.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/log.h"
#include "agentlora/lora.h"
#include "agentlora/optimizer.h"
#include "backend/backend.h"
#include "test_support.h"

struct fixture {
    struct al_model_config model;
    struct al_backend *backend;
    struct al_lora *lora;
    struct al_optimizer *optimizer;
    struct al_train_config config;
    struct al_schedule schedule;
    struct al_trainer_state state;
    double losses[3];
    char *run_dir;
};

static struct al_model_config tiny_model(void)
{
    struct al_model_config config = {0};
    config.hidden_size = 8;
    config.intermediate_size = 12;
    config.num_hidden_layers = 2;
    config.num_attention_heads = 2;
    config.num_key_value_heads = 1;
    config.head_dim = 4;
    config.vocab_size = 16;
    return config;
}

static void fill_random_state(struct fixture *f, uint64_t seed)
{
    int64_t n = f->lora->num_params;
    float *a = malloc((size_t)n * sizeof(float)), *b = malloc((size_t)n * sizeof(float)),
          *c = malloc((size_t)n * sizeof(float));
    test_fill_random(a, n, seed, 1.0f);
    test_fill_random(b, n, seed + 1, 1.0f);
    test_fill_random(c, n, seed + 2, 1.0f);
    for (int64_t i = 0; i < n; i++)
        c[i] = c[i] * c[i];
    cr_assert_eq(al_lora_upload_params(f->lora, a), 0);
    cr_assert_eq(al_optimizer_upload_state(f->optimizer, b, c, 17, 2, 0), 0);
    free(a), free(b), free(c);
}

static struct fixture setup(void)
{
    al_log_set_level(AL_LOG_QUIET);
    struct fixture f = {0};
    f.model = tiny_model();
    f.backend = al_backend_cpu_create();
    al_train_config_defaults(&f.config);
    char *tmp = test_tmpdir();
    snprintf(f.config.output_dir, sizeof f.config.output_dir, "%s", tmp);
    free(tmp);
    snprintf(f.config.model, sizeof f.config.model, "tiny-model");
    f.config.keep_last = 100;
    f.run_dir = al_run_dir(&f.config);
    struct al_lora_config lora;
    cr_assert_eq(al_train_config_lora(&f.config, &lora), 0);
    lora.rank = 2;
    f.config.lora_r = 2;
    f.lora = al_lora_create(&f.model, f.backend, &lora, 3);
    cr_assert_not_null(f.lora, "%s", al_error_message());
    struct al_adamw_config adamw = al_adamw_defaults();
    f.optimizer = al_optimizer_create(f.backend, f.lora->num_params, &adamw);
    fill_random_state(&f, 5);
    cr_assert_eq(al_schedule_init(&f.schedule, AL_SCHEDULE_COSINE, 2e-4, 100, 3), 0);
    f.state.step = 17;
    f.state.tokens_seen = 123456789012345LL;
    f.state.elapsed_seconds = 12.25;
    f.state.num_rngs = 2;
    snprintf(f.state.rngs[0].name, AL_CHECKPOINT_RNG_NAME_MAX, "data");
    f.state.rngs[0].rng = (struct al_rng){.state = 0xfedcba9876543211ULL, .increment = 0x9e3779b97f4a7c15ULL};
    snprintf(f.state.rngs[1].name, AL_CHECKPOINT_RNG_NAME_MAX, "dropout");
    f.state.rngs[1].rng = (struct al_rng){.state = 1, .increment = UINT64_MAX};
    f.state.data_cursor = cJSON_Parse("{\"epoch\": 2, \"position\": 41}");
    f.losses[0] = 2.5;
    f.losses[1] = 0.1 + 0.2;
    f.losses[2] = 1.0 / 3.0;
    f.state.loss_history_count = 3; /* loss_history points into the fixture: set in save_at */
    return f;
}

static void teardown(struct fixture *f)
{
    cJSON_Delete(f->state.data_cursor);
    al_optimizer_free(f->optimizer);
    al_lora_free(f->lora);
    al_backend_destroy(f->backend);
    free(f->run_dir);
}

static char *save_at(struct fixture *f, int64_t step)
{
    f->state.step = step;
    f->state.loss_history = f->losses;
    struct al_checkpoint_save_args args = {f->run_dir, &f->config, &f->state, &f->schedule, f->lora, f->optimizer};
    char *path = NULL;
    cr_assert_eq(al_checkpoint_save(&args, &path), 0, "%s", al_error_message());
    return path;
}

static char *file_in(const char *dir, const char *name)
{
    return al_path_join(dir, name);
}

static void flip_byte(const char *path, long offset)
{
    FILE *file = fopen(path, "r+b");
    cr_assert_not_null(file, "%s", path);
    fseek(file, offset, SEEK_SET);
    int c = fgetc(file);
    fseek(file, offset, SEEK_SET);
    fputc(c ^ 0x01, file);
    fclose(file);
}

static long file_size(const char *path)
{
    struct stat info;
    cr_assert_eq(stat(path, &info), 0, "%s", path);
    return (long)info.st_size;
}

static void assert_same_floats(const float *a, const float *b, int64_t n, const char *what)
{
    cr_assert_eq(memcmp(a, b, (size_t)n * sizeof(float)), 0, "%s differ", what);
}

Test(train_checkpoint, round_trip_is_exact)
{
    struct fixture f = setup();
    char *path = save_at(&f, 17);
    int64_t n = f.lora->num_params;
    struct al_checkpoint ck;
    cr_assert_eq(al_checkpoint_load(&ck, path), 0, "%s", al_error_message());
    float *params = malloc((size_t)n * sizeof(float)), *m = malloc((size_t)n * sizeof(float)),
          *v = malloc((size_t)n * sizeof(float));
    cr_assert_eq(al_lora_download_params(f.lora, params), 0);
    cr_assert_eq(al_optimizer_download_state(f.optimizer, m, v), 0);
    cr_assert_eq(ck.num_params, n);
    assert_same_floats(ck.params, params, n, "params");
    assert_same_floats(ck.m, m, n, "first moments");
    assert_same_floats(ck.v, v, n, "second moments");
    cr_assert_eq(ck.state.step, 17);
    cr_assert_eq(ck.state.tokens_seen, 123456789012345LL);
    cr_assert_eq(ck.state.elapsed_seconds, 12.25);
    cr_assert_eq(ck.optimizer_updates, 17);
    cr_assert_eq(ck.nonfinite_total, 2);
    cr_assert_eq(ck.state.num_rngs, 2);
    cr_assert_str_eq(ck.state.rngs[0].name, "data");
    cr_assert_eq(ck.state.rngs[0].rng.state, 0xfedcba9876543211ULL, "64-bit RNG state survives JSON");
    cr_assert_eq(ck.state.rngs[0].rng.increment, 0x9e3779b97f4a7c15ULL);
    cr_assert_eq(ck.state.rngs[1].rng.increment, UINT64_MAX);
    cr_assert(cJSON_Compare(ck.state.data_cursor, f.state.data_cursor, true), "data cursor kept as given");
    cr_assert_eq(ck.state.loss_history_count, 3);
    cr_assert_eq(memcmp(ck.state.loss_history, f.losses, sizeof f.losses), 0, "losses exact");
    cr_assert_eq(ck.schedule.kind, AL_SCHEDULE_COSINE);
    cr_assert_eq(ck.schedule.warmup_steps, 3);
    cr_assert_eq(ck.schedule.total_steps, 100);
    cr_assert_eq(ck.schedule.peak_lr, 2e-4);
    const char *names[4];
    cr_assert_eq(al_train_config_fixed_differences(&ck.config, &f.config, names, 4), 0);
    cr_assert_eq(ck.config.lr, f.config.lr);

    /* Restoring onto a fresh adapter and optimizer reproduces the saved state. */
    struct al_lora_config lora_config = f.lora->config;
    struct al_lora *fresh = al_lora_create(&f.model, f.backend, &lora_config, 99);
    struct al_adamw_config adamw = al_adamw_defaults();
    struct al_optimizer *fresh_optimizer = al_optimizer_create(f.backend, n, &adamw);
    cr_assert_eq(al_checkpoint_restore(&ck, fresh, fresh_optimizer), 0, "%s", al_error_message());
    float *got = malloc((size_t)n * sizeof(float));
    cr_assert_eq(al_lora_download_params(fresh, got), 0);
    assert_same_floats(got, params, n, "restored params");
    cr_assert_eq(fresh_optimizer->updates, 17);

    /* The folder is also a PEFT adapter. */
    struct al_lora *peft = al_lora_load_peft(&f.model, f.backend, path);
    cr_assert_not_null(peft, "%s", al_error_message());
    cr_assert_eq(al_lora_download_params(peft, got), 0);
    assert_same_floats(got, params, n, "PEFT adapter params");

    char *latest_path = file_in(f.run_dir, "latest");
    char *latest = al_file_read_all(latest_path, NULL);
    cr_assert_str_eq(latest, "checkpoint-17\n");
    free(latest), free(latest_path);
    al_lora_free(peft);
    al_lora_free(fresh);
    al_optimizer_free(fresh_optimizer);
    al_checkpoint_release(&ck);
    free(params), free(m), free(v), free(got), free(path);
    teardown(&f);
}

Test(train_checkpoint, a_flipped_byte_in_any_file_is_detected)
{
    struct fixture f = setup();
    char *path = save_at(&f, 3);
    static const char *const files[] = {"adapter_config.json", "adapter_model.safetensors", "optimizer.safetensors",
                                        "trainer_state.json", "MANIFEST"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *file = file_in(path, files[i]);
        long size = file_size(file);
        long offsets[] = {0, size / 2, size - 2};
        for (int k = 0; k < 3; k++) {
            flip_byte(file, offsets[k]);
            struct al_checkpoint ck;
            cr_assert_eq(al_checkpoint_verify(path), -1, "%s byte %ld flipped but verified", files[i], offsets[k]);
            cr_assert(strstr(al_error_message(), files[i]), "error names the file: %s", al_error_message());
            cr_assert_eq(al_checkpoint_load(&ck, path), -1, "a damaged checkpoint never loads");
            flip_byte(file, offsets[k]);
            cr_assert_eq(al_checkpoint_verify(path), 0, "%s", al_error_message());
        }
        free(file);
    }
    free(path);
    teardown(&f);
}

Test(train_checkpoint, missing_or_truncated_files_are_detected)
{
    struct fixture f = setup();
    char *path = save_at(&f, 4);
    char *optimizer = file_in(path, "optimizer.safetensors");
    char *state = file_in(path, "trainer_state.json");
    char *manifest = file_in(path, "MANIFEST");
    cr_assert_eq(truncate(state, file_size(state) - 1), 0);
    cr_assert_eq(al_checkpoint_verify(path), -1);
    cr_assert(strstr(al_error_message(), "trainer_state.json") && strstr(al_error_message(), "bytes"), "%s",
              al_error_message());
    cr_assert_eq(unlink(optimizer), 0);
    cr_assert_eq(al_checkpoint_verify(path), -1);
    cr_assert(strstr(al_error_message(), "optimizer.safetensors"), "%s", al_error_message());
    cr_assert_eq(unlink(manifest), 0);
    cr_assert_eq(al_checkpoint_verify(path), -1);
    cr_assert(strstr(al_error_message(), "incomplete"), "%s", al_error_message());
    free(optimizer), free(state), free(manifest), free(path);
    teardown(&f);
}

Test(train_checkpoint, resume_ignores_leftover_temporary_folders)
{
    struct fixture f = setup();
    char *path = save_at(&f, 10);
    /* A save of step 20 that was killed halfway: some files, no MANIFEST, temp name. */
    char *temp = al_strdup_printf("%s/checkpoint-20.tmp", f.run_dir);
    cr_assert_eq(al_mkdirs(temp), 0);
    free(test_write_file(temp, "trainer_state.json", "{", 1));
    int64_t *steps;
    int count;
    cr_assert_eq(al_checkpoint_list(f.run_dir, &steps, &count), 0);
    cr_assert_eq(count, 1);
    cr_assert_eq(steps[0], 10);
    free(steps);
    char *chosen = NULL;
    cr_assert_eq(al_checkpoint_find_resume(f.run_dir, &chosen), 0, "%s", al_error_message());
    cr_assert_str_eq(chosen, path);
    /* The next save cleans the leftover up. */
    free(save_at(&f, 11));
    cr_assert(!al_dir_exists(temp));
    free(chosen), free(temp), free(path);
    teardown(&f);
}

Test(train_checkpoint, resume_falls_back_when_latest_is_broken)
{
    struct fixture f = setup();
    char *first = save_at(&f, 10);
    char *second = save_at(&f, 20);
    char *chosen = NULL;
    cr_assert_eq(al_checkpoint_find_resume(f.run_dir, &chosen), 0);
    cr_assert_str_eq(chosen, second);
    free(chosen);

    char *optimizer = file_in(second, "optimizer.safetensors");
    flip_byte(optimizer, 100);
    cr_assert_eq(al_checkpoint_find_resume(f.run_dir, &chosen), 0, "%s", al_error_message());
    cr_assert_str_eq(chosen, first, "latest is damaged: the newest intact one is used");
    free(chosen);

    char *latest = file_in(f.run_dir, "latest");
    cr_assert_eq(unlink(latest), 0);
    cr_assert_eq(al_checkpoint_find_resume(f.run_dir, &chosen), 0);
    cr_assert_str_eq(chosen, first, "without latest, the newest intact one");
    free(chosen);

    char *state = file_in(first, "trainer_state.json");
    flip_byte(state, 10);
    cr_assert_eq(al_checkpoint_find_resume(f.run_dir, &chosen), -1, "every checkpoint is damaged");
    cr_assert_null(chosen);
    cr_assert(strstr(al_error_message(), "no intact checkpoint"), "%s", al_error_message());
    free(state), free(latest), free(optimizer), free(first), free(second);
    teardown(&f);
}

Test(train_checkpoint, fresh_run_has_nothing_to_resume)
{
    struct fixture f = setup();
    char *chosen = (char *)"sentinel";
    cr_assert_eq(al_checkpoint_find_resume(f.run_dir, &chosen), 0, "%s", al_error_message());
    cr_assert_null(chosen);
    teardown(&f);
}

Test(train_checkpoint, keeps_only_the_last_k)
{
    struct fixture f = setup();
    f.config.keep_last = 2;
    for (int step = 1; step <= 5; step++)
        free(save_at(&f, step * 10));
    int64_t *steps;
    int count;
    cr_assert_eq(al_checkpoint_list(f.run_dir, &steps, &count), 0);
    cr_assert_eq(count, 2);
    cr_assert_eq(steps[0], 40);
    cr_assert_eq(steps[1], 50);
    free(steps);
    char *chosen = NULL;
    cr_assert_eq(al_checkpoint_find_resume(f.run_dir, &chosen), 0);
    cr_assert(strstr(chosen, "checkpoint-50"));
    free(chosen);
    teardown(&f);
}

Test(train_checkpoint, saving_the_same_step_again_replaces_it)
{
    struct fixture f = setup();
    free(save_at(&f, 10));
    fill_random_state(&f, 77);
    char *path = save_at(&f, 10);
    struct al_checkpoint ck;
    cr_assert_eq(al_checkpoint_load(&ck, path), 0, "%s", al_error_message());
    float *params = malloc((size_t)f.lora->num_params * sizeof(float));
    cr_assert_eq(al_lora_download_params(f.lora, params), 0);
    assert_same_floats(ck.params, params, f.lora->num_params, "replaced params");
    al_checkpoint_release(&ck);
    free(params), free(path);
    teardown(&f);
}

Test(train_checkpoint, restore_refuses_a_different_adapter_size)
{
    struct fixture f = setup();
    char *path = save_at(&f, 1);
    struct al_checkpoint ck;
    cr_assert_eq(al_checkpoint_load(&ck, path), 0);
    struct al_lora_config bigger = f.lora->config;
    bigger.rank = 4;
    struct al_lora *other = al_lora_create(&f.model, f.backend, &bigger, 1);
    cr_assert_eq(al_checkpoint_restore(&ck, other, f.optimizer), -1);
    cr_assert(strstr(al_error_message(), "parameters"), "%s", al_error_message());
    al_lora_free(other);
    al_checkpoint_release(&ck);
    free(path);
    teardown(&f);
}

/* AdamW steps with gradients drawn from the step number, some large enough to clip. */
static void train_steps(struct al_lora *lora, struct al_optimizer *optimizer, struct al_backend *backend, int first,
                        int count)
{
    float *grads = malloc((size_t)lora->num_params * sizeof(float));
    for (int step = first; step < first + count; step++) {
        test_fill_random(grads, lora->num_params, 1000 + (uint64_t)step, step % 2 ? 3.0f : 0.02f);
        cr_assert_eq(backend->ops->copy_to_backend(backend, lora->grads, grads,
                                                   (size_t)lora->num_params * sizeof(float)), 0);
        cr_assert_eq(al_optimizer_step(optimizer, lora, 1e-2f, NULL), 0, "%s", al_error_message());
    }
    free(grads);
}

Test(train_checkpoint, resuming_continues_bit_for_bit)
{
    struct fixture f = setup();
    train_steps(f.lora, f.optimizer, f.backend, 0, 3);
    char *path = save_at(&f, 3);
    train_steps(f.lora, f.optimizer, f.backend, 3, 3);
    int64_t n = f.lora->num_params;
    float *uninterrupted = malloc((size_t)n * sizeof(float)), *resumed = malloc((size_t)n * sizeof(float));
    cr_assert_eq(al_lora_download_params(f.lora, uninterrupted), 0);

    struct al_checkpoint ck;
    cr_assert_eq(al_checkpoint_load(&ck, path), 0, "%s", al_error_message());
    struct al_lora_config lora_config = f.lora->config;
    struct al_lora *lora = al_lora_create(&f.model, f.backend, &lora_config, 1234);
    struct al_adamw_config adamw = al_adamw_defaults();
    struct al_optimizer *optimizer = al_optimizer_create(f.backend, n, &adamw);
    cr_assert_eq(al_checkpoint_restore(&ck, lora, optimizer), 0, "%s", al_error_message());
    train_steps(lora, optimizer, f.backend, 3, 3);
    cr_assert_eq(al_lora_download_params(lora, resumed), 0);
    cr_assert_eq(memcmp(resumed, uninterrupted, (size_t)n * sizeof(float)), 0,
                 "the resumed run must match the uninterrupted one bit for bit");
    cr_assert_eq(optimizer->updates, f.optimizer->updates);
    al_optimizer_free(optimizer);
    al_lora_free(lora);
    al_checkpoint_release(&ck);
    free(uninterrupted), free(resumed), free(path);
    teardown(&f);
}

/* What a kill can leave goes; a user's own files stay; an .old folder that is a step's
 * only copy comes back under its name. */
Test(train_checkpoint, clean_leftovers_removes_debris_only_and_restores_a_moved_aside_step)
{
    struct fixture f = setup();
    free(save_at(&f, 10));
    free(save_at(&f, 11));
    char *step10 = al_strdup_printf("%s/checkpoint-10", f.run_dir);
    char *aside10 = al_strdup_printf("%s/checkpoint-10.old", f.run_dir);
    cr_assert_eq(rename(step10, aside10), 0);
    char *deleting = al_strdup_printf("%s/checkpoint-3.deleting", f.run_dir);
    cr_assert_eq(al_mkdirs(deleting), 0);
    free(test_write_file(deleting, "adapter_model.safetensors", "x", 1));
    static const char *const debris[] = {"latest.tmp.12345", "metrics.jsonl.tmp.7", "gen_eval.json.tmp.99"};
    static const char *const kept[] = {"notes.tmp.txt", "latest.tmp.", "data.tmp.12a", "checkpoint-4.backup"};
    for (int i = 0; i < 3; i++)
        free(test_write_file(f.run_dir, debris[i], "x", 1));
    for (int i = 0; i < 4; i++)
        free(test_write_file(f.run_dir, kept[i], "x", 1));
    cr_assert_eq(al_checkpoint_clean_leftovers(f.run_dir), 4, "three files and one folder removed");
    cr_assert(al_dir_exists(step10) && !al_dir_exists(aside10), "checkpoint-10 is back");
    cr_assert(!al_dir_exists(deleting));
    for (int i = 0; i < 3; i++) {
        char *path = al_path_join(f.run_dir, debris[i]);
        cr_assert(!al_file_exists(path), "%s", path);
        free(path);
    }
    for (int i = 0; i < 4; i++) {
        char *path = al_path_join(f.run_dir, kept[i]);
        cr_assert(al_file_exists(path), "%s was removed", path);
        free(path);
    }
    free(step10), free(aside10), free(deleting);
    teardown(&f);
}
