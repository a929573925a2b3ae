/* Whether OpenBLAS runs slower kernels than this CPU supports; see cpu_blas_core.c. */
#ifndef AGENTLORA_CPU_BLAS_CORE_H
#define AGENTLORA_CPU_BLAS_CORE_H

/* The OPENBLAS_CORETYPE value ("SkylakeX", "Haswell") of faster kernels this CPU can run
 * than the ones OpenBLAS chose, or NULL when its choice is already as good. */
const char *al_cpu_blas_better_core(void);

#endif
