/* RoPE inverse frequencies, with the llama3 frequency-dependent scaling. */
#include <math.h>

#include "agentlora/model.h"

void al_rope_inverse_frequencies(const struct al_model_config *config, float *inv_freq)
{
    int half = config->head_dim / 2;
    for (int j = 0; j < half; j++) {
        /* As Hugging Face: the exponent 2j/dim is formed in float32, the power in float32. */
        float exponent = (float)(2 * j) / (float)config->head_dim;
        float base = 1.0f / powf((float)config->rope_theta, exponent);
        inv_freq[j] = base;
        if (!config->rope_llama3)
            continue;
        /* llama3: long wavelengths are divided by factor, short ones kept, and the band in
         * between interpolated smoothly between the two. */
        double old_context = config->rope_original_max_position;
        double low_freq_wavelen = old_context / config->rope_low_freq_factor;
        double high_freq_wavelen = old_context / config->rope_high_freq_factor;
        double wavelen = 2.0 * M_PI / base;
        if (wavelen > low_freq_wavelen) {
            inv_freq[j] = base / config->rope_factor;
        } else if (wavelen >= high_freq_wavelen) {
            double smooth = (old_context / wavelen - config->rope_low_freq_factor) /
                            (config->rope_high_freq_factor - config->rope_low_freq_factor);
            inv_freq[j] = (float)((1.0 - smooth) * base / config->rope_factor + smooth * base);
        }
    }
}
