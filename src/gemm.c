/* gemm.c: the dense layer's three products in float, with AVX2 + FMA kernels.
 *
 *   forward      z[B][N]   = in[B][K] . W[N][K]^T + b[N]    dot form: both operands run along K
 *   weight grad  dW[N][K]  = delta[B][N]^T . in[B][K]       broadcast form: K is contiguous in C
 *   input grad   din[B][K] = delta[B][N] . W[N][K]          broadcast form, the same kernel
 *
 * Neither form packs its operands: in the forward product both matrices already run along K
 * (rows of `in` and rows of W), and in the two backward products the right-hand operand
 * (`in` or W) already has its columns contiguous, so that the kernel loads 16 of them per
 * vector pair while it broadcasts single values of delta. Nothing is allocated.
 *
 * Determinism: each output element is summed by one FMA chain (the broadcast kernels) or by
 * eight lane chains folded in a fixed order (the dot kernel), always over the whole reduction
 * in index order, so the thread count and the split never change a bit.
 *
 * These functions are compiled for AVX2 + FMA through target attributes, so the rest of the
 * library stays portable; mv_simd_enabled() says at run time whether they may be called.
 * Building with -DMV_NO_SIMD (make SIMD=portable) leaves only the portable loops of layers.c. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#include <omp.h>

#if MV_SIMD_KERNELS
#include <immintrin.h>
#endif


static int simd_state = -1; /* -1: not decided yet, 0: portable loops, 1: AVX2 kernels */

int mv_simd_enabled(void)
{
    int state = __atomic_load_n(&simd_state, __ATOMIC_RELAXED);
    if (state < 0) {
        state = 0;
#if MV_SIMD_KERNELS
        const char *env = getenv("MLPVIZ_SIMD");
        state = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                !(env && strcmp(env, "portable") == 0);
#endif
        __atomic_store_n(&simd_state, state, __ATOMIC_RELAXED);
    }
    return state;
}

void mv_simd_force(int enabled)
{
    __atomic_store_n(&simd_state, -1, __ATOMIC_RELAXED);
    const int available = mv_simd_enabled();
    __atomic_store_n(&simd_state, enabled && available, __ATOMIC_RELAXED);
}

const char *mv_simd_name(void) { return mv_simd_enabled() ? "avx2+fma" : "portable"; }

#if MV_SIMD_KERNELS

#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

/* Lanes 0..n-1 set (n in 0..8). */
AVX2 INLINE __m256i lanes_below(int n)
{
    static const int32_t ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                0,  0,  0,  0,  0,  0,  0,  0};
    return _mm256_loadu_si256((const __m256i *)(ones_then_zeros + 8 - n));
}

/* ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)): a fixed order, whatever the caller. */
AVX2 INLINE float fold_lanes(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ------------------------------------------------------------------ forward: dot form */

/* z[r][o] = b[o] + in[r] . W[o] for RB rows x OB outputs: RB x OB accumulators of 8 lanes
 * walk K together, so each loaded vector feeds OB (or RB) multiply-adds. At most 4 x 3 = 12
 * accumulators plus the 3 W vectors and one row vector: 16 registers. */
AVX2 INLINE void dot_tile(int RB, int OB, const float *in, const float *W, const float *b,
                          float *z, int K, int N)
{
    __m256 acc[4][3];
    for (int r = 0; r < RB; r++)
        for (int o = 0; o < OB; o++) acc[r][o] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 w[3];
        for (int o = 0; o < OB; o++) w[o] = _mm256_loadu_ps(W + (size_t)o * K + k);
        for (int r = 0; r < RB; r++) {
            const __m256 x = _mm256_loadu_ps(in + (size_t)r * K + k);
            for (int o = 0; o < OB; o++) acc[r][o] = _mm256_fmadd_ps(x, w[o], acc[r][o]);
        }
    }
    if (k < K) { /* masked tail: the loads stop at the end of each row */
        const __m256i m = lanes_below(K - k);
        __m256 w[3];
        for (int o = 0; o < OB; o++) w[o] = _mm256_maskload_ps(W + (size_t)o * K + k, m);
        for (int r = 0; r < RB; r++) {
            const __m256 x = _mm256_maskload_ps(in + (size_t)r * K + k, m);
            for (int o = 0; o < OB; o++) acc[r][o] = _mm256_fmadd_ps(x, w[o], acc[r][o]);
        }
    }
    for (int r = 0; r < RB; r++)
        for (int o = 0; o < OB; o++) z[(size_t)r * N + o] = b[o] + fold_lanes(acc[r][o]);
}

