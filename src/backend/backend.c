/* Backend selection by name, shared helpers. */
#include "backend/backend.h"

#include <string.h>

#include "agentlora/error.h"
#include "agentlora/log.h"

#ifndef AL_HAVE_CUDA
struct al_backend *al_backend_cuda_create(int device_index)
{
    (void)device_index;
    return al_fail_null("this agentlora was built without CUDA (nvcc was not on the PATH at build time)");
}
#endif

struct al_backend *al_backend_create(const char *name)
{
    return al_backend_create_for_rank(name, 0);
}

struct al_backend *al_backend_create_for_rank(const char *name, int local_rank)
{
    if (!name || strcmp(name, "cpu") == 0)
        return al_backend_cpu_create();
    if (strcmp(name, "cuda") == 0)
        return al_backend_cuda_create(local_rank);
    if (strcmp(name, "auto") == 0) {
        struct al_backend *cuda = al_backend_cuda_create(local_rank);
        if (cuda)
            return cuda;
        al_log_debug("auto device: %s; using the CPU", al_error_message());
        al_error_clear();
        return al_backend_cpu_create();
    }
    return al_fail_null("unknown device '%s' (expected cpu, cuda or auto)", name);
}

void al_backend_destroy(struct al_backend *backend)
{
    if (backend)
        backend->ops->destroy(backend);
}

int al_backend_check_lora_args(const char *op, const struct al_lora_args *lora)
{
    if (!lora)
        return 0;
    if (lora->rank <= 0)
        return al_fail("%s: LoRA rank must be positive, got %d", op, lora->rank);
    if (!(lora->dropout >= 0.0f && lora->dropout < 1.0f))
        return al_fail("%s: LoRA dropout must be in [0, 1), got %g", op, (double)lora->dropout);
    if (!lora->A || !lora->B || !lora->xa)
        return al_fail("%s: LoRA arguments lack A, B or the xa buffer", op);
    return 0;
}

size_t al_backend_act_bytes(const struct al_backend *backend, int64_t n)
{
    return (size_t)n * al_dtype_size(backend->act_dtype);
}
