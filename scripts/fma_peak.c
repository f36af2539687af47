// fma_peak.c — the CPU's native fp32 multiply-add rate, to read the software driver's ceiling
// (`tern bench --suite roofline`) against: 12 independent chains of fused multiply-adds per
// thread (enough to hide their latency on two FMA units), at 256 and 512 bits, and the 256-bit
// chains as a separate multiply and add.
//
//     gcc -O3 -march=native -ffp-contract=off -fopenmp scripts/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak
//
// OMP_NUM_THREADS sets the threads (default: every core, as llvmpipe and PyTorch use).
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <time.h>

#define CHAINS 12
#define ITERS 20000000L

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// GFLOP/s of `kind` (0: 256-bit FMA, 1: 512-bit FMA, 2: 256-bit multiply then add), best of 3.
static double rate(int kind) {
    double best = 0.0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        float sink = 0.0f;
#pragma omp parallel reduction(+ : sink)
        {
            if (kind == 1) {
                __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f), a[CHAINS];
                for (int i = 0; i < CHAINS; i++) a[i] = _mm512_set1_ps(i * 0.01f);
                for (long k = 0; k < ITERS; k++)
                    for (int i = 0; i < CHAINS; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
                for (int i = 0; i < CHAINS; i++) sink += _mm512_reduce_add_ps(a[i]);
            } else {
                __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f), a[CHAINS];
                for (int i = 0; i < CHAINS; i++) a[i] = _mm256_set1_ps(i * 0.01f);
                for (long k = 0; k < ITERS; k++)
                    for (int i = 0; i < CHAINS; i++)
                        a[i] = kind == 0 ? _mm256_fmadd_ps(a[i], m, c) : _mm256_add_ps(_mm256_mul_ps(a[i], m), c);
                float o[8];
                for (int i = 0; i < CHAINS; i++) {
                    _mm256_storeu_ps(o, a[i]);
                    sink += o[0];
                }
            }
        }
        double lanes = kind == 1 ? 16 : 8;
        double gflops = 2.0 * lanes * CHAINS * ITERS * omp_get_max_threads() / (now() - t0) / 1e9;
        if (gflops > best) best = gflops;
        if (sink == 12345.0f) printf(" ");
    }
    return best;
}

int main(void) {
    printf("%d threads: FMA 256-bit %.1f GFLOP/s, FMA 512-bit %.1f GFLOP/s, multiply + add 256-bit %.1f GFLOP/s\n",
           omp_get_max_threads(), rate(0), rate(1), rate(2));
    return 0;
}
