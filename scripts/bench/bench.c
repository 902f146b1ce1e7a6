/* bench.c: the mlpviz side of `make bench`: one timed workload per process, printed as
 *   RESULT <workload> <seconds> <items> <flops> allocs=<n> rss_kb=<k>
 * so that scripts/bench/run.py can interleave it with the same workload in PyTorch
 * (bench_torch.py prints the same line). flops counts 2 per multiply-add of the dense layers;
 * allocs counts every heap allocation of the process (ours, libc's and libgomp's) inside the
 * timed steps; rss_kb is the peak resident set of the process.
 *
 * usage: bench WORKLOAD [--model FILE] [--runs R] [--save-viz FILE.npy]
 *   peak        register-only FMA loop: GFLOP/s on 1 core and on all threads
 *   train-small one epoch of mv_train, 784-256-128-10 relu, batch 128, SGD momentum 0.9
 *   train-big   the same, 784-1024-1024-10
 *   grad-1      mv_input_grad of one logit of one image, the committed model
 *   grad-10     10 images, row r the logit of class r
 *   grad-256    256 images, row r class r % 10
 *   viz-10      mv_visualize, 10 classes x 500 steps, mv_viz_defaults without jitter
 *   viz-640     64 images per class x 500 steps */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <immintrin.h>
#include <omp.h>

#include "mlpviz.h"

/* ------------------------------------------------------------------ allocation counting */

/* The executable's malloc family replaces glibc's for the whole process (libgomp included)
 * and forwards to glibc's own allocator, counting calls while `counting` is set. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void *p);

static volatile int counting;
static long allocations;

static void count_one(void)
{
    if (counting)
        __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED);
}
void *malloc(size_t size)
{
    count_one();
    return __libc_malloc(size);
}
void *calloc(size_t n, size_t size)
{
    count_one();
    return __libc_calloc(n, size);
}
void *realloc(void *p, size_t size)
{
    count_one();
    return __libc_realloc(p, size);
}
void free(void *p) { __libc_free(p); }
int posix_memalign(void **out, size_t alignment, size_t size)
{
    count_one();
    *out = __libc_memalign(alignment, size);
    return *out ? 0 : 12; /* ENOMEM */
}
void *aligned_alloc(size_t alignment, size_t size)
{
    count_one();
    return __libc_memalign(alignment, size);
}
void *memalign(size_t alignment, size_t size); /* glibc's <malloc.h>, not a standard one */
void *memalign(size_t alignment, size_t size)
{
    count_one();
    return __libc_memalign(alignment, size);
}

/* ------------------------------------------------------------------ helpers */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static long peak_rss_kb(void)
{
    struct rusage u;
    return getrusage(RUSAGE_SELF, &u) == 0 ? u.ru_maxrss : -1;
}

static void die(const char *what)
{
    fprintf(stderr, "bench: %s: %s\n", what, mv_last_error());
    exit(1);
}

static void *checked(void *p)
{
    if (!p) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    return p;
}

static void report(const char *workload, double seconds, long items, double flops)
{
    printf("RESULT %s %.6f %ld %.6g allocs=%ld rss_kb=%ld\n", workload, seconds, items, flops,
           allocations, peak_rss_kb());
    fflush(stdout);
}

/* Multiply-adds of one forward pass of one row. */
static double macs(const mv_arch *a)
{
    double m = 0;
    for (int l = 0; l < a->n_layers; l++) m += (double)a->widths[l] * a->widths[l + 1];
    return m;
}

/* ------------------------------------------------------------------ peak */

/* Ten independent FMA chains on registers only: what the cores can do at best. */
__attribute__((target("avx2,fma"))) static double fma_loop(long iterations)
{
    __m256 a[10];
    const __m256 x = _mm256_set1_ps(1.0000001f), y = _mm256_set1_ps(0.9999999f);
    for (int i = 0; i < 10; i++) a[i] = _mm256_set1_ps((float)i);
    for (long n = 0; n < iterations; n++) {
        a[0] = _mm256_fmadd_ps(a[0], x, y);
        a[1] = _mm256_fmadd_ps(a[1], x, y);
        a[2] = _mm256_fmadd_ps(a[2], x, y);
        a[3] = _mm256_fmadd_ps(a[3], x, y);
        a[4] = _mm256_fmadd_ps(a[4], x, y);
        a[5] = _mm256_fmadd_ps(a[5], x, y);
        a[6] = _mm256_fmadd_ps(a[6], x, y);
        a[7] = _mm256_fmadd_ps(a[7], x, y);
        a[8] = _mm256_fmadd_ps(a[8], x, y);
        a[9] = _mm256_fmadd_ps(a[9], x, y);
    }
    float out[8], sum = 0;
    for (int i = 0; i < 10; i++) {
        _mm256_storeu_ps(out, a[i]);
        sum += out[0];
    }
    return sum; /* keeps the loop alive */
}

