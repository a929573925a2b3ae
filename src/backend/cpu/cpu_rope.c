/* Rotary position embedding, rotate-half layout: within each head, element j pairs with
 * element j + head_dim/2 and the pair turns by angle pos * inv_freq[j]. */
#include <math.h>

#include "agentlora/error.h"
#include "backend/cpu/cpu_ops.h"

/* direction +1 rotates forward; -1 applies the inverse (transpose) rotation, which is the
 * gradient of the forward rotation. */
static int rope_apply(const char *op, float *x, const int32_t *pos, const float *inv_freq, int64_t n, int heads,
                      int head_dim, float direction)
{
    if (al_cpu_check_shape(op, n, heads) != 0)
        return -1;
    if (head_dim <= 0 || head_dim % 2 != 0)
        return al_fail("%s: head_dim must be positive and even, got %d", op, head_dim);
    int half = head_dim / 2;

#pragma omp parallel for schedule(static) AL_CPU_PARALLEL_IF(n * heads * head_dim)
    for (int64_t i = 0; i < n; i++) {
        for (int j = 0; j < half; j++) {
            /* As Hugging Face: the angle is formed in F32, then cos and sin in F32. */
            float angle = (float)pos[i] * inv_freq[j];
            float c = cosf(angle);
            float s = direction * sinf(angle);
            for (int h = 0; h < heads; h++) {
                float *head = x + (i * heads + h) * head_dim;
                float first = head[j];
                float second = head[j + half];
                head[j] = first * c - second * s;
                head[j + half] = second * c + first * s;
            }
        }
    }
    return 0;
}

int al_cpu_rope_forward(struct al_backend *backend, void *x, const int32_t *pos, const float *inv_freq,
                        int64_t n, int heads, int head_dim)
{
    (void)backend;
    return rope_apply("cpu rope_forward", x, pos, inv_freq, n, heads, head_dim, 1.0f);
}

int al_cpu_rope_backward(struct al_backend *backend, void *dx, const int32_t *pos, const float *inv_freq,
                         int64_t n, int heads, int head_dim)
{
    (void)backend;
    return rope_apply("cpu rope_backward", dx, pos, inv_freq, n, heads, head_dim, -1.0f);
}