typedef void (*dot_tile_fn)(const float *, const float *, const float *, float *, int, int);
#define DOT_TILE(RB, OB)                                                                      \
    AVX2 static void dot_tile_##RB##_##OB(const float *in, const float *W, const float *b,   \
                                          float *z, int K, int N)                            \
    {                                                                                         \
        dot_tile(RB, OB, in, W, b, z, K, N);                                                  \
    }
DOT_TILE(1, 1) DOT_TILE(1, 2) DOT_TILE(1, 3)
DOT_TILE(2, 1) DOT_TILE(2, 2) DOT_TILE(2, 3)
DOT_TILE(3, 1) DOT_TILE(3, 2) DOT_TILE(3, 3)
DOT_TILE(4, 1) DOT_TILE(4, 2) DOT_TILE(4, 3)
static const dot_tile_fn dot_tiles[4][3] = {
    {dot_tile_1_1, dot_tile_1_2, dot_tile_1_3}, {dot_tile_2_1, dot_tile_2_2, dot_tile_2_3},
    {dot_tile_3_1, dot_tile_3_2, dot_tile_3_3}, {dot_tile_4_1, dot_tile_4_2, dot_tile_4_3}};

/* One input row against 8 outputs: the same eight-lane chains and fold as dot_tile, so a
 * row's z has the same bits alone as in a batch; one row vector feeds 8 multiply-adds
 * instead of 3, since a single row is load-bound. */
AVX2 INLINE void dot_row8(const float *in, const float *W, const float *b, float *z, int K)
{
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0,
           c7 = c0;
    int k = 0;
#define DOT_OUTPUT(o, LOAD) c##o = _mm256_fmadd_ps(x, LOAD(W + (size_t)o * K + k), c##o);
#define DOT_ALL(LOAD)                                                                         \
    DOT_OUTPUT(0, LOAD) DOT_OUTPUT(1, LOAD) DOT_OUTPUT(2, LOAD) DOT_OUTPUT(3, LOAD)             \
    DOT_OUTPUT(4, LOAD) DOT_OUTPUT(5, LOAD) DOT_OUTPUT(6, LOAD) DOT_OUTPUT(7, LOAD)
    for (; k + 8 <= K; k += 8) {
        const __m256 x = _mm256_loadu_ps(in + k);
        DOT_ALL(_mm256_loadu_ps)
    }
    if (k < K) {
        const __m256i m = lanes_below(K - k);
        const __m256 x = _mm256_maskload_ps(in + k, m);
#define MASKED(p) _mm256_maskload_ps(p, m)
        DOT_ALL(MASKED)
#undef MASKED
    }
#undef DOT_ALL
#undef DOT_OUTPUT
    z[0] = b[0] + fold_lanes(c0), z[1] = b[1] + fold_lanes(c1);
    z[2] = b[2] + fold_lanes(c2), z[3] = b[3] + fold_lanes(c3);
    z[4] = b[4] + fold_lanes(c4), z[5] = b[5] + fold_lanes(c5);
    z[6] = b[6] + fold_lanes(c6), z[7] = b[7] + fold_lanes(c7);
}

AVX2 static void dot_row8_fn(const float *in, const float *W, const float *b, float *z, int K)
{
    dot_row8(in, W, b, z, K);
}

/* A single row: blocks of 8 outputs split over the threads, the last few outputs by the
 * 1 x OB tiles. */
static void forward_one_row(const float *in, const float *W, const float *b, float *z, int K,
                            int N)
{
    const int blocks = N / 8;
    MV_FOR_EACH(int, blk, blocks, (long)K * N > MV_PARALLEL_SIMD_WORK && blocks > 1, {
        dot_row8_fn(in, W + (size_t)blk * 8 * K, b + blk * 8, z + blk * 8, K);
    });
    for (int o0 = blocks * 8; o0 < N; o0 += 3) {
        const int ob = N - o0 < 3 ? N - o0 : 3;
        dot_tiles[0][ob - 1](in, W + (size_t)o0 * K, b + o0, z + o0, K, N);
    }
}