static double peak_gflops(int threads)
{
    const long iterations = 200000000;
    double best = 0, sink = 0;
    for (int run = 0; run < 3; run++) {
        const double t0 = now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += fma_loop(iterations);
        const double t = now() - t0;
        const double gflops = threads * 160.0 * iterations / t / 1e9; /* 10 x 8 lanes x 2 */
        best = gflops > best ? gflops : best;
    }
    if (sink == 12345)
        printf("\n");
    return best;
}

/* ------------------------------------------------------------------ training */

typedef struct {
    double epoch_seconds[2];
    long allocs_at_epoch_end;
} train_timing;

/* Epoch ends arrive with batch == 0: the first is the warm-up, the second is timed. */
static void on_progress(const mv_train_progress *p, void *user)
{
    train_timing *t = user;
    if (p->batch != 0 || !p->metrics)
        return;
    if (p->epoch == 1) {
        t->epoch_seconds[0] = p->metrics->seconds;
        allocations = 0;
        counting = 1; /* from here to the end of epoch 2: its shuffle, steps and bookkeeping */
    } else {
        counting = 0;
        t->epoch_seconds[1] = p->metrics->seconds;
        t->allocs_at_epoch_end = allocations;
    }
}

static void bench_train(const char *workload, const char *hidden, int runs)
{
    enum { SAMPLES = 12800, BATCH = 128 };
    mv_dataset data = {.count = SAMPLES, .channels = 1, .height = 28, .width = 28,
                       .n_classes = 10};
    data.class_names = checked(calloc(10, sizeof *data.class_names));
    for (int k = 0; k < 10; k++) {
        data.class_names[k] = checked(malloc(8));
        snprintf(data.class_names[k], 8, "c%d", k);
    }
    data.pixels = checked(malloc(sizeof *data.pixels * SAMPLES * 784));
    data.labels = checked(malloc(sizeof *data.labels * SAMPLES));
    mv_rng rng;
    mv_rng_seed(&rng, 42);
    for (long i = 0; i < (long)SAMPLES * 784; i++) data.pixels[i] = (float)mv_rng_uniform(&rng);
    for (int i = 0; i < SAMPLES; i++) data.labels[i] = (int)mv_rng_below(&rng, 10);

    char widths[64];
    snprintf(widths, sizeof widths, "784,%s,10", hidden);
    mv_arch arch = {0};
    arch.head = MV_HEAD_SOFTMAX_CE;
    if (mv_arch_parse_widths(&arch, widths))
        die(widths);
    for (int l = 0; l + 1 < arch.n_layers; l++) arch.act[l] = (mv_activation){MV_ACT_RELU, 0};

    mv_train_config cfg;
    mv_train_defaults(&cfg);
    cfg.epochs = 2; /* the first is the warm-up */
    cfg.batch = BATCH;
    mv_opt_defaults(&cfg.opt, MV_OPT_MOMENTUM);
    cfg.opt.momentum = 0.9;
    cfg.lr.kind = MV_LR_CONST;
    cfg.lr.lr = 0.01;
    cfg.progress = on_progress;
    for (int run = 0; run < runs; run++) {
        mv_model *m;
        if (mv_model_create(&m, &arch) ||
            mv_model_set_class_names(m, (const char *const *)data.class_names, 10))
            die("model");
        m->channels = 1, m->height = 28, m->width = 28;
        mv_net_init(m->net, 1);
        mv_model_fit_normalisation(m, &data);
        train_timing timing = {{0, 0}, 0};
        cfg.user = &timing;
        int interrupted = 0;
        if (mv_train(m, &data, NULL, &cfg, &interrupted))
            die("mv_train");
        allocations = timing.allocs_at_epoch_end;
        report(workload, timing.epoch_seconds[1], SAMPLES,
               2.0 * SAMPLES * (3 * macs(&arch) - (double)arch.widths[0] * arch.widths[1]));
        mv_model_free(m);
    }
    for (int k = 0; k < 10; k++) free(data.class_names[k]);
    free(data.class_names);
    free(data.pixels);
    free(data.labels);
}

/* ------------------------------------------------------------------ input gradients */

