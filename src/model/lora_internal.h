/* Shared between the LoRA files of src/model/. */
#ifndef AGENTLORA_LORA_INTERNAL_H
#define AGENTLORA_LORA_INTERNAL_H

#include "agentlora/lora.h"

/* Lays out slots for config and allocates zeroed parameters and gradients. */
struct al_lora *al_lora_allocate_internal(const struct al_model_config *model, struct al_backend *backend,
                                          const struct al_lora_config *config);

#endif
