/* Whether OpenBLAS runs slower kernels than this CPU supports; see cpu_blas_core.c. */
#ifndef AGENTLORA_CPU_BLAS_CORE_H
#define AGENTLORA_CPU_BLAS_CORE_H

/* The OPENBLAS_CORETYPE value ("SkylakeX", "Haswell") of faster kernels this CPU can run
 * than the ones OpenBLAS chose, or NULL when its choice is already as good. */
const char *al_cpu_blas_better_core(void);

/* For a program's main: OpenBLAS reads OPENBLAS_CORETYPE only when it loads, so when it
 * chose slower kernels than the CPU runs, the process starts itself again (execv of
 * /proc/self/exe with the same argv) with the better ones named. A value already set (by
 * the user, or by the first start) is left alone, and a failed restart just carries on. */
void al_cpu_blas_use_best_kernels(char **argv);

#endif