void mv_simd_dense_forward(const float *in, const float *W, const float *b, float *z, int B,
                           int K, int N)
{
    if (B == 1) {
        forward_one_row(in, W, b, z, K, N);
        return;
    }
    enum { RB = 4, OB = 3, CHUNK = 16 }; /* CHUNK output blocks: 48 rows of W stay in L2 */
    const int blocks = (N + OB - 1) / OB, threads = omp_get_max_threads();
    /* At most CHUNK blocks a chunk, as many chunks as a multiple of the threads (when there
     * are blocks enough), blocks spread evenly: 43 blocks on 2 threads are 4 chunks of 10
     * or 11, not 16 + 16 + 11, which leaves one thread idle a third of the time. */
    int chunks = (blocks + CHUNK - 1) / CHUNK;
    chunks = (chunks + threads - 1) / threads * threads;
    chunks = chunks < blocks ? chunks : blocks;
    /* Row groups as even as possible (10 rows: 4 + 3 + 3, not 4 + 4 + 2): a thin group
     * feeds fewer multiply-adds per loaded vector. */
    const int groups = (B + RB - 1) / RB;
    const long work = (long)B * K * N;
    /* Split over chunks of outputs: each thread streams its own rows of W once, while a
     * group of RB input rows stays in L1 across the chunk. */
    MV_FOR_EACH(int, c, chunks, work > MV_PARALLEL_SIMD_WORK && chunks > 1, {
        const int first = (int)((long)c * blocks / chunks);
        const int last = (int)((long)(c + 1) * blocks / chunks);
        for (int g = 0; g < groups; g++) {
            const int r0 = (int)((long)g * B / groups), rb = (int)((long)(g + 1) * B / groups) - r0;
            for (int blk = first; blk < last; blk++) {
                const int o0 = blk * OB, ob = N - o0 < OB ? N - o0 : OB;
                dot_tiles[rb - 1][ob - 1](in + (size_t)r0 * K, W + (size_t)o0 * K, b + o0,
                                          z + (size_t)r0 * N + o0, K, N);
            }
        }
    });
}

/* ------------------------------------------------------------------ backward: broadcast form */

/* C[i][0..16) (+)= sum over k of A[i][k] * Bm[k][0..16) for MR rows (MR <= 6: 12
 * accumulators, the two B vectors and one broadcast fill the 16 registers). A is read through
 * strides (row a_rs, step a_ks) so that it can be delta or delta^T. WIDTH < 16 masks the
 * columns past the end of the matrix, in the loads as in the stores. With `resume` the
 * chains start from C, which holds the sums of the earlier steps: continuing a chain through
 * memory gives exactly the bits of an unbroken one. */
AVX2 INLINE void bcast_tile(int MR, int WIDTH, const float *A, size_t a_rs, size_t a_ks,
                            const float *Bm, size_t ldb, int kc, float *C, size_t ldc,
                            int resume)
{
    /* Named accumulators rather than an array: gcc keeps an array of 12 vectors in memory
     * and stores it on every step, which halves the speed. */
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const __m256i m0 = lanes_below(WIDTH >= 8 ? 8 : WIDTH);
    const __m256i m1 = lanes_below(WIDTH >= 16 ? 8 : WIDTH > 8 ? WIDTH - 8 : 0);
    if (resume) {
#define LOAD_ROW(i)                                                                           \
    if (MR > i) {                                                                             \
        const float *c = C + i * ldc;                                                         \
        c##i##0 = WIDTH == 16 ? _mm256_loadu_ps(c) : _mm256_maskload_ps(c, m0);               \
        c##i##1 = WIDTH == 16 ? _mm256_loadu_ps(c + 8) : _mm256_maskload_ps(c + 8, m1);       \
    }
        LOAD_ROW(0) LOAD_ROW(1) LOAD_ROW(2) LOAD_ROW(3) LOAD_ROW(4) LOAD_ROW(5)
#undef LOAD_ROW
    }
    for (int k = 0; k < kc; k++) {
        const float *row = Bm + (size_t)k * ldb;
        const __m256 b0 = WIDTH == 16 ? _mm256_loadu_ps(row) : _mm256_maskload_ps(row, m0);
        const __m256 b1 = WIDTH == 16 ? _mm256_loadu_ps(row + 8)
                                      : _mm256_maskload_ps(row + 8, m1);
        const float *a = A + (size_t)k * a_ks;
#define BCAST_ROW(i)                                                                          \
    if (MR > i) {                                                                             \
        const __m256 ai = _mm256_broadcast_ss(a + i * a_rs);                                  \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);                                           \
        c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);                                           \
    }
        BCAST_ROW(0) BCAST_ROW(1) BCAST_ROW(2) BCAST_ROW(3) BCAST_ROW(4) BCAST_ROW(5)