static void bench_grad(const char *workload, const mv_model *m, int rows, int calls, int runs)
{
    const mv_arch *arch = &m->net->arch;
    const int D = arch->widths[0];
    mv_workspace *ws;
    if (mv_workspace_create(&ws, arch, rows))
        die("workspace");
    mv_real *x = checked(malloc(sizeof *x * (size_t)rows * D));
    mv_real *grad = checked(malloc(sizeof *grad * (size_t)rows * D));
    int *classes = checked(malloc(sizeof *classes * (size_t)rows));
    mv_rng rng;
    mv_rng_seed(&rng, 5);
    for (long i = 0; i < (long)rows * D; i++) x[i] = (mv_real)mv_rng_normal(&rng);
    for (int r = 0; r < rows; r++) classes[r] = rows == 1 ? 3 : r % m->n_classes;
    const mv_target logit = {MV_OBJ_LOGIT, 0};
    for (int i = 0; i < 10; i++) /* warm-up */
        if (mv_input_grad(m->net, ws, x, rows, logit, classes, grad, NULL))
            die("mv_input_grad");
    for (int run = 0; run < runs; run++) {
        allocations = 0;
        counting = 1;
        const double t0 = now();
        for (int c = 0; c < calls; c++)
            if (mv_input_grad(m->net, ws, x, rows, logit, classes, grad, NULL))
                die("mv_input_grad");
        const double t = now() - t0;
        counting = 0;
        report(workload, t, (long)rows * calls, 4.0 * macs(arch) * rows * calls);
    }
    mv_workspace_free(ws);
    free(x);
    free(grad);
    free(classes);
}

/* ------------------------------------------------------------------ visualization */

/* Counts allocations from the end of the first step to the end of the last. */
static void on_step(int step, int steps, void *user)
{
    (void)user;
    if (step == 1) {
        allocations = 0;
        counting = 1;
    } else if (step == steps) {
        counting = 0;
    }
}

static void save_npy(const char *path, const float *v, int rows, int cols)
{
    const int shape[2] = {rows, cols};
    if (mv_npy_write(path, v, 2, shape))
        die(path);
}

static void bench_viz(const char *workload, const mv_model *m, int per_class, int runs,
                      const char *save)
{
    const int n = m->n_classes * per_class, steps = 500;
    const size_t D = (size_t)m->width * m->height * m->channels;
    int *targets = checked(malloc(sizeof *targets * (size_t)n));
    float *images = checked(malloc(sizeof *images * D * (size_t)n));
    mv_viz_result *results = checked(malloc(sizeof *results * (size_t)n));
    for (int r = 0; r < n; r++) targets[r] = r % m->n_classes;
    mv_viz_config c;
    mv_viz_defaults(&c); /* gradient blur every step, normalized step, decay, blur every 4, clamp */
    c.steps = steps;
    c.jitter = 0;
    c.on_step = on_step;
    for (int run = 0; run < runs; run++) {
        const double t0 = now();
        if (mv_visualize(m, &c, targets, n, NULL, images, results))
            die("mv_visualize");
        const double t = now() - t0;
        report(workload, t, (long)n * steps, 4.0 * macs(&m->net->arch) * n * steps);
    }
    if (save)
        save_npy(save, images, n, (int)D);
    free(targets);
    free(images);
    free(results);
}

int main(int argc, char **argv)
{
    const char *workload = argc > 1 ? argv[1] : "", *model_path = "models/fashion-mnist.mlp";
    const char *save = NULL;
    int runs = 1;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model"))
            model_path = argv[i + 1];
        else if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--save-viz"))
            save = argv[i + 1];
    }
    if (runs < 1) {
        fprintf(stderr, "bench: --runs must be positive\n");
        return 2;
    }
    printf("mlpviz kernels: %s, %d threads\n", mv_simd_name(), omp_get_max_threads());
    printf("THREADS %d\n", omp_get_max_threads()); /* which peak run.py compares with */
    if (!strcmp(workload, "peak")) {
        const int threads = omp_get_max_threads();
        printf("PEAK %.1f %.1f %d\n", peak_gflops(1), peak_gflops(threads), threads);
        return 0;
    }
    if (!strcmp(workload, "train-small")) {
        bench_train(workload, "256,128", runs);
        return 0;
    }
    if (!strcmp(workload, "train-big")) {
        bench_train(workload, "1024,1024", runs);
        return 0;
    }
    mv_model *m;
    if (mv_model_load(&m, model_path))
        die(model_path);
    if (!strcmp(workload, "grad-1"))
        bench_grad(workload, m, 1, 2000, runs);
    else if (!strcmp(workload, "grad-10"))
        bench_grad(workload, m, 10, 500, runs);
    else if (!strcmp(workload, "grad-256"))
        bench_grad(workload, m, 256, 50, runs);
    else if (!strcmp(workload, "viz-10"))
        bench_viz(workload, m, 1, runs, save);
    else if (!strcmp(workload, "viz-640"))
        bench_viz(workload, m, 64, runs, save);
    else {
        fprintf(stderr, "bench: unknown workload '%s' (peak, train-small, train-big, grad-1, "
                        "grad-10, grad-256, viz-10, viz-640)\n", workload);
        mv_model_free(m);
        return 2;
    }
    mv_model_free(m);
    return 0;
}
