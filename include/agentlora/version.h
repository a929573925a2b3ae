/* The release of agentlora this source tree is (`agentlora --version`). */
#ifndef AGENTLORA_VERSION_H
#define AGENTLORA_VERSION_H

#define AL_VERSION "0.1.0"

#endif
