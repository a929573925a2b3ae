/* Block layouts of ggml tensor types, shared by the GGUF reader (to size tensors) and
 * the dequantiser. */
#ifndef AGENTLORA_GGUF_INTERNAL_H
#define AGENTLORA_GGUF_INTERNAL_H

#include <stdbool.h>

#include "agentlora/gguf.h"

struct al_ggml_layout {
    int block_values; /* values per block (1 for plain types) */
    int block_bytes;  /* bytes per block */
};

/* The layout of a type, or false when this engine does not know it. */
bool al_ggml_layout_of(enum al_ggml_type type, struct al_ggml_layout *out);

#endif