#undef BCAST_ROW
    }
#define STORE_ROW(i)                                                                          \
    if (MR > i) {                                                                             \
        float *c = C + i * ldc;                                                               \
        if (WIDTH == 16) {                                                                    \
            _mm256_storeu_ps(c, c##i##0);                                                     \
            _mm256_storeu_ps(c + 8, c##i##1);                                                 \
        } else {                                                                              \
            _mm256_maskstore_ps(c, m0, c##i##0);                                              \
            _mm256_maskstore_ps(c + 8, m1, c##i##1);                                          \
        }                                                                                     \
    }
    STORE_ROW(0) STORE_ROW(1) STORE_ROW(2) STORE_ROW(3) STORE_ROW(4) STORE_ROW(5)
#undef STORE_ROW
}

typedef void (*bcast_tile_fn)(const float *, size_t, size_t, const float *, size_t, int,
                              float *, size_t, int, int);
/* Full tiles are their own functions (no masks in the inner loop); narrow ones pass the
 * width at run time (0 < width < 16, so the generic masked path is taken). */
#define BCAST_TILE(MR)                                                                        \
    AVX2 static void bcast_full_##MR(const float *A, size_t a_rs, size_t a_ks, const float *Bm, \
                                     size_t ldb, int kc, float *C, size_t ldc, int width,     \
                                     int resume)                                              \
    {                                                                                         \
        (void)width;                                                                          \
        bcast_tile(MR, 16, A, a_rs, a_ks, Bm, ldb, kc, C, ldc, resume);                       \
    }                                                                                         \
    AVX2 static void bcast_part_##MR(const float *A, size_t a_rs, size_t a_ks, const float *Bm, \
                                     size_t ldb, int kc, float *C, size_t ldc, int width,     \
                                     int resume)                                              \
    {                                                                                         \
        bcast_tile(MR, width, A, a_rs, a_ks, Bm, ldb, kc, C, ldc, resume);                    \
    }
BCAST_TILE(1) BCAST_TILE(2) BCAST_TILE(3) BCAST_TILE(4) BCAST_TILE(5) BCAST_TILE(6)
static const bcast_tile_fn bcast_full[6] = {bcast_full_1, bcast_full_2, bcast_full_3,
                                            bcast_full_4, bcast_full_5, bcast_full_6};
static const bcast_tile_fn bcast_part[6] = {bcast_part_1, bcast_part_2, bcast_part_3,
                                            bcast_part_4, bcast_part_5, bcast_part_6};

/* Copies rows [0, kc) of a column block (width <= 16 columns, row step ldb) into a dense
 * kc x 16 panel, zero beyond width. Rows of a matrix whose width is a power of two sit a
 * multiple of 4 KiB apart and fall into the same cache sets; the panel does not. */
AVX2 static void pack_panel(const float *Bm, size_t ldb, int kc, int width, float *panel)
{
    if (width == 16) { /* two vector copies a row (gcc would call memcpy for each) */
        for (int k = 0; k < kc; k++) {
            const float *src = Bm + (size_t)k * ldb;
            _mm256_store_ps(panel + (size_t)k * 16, _mm256_loadu_ps(src));
            _mm256_store_ps(panel + (size_t)k * 16 + 8, _mm256_loadu_ps(src + 8));
        }
        return;
    }
    for (int k = 0; k < kc; k++) {
        const float *src = Bm + (size_t)k * ldb;
        float *dst = panel + (size_t)k * 16;
        int j = 0;
        for (; j < width; j++) dst[j] = src[j];
        for (; j < 16; j++) dst[j] = 0;
    }
}

/* C[M][K] = A[M][depth] . Bm[depth][K] over tiles of MR rows x 16 columns, A through strides.
 * Rows go in chunks of up to `chunk` rows; within a chunk the threads split the column
 * blocks, so that a thread's share of A (chunk x depth values) stays in its L2 while the
 * panels of Bm pass. Within a block the depth is cut into steps of KC; each step's panel of
 * Bm (KC x 16 values, 16 KiB) is packed once when three or more row tiles will read it, then
 * every row tile continues its chains through it. */
static void bcast_product(const float *A, size_t a_rs, size_t a_ks, const float *Bm,
                          size_t ldb, int depth, float *C, int M, int K, int chunk)
{
    enum { MR = 6, NC = 16, KC = 256 };
    const int blocks = (K + NC - 1) / NC;
    const long work = (long)M * K * depth;
    for (int c0 = 0; c0 < M; c0 += chunk) {
        const int rows_here = M - c0 < chunk ? M - c0 : chunk;
        const int tiles = (rows_here + MR - 1) / MR, pack = tiles >= 3;
        MV_FOR_EACH(int, blk, blocks, work > MV_PARALLEL_SIMD_WORK && blocks > 1, {
            float panel[KC * NC] __attribute__((aligned(32)));
            const int k0 = blk * NC, width = K - k0 < NC ? K - k0 : NC;
            for (int p0 = 0; p0 < depth; p0 += KC) {
                const int kc = depth - p0 < KC ? depth - p0 : KC;
                const float *bp = Bm + (size_t)p0 * ldb + k0;
                size_t ld = ldb;
                if (pack) {
                    pack_panel(bp, ldb, kc, width, panel);
                    bp = panel;
                    ld = NC;
                }
                for (int t = 0; t < tiles; t++) { /* even tiles: 10 rows are 5 + 5 */
                    const int i0 = c0 + (int)((long)t * rows_here / tiles);
                    const int rows = c0 + (int)((long)(t + 1) * rows_here / tiles) - i0;
                    const bcast_tile_fn fn = width == NC ? bcast_full[rows - 1]
                                                         : bcast_part[rows - 1];
                    fn(A + i0 * a_rs + p0 * a_ks, a_rs, a_ks, bp, ld, kc,
                       C + (size_t)i0 * K + k0, (size_t)K, width, p0 > 0);
                }
            }
        });
    }
}

/* dst[N][B] = src[B][N]^T, by 16 x 16 blocks of outputs split over the threads. */
static void transpose(const float *src, float *dst, int B, int N)
{
    enum { T = 16 };
    const int blocks = (N + T - 1) / T;
    MV_FOR_EACH(int, blk, blocks, (long)B * N > MV_PARALLEL_TRANSPOSE_VALUES, {
        const int o0 = blk * T, o1 = o0 + T < N ? o0 + T : N;
        for (int r0 = 0; r0 < B; r0 += T) {
            const int r1 = r0 + T < B ? r0 + T : B;
            for (int o = o0; o < o1; o++)
                for (int r = r0; r < r1; r++) dst[(size_t)o * B + r] = src[(size_t)r * N + o];
        }
    });
}

void mv_simd_dense_weight_grad(const float *in, const float *delta, float *dW, int B, int K,
                               int N, float *scratch)
{
    /* dW[o][k] = sum over r of delta[r][o] * in[r][k]: A = delta^T. Read in place, the six
     * values of a tile sit N floats apart from one step to the next (the same cache sets
     * when N is a power of two), so delta is transposed into scratch first when given. */
    const float *A = delta;
    size_t a_rs = 1, a_ks = (size_t)N;
    if (scratch && B > 1) {
        transpose(delta, scratch, B, N);
        A = scratch, a_rs = (size_t)B, a_ks = 1;
    }
    /* Chunks of 192 rows of dW: a thread's delta^T share (192 x B) stays in its L2. */
    bcast_product(A, a_rs, a_ks, in, (size_t)K, B, dW, N, K, 192);
}

/* The weight gradient summed by chunks of the batch (mv_dense_param_grad_chunks): each
 * chunk's sum is an FMA chain from zero in registers, like the whole batch's in bcast_tile,
 * and the chunk sums meet in a binary tree without leaving the tile. The tree is a binary
 * counter: after chunk c, the left siblings waiting in slots[0 .. t) (t = c's trailing one
 * bits) are added in, and the sum waits in slots[t], or goes to C after the last chunk. The
 * slots of one tile (MR x 16 values a level) stay in L1; nothing else is stored, so the
 * chunks cost a few adds per chunk over the single chain. */
AVX2 INLINE void tree_tile(int MR, int WIDTH, const float *A, size_t a_rs, size_t a_ks,
                           const float *Bm, size_t ldb, const int *bounds, int n_chunks,
                           float *C, size_t ldc, float *slots)
{
    const __m256i m0 = lanes_below(WIDTH >= 8 ? 8 : WIDTH);
    const __m256i m1 = lanes_below(WIDTH >= 16 ? 8 : WIDTH > 8 ? WIDTH - 8 : 0);
    for (int c = 0; c < n_chunks; c++) {
        __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00,
               c21 = c00, c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        for (int k = bounds[c]; k < bounds[c + 1]; k++) {
            const float *row = Bm + (size_t)k * ldb;
            const __m256 b0 = WIDTH == 16 ? _mm256_loadu_ps(row) : _mm256_maskload_ps(row, m0);
            const __m256 b1 = WIDTH == 16 ? _mm256_loadu_ps(row + 8)
                                          : _mm256_maskload_ps(row + 8, m1);
            const float *a = A + (size_t)k * a_ks;
#define TREE_FMA(i)                                                                           \
    if (MR > i) {                                                                             \
        const __m256 ai = _mm256_broadcast_ss(a + i * a_rs);                                  \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);                                           \
        c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);                                           \
    }
            TREE_FMA(0) TREE_FMA(1) TREE_FMA(2) TREE_FMA(3) TREE_FMA(4) TREE_FMA(5)
#undef TREE_FMA
        }
        int level = 0;
        for (int k = c; k & 1; k >>= 1, level++) { /* left sibling + this subtree */
            const float *left = slots + (size_t)level * 6 * 16;
#define TREE_ADD(i)                                                                           \
    if (MR > i) {                                                                             \
        c##i##0 = _mm256_add_ps(_mm256_load_ps(left + i * 16), c##i##0);                     \
        c##i##1 = _mm256_add_ps(_mm256_load_ps(left + i * 16 + 8), c##i##1);                 \
    }
            TREE_ADD(0) TREE_ADD(1) TREE_ADD(2) TREE_ADD(3) TREE_ADD(4) TREE_ADD(5)
#undef TREE_ADD
        }
        if (c + 1 < n_chunks) {
            float *wait = slots + (size_t)level * 6 * 16;
#define TREE_WAIT(i)                                                                          \
    if (MR > i) {                                                                             \
        _mm256_store_ps(wait + i * 16, c##i##0);                                              \
        _mm256_store_ps(wait + i * 16 + 8, c##i##1);                                          \
    }
            TREE_WAIT(0) TREE_WAIT(1) TREE_WAIT(2) TREE_WAIT(3) TREE_WAIT(4) TREE_WAIT(5)
#undef TREE_WAIT
            continue;
        }
#define TREE_STORE(i)                                                                         \
    if (MR > i) {                                                                             \
        float *out = C + i * ldc;                                                             \
        if (WIDTH == 16) {                                                                    \
            _mm256_storeu_ps(out, c##i##0);                                                   \
            _mm256_storeu_ps(out + 8, c##i##1);                                               \
        } else {                                                                              \
            _mm256_maskstore_ps(out, m0, c##i##0);                                            \
            _mm256_maskstore_ps(out + 8, m1, c##i##1);                                        \
        }                                                                                     \
    }
        TREE_STORE(0) TREE_STORE(1) TREE_STORE(2) TREE_STORE(3) TREE_STORE(4) TREE_STORE(5)
#undef TREE_STORE
    }
}

typedef void (*tree_tile_fn)(const float *, size_t, size_t, const float *, size_t, const int *,
                             int, float *, size_t, int, float *);
#define TREE_TILE(MR)                                                                         \
    AVX2 static void tree_full_##MR(const float *A, size_t a_rs, size_t a_ks, const float *Bm,  \
                                    size_t ldb, const int *bounds, int n_chunks, float *C,    \
                                    size_t ldc, int width, float *slots)                      \
    {                                                                                         \
        (void)width;                                                                          \
        tree_tile(MR, 16, A, a_rs, a_ks, Bm, ldb, bounds, n_chunks, C, ldc, slots);           \
    }                                                                                         \
    AVX2 static void tree_part_##MR(const float *A, size_t a_rs, size_t a_ks, const float *Bm,  \
                                    size_t ldb, const int *bounds, int n_chunks, float *C,    \
                                    size_t ldc, int width, float *slots)                      \
    {                                                                                         \
        tree_tile(MR, width, A, a_rs, a_ks, Bm, ldb, bounds, n_chunks, C, ldc, slots);        \
    }
TREE_TILE(1) TREE_TILE(2) TREE_TILE(3) TREE_TILE(4) TREE_TILE(5) TREE_TILE(6)
static const tree_tile_fn tree_full[6] = {tree_full_1, tree_full_2, tree_full_3,
                                          tree_full_4, tree_full_5, tree_full_6};
static const tree_tile_fn tree_part[6] = {tree_part_1, tree_part_2, tree_part_3,
                                          tree_part_4, tree_part_5, tree_part_6};

/* db = delta^T 1 by chunks: the same tree tiles with one row whose A is a single 1 (steps of
 * 0): fma(1, d, s) is d + s exactly, so each chunk's sum is the plain sum in row order. */
static void bias_grad_chunks(const float *delta, float *db, int B, int N, const int *bounds,
                             int n_chunks)
{
    enum { NC = 16 };
    static const float one = 1;
    float slots[MV_MAX_GRAD_LEVELS * 6 * NC] __attribute__((aligned(32)));
    (void)B;
    for (int k0 = 0; k0 < N; k0 += NC) {
        const int width = N - k0 < NC ? N - k0 : NC;
        const tree_tile_fn fn = width == NC ? tree_full[0] : tree_part[0];
        fn(&one, 0, 0, delta + k0, (size_t)N, bounds, n_chunks, db + k0, 0, width, slots);
    }
}

static void weight_grad_chunks(const float *in, const float *delta, float *dW, int B, int K,
                               int N, float *scratch, const int *bounds, int n_chunks);

void mv_simd_dense_param_grad_chunks(const float *in, const float *delta, float *dW,
                                     float *db, int B, int K, int N, float *scratch,
                                     const int *bounds, int n_chunks)
{
    if (db) /* before the transpose, which may overwrite nothing of delta but reads it */
        bias_grad_chunks(delta, db, B, N, bounds, n_chunks);
    if (dW)
        weight_grad_chunks(in, delta, dW, B, K, N, scratch, bounds, n_chunks);
}

static void weight_grad_chunks(const float *in, const float *delta, float *dW, int B, int K,
                               int N, float *scratch, const int *bounds, int n_chunks)
{
    /* A = delta^T, transposed into scratch as in mv_simd_dense_weight_grad. Rows of dW go in
     * groups of 192 (a thread's share of A stays in its L2); the threads split the column
     * blocks; a block's rows of `in` are packed once (up to 1024 of them, 64 KiB) when three
     * or more row tiles read them. */
    enum { MR = 6, NC = 16, GROUP = 192, PACK_ROWS = 1024 };
    const float *A = delta;
    size_t a_rs = 1, a_ks = (size_t)N;
    if (scratch && B > 1) {
        transpose(delta, scratch, B, N);
        A = scratch, a_rs = (size_t)B, a_ks = 1;
    }
    const int blocks = (K + NC - 1) / NC;
    const long work = (long)N * K * B;
    for (int c0 = 0; c0 < N; c0 += GROUP) {
        const int rows_here = N - c0 < GROUP ? N - c0 : GROUP;
        const int tiles = (rows_here + MR - 1) / MR, pack = tiles >= 3 && B <= PACK_ROWS;
        MV_FOR_EACH(int, blk, blocks, work > MV_PARALLEL_SIMD_WORK && blocks > 1, {
            float panel[PACK_ROWS * NC] __attribute__((aligned(32)));
            float slots[MV_MAX_GRAD_LEVELS * 6 * NC] __attribute__((aligned(32)));
            const int k0 = blk * NC, width = K - k0 < NC ? K - k0 : NC;
            const float *bp = in + k0;
            size_t ld = (size_t)K;
            if (pack) {
                pack_panel(bp, ld, B, width, panel);
                bp = panel;
                ld = NC;
            }
            for (int t = 0; t < tiles; t++) { /* even tiles, as in bcast_product */
                const int i0 = c0 + (int)((long)t * rows_here / tiles);
                const int rows = c0 + (int)((long)(t + 1) * rows_here / tiles) - i0;
                const tree_tile_fn fn = width == NC ? tree_full[rows - 1] : tree_part[rows - 1];
                fn(A + i0 * a_rs, a_rs, a_ks, bp, ld, bounds, n_chunks,
                   dW + (size_t)i0 * K + k0, (size_t)K, width, slots);
            }
        });
    }
}

/* One row: out[k0 .. k0 + width) = sum over o of d[o] * W[o][k], width <= 64, eight vectors
 * of chains walking the rows of W in order. Rows whose d[o] is zero are skipped: a relu
 * layer's delta is zero wherever the unit was off, and skipping a term 0 * w leaves every
 * chain's bits unchanged (fma(0, w, s) == s for finite w; a chain starting at +0 never
 * becomes -0 by adding zeros), so this is the broadcast kernel's result, reading about half
 * of W. */
AVX2 INLINE void sparse_row_tile(int FULL, const float *d, const float *W, int N, int K,
                                 int k0, int width, float *out)
{
    __m256i m[8];
    for (int v = 0; v < 8; v++) {
        const int left = width - 8 * v;
        m[v] = lanes_below(left >= 8 ? 8 : left > 0 ? left : 0);
    }
    /* Named accumulators: gcc keeps an array of them in memory (see bcast_tile). */
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0,
           c7 = c0;
    for (int o = 0; o < N; o++) {
        if (d[o] == 0)
            continue;
        const __m256 a = _mm256_broadcast_ss(d + o);
        const float *row = W + (size_t)o * K + k0;
#define ROW_VECTOR(v)                                                                         \
    c##v = _mm256_fmadd_ps(a, FULL ? _mm256_loadu_ps(row + 8 * v)                             \
                                   : _mm256_maskload_ps(row + 8 * v, m[v]),                   \
                           c##v);
        ROW_VECTOR(0) ROW_VECTOR(1) ROW_VECTOR(2) ROW_VECTOR(3)
        ROW_VECTOR(4) ROW_VECTOR(5) ROW_VECTOR(6) ROW_VECTOR(7)
#undef ROW_VECTOR
    }
    float *o0 = out + k0;
    _mm256_maskstore_ps(o0, m[0], c0), _mm256_maskstore_ps(o0 + 8, m[1], c1);
    _mm256_maskstore_ps(o0 + 16, m[2], c2), _mm256_maskstore_ps(o0 + 24, m[3], c3);
    _mm256_maskstore_ps(o0 + 32, m[4], c4), _mm256_maskstore_ps(o0 + 40, m[5], c5);
    _mm256_maskstore_ps(o0 + 48, m[6], c6), _mm256_maskstore_ps(o0 + 56, m[7], c7);
}

/* sparse_row_tile on one block of at most 64 columns: a full block with plain loads, a
 * narrow one through masks, so that the lanes past the end of W are never read. FULL is a
 * constant in each call, so each inlined copy keeps only its own kind of load. */
AVX2 static void sparse_row_block(const float *d, const float *W, int N, int K, int k0,
                                  int width, float *out)
{
    if (width == 64)
        sparse_row_tile(1, d, W, N, K, k0, 64, out);
    else
        sparse_row_tile(0, d, W, N, K, k0, width, out);
}

void mv_simd_dense_input_grad(const float *delta, const float *W, float *din, int B, int K,
                              int N)
{
    if (B == 1) { /* one row: no reuse of W to win, so stream its rows and skip the zeros */
        const int blocks = (K + 63) / 64;
        MV_FOR_EACH(int, blk, blocks, (long)K * N > MV_PARALLEL_SIMD_WORK && blocks > 1, {
            const int k0 = blk * 64;
            sparse_row_block(delta, W, N, K, k0, K - k0 < 64 ? K - k0 : 64, din);
        });
        return;
    }
    /* din[r][k] = sum over o of delta[r][o] * W[o][k]: A = delta (row step N, k step 1). */
    bcast_product(delta, (size_t)N, 1, W, (size_t)K, N, din, B, K, 192);
}

#endif /* MV_SIMD_KERNELS */
