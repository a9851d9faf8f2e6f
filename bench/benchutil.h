/*
 * bench/benchutil.h - what every benchmark program needs (benchutil.c,
 * linked into each of them; not a program itself).
 */
#ifndef LXM_BENCHUTIL_H
#define LXM_BENCHUTIL_H

/* Seconds on the monotonic clock. */
double lxm_bench_now(void);
/* Sort v[0..n) ascending, then its median (n > 0). */
double lxm_bench_median(double *v, int n);

#endif /* LXM_BENCHUTIL_H */
