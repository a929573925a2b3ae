/* Hints for mistakes in a training config (see train_config_hints.c). */
#ifndef AGENTLORA_TRAIN_CONFIG_HINTS_H
#define AGENTLORA_TRAIN_CONFIG_HINTS_H

/* The key a misspelt name most likely meant, or NULL. */
const char *al_train_config_closest_key(const char *name);
/* -1: "unknown key 'lora_rank'; did you mean lora_r?" (the suggestion when there is one). */
int al_train_config_unknown_key(const char *name);
/* -1 with how to convert it when the config file at path is YAML, not JSON; 0 otherwise. */
int al_train_config_refuse_yaml(const char *path);
/* -1 when value (of key) names no local file or folder and looks like a Hub id "org/name",
 * saying how to download it; 0 otherwise. */
int al_train_config_refuse_hub_id(const char *key, const char *value);

#endif
