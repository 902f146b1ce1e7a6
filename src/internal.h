/* internal.h: declarations shared by the library's files, not part of the public API. */
#ifndef MV_INTERNAL_H
#define MV_INTERNAL_H

#include <omp.h>
#include <stdint.h>
#include <sys/types.h>

#include "mlpviz.h"

#if defined(__GNUC__)
#define MV_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define MV_PRINTF(fmt, args)
#endif

/* Records a formatted message for mv_last_error() and returns status, so that a failing
 * path reads `return mv_fail(MV_ERR_ARG, "...", ...);`. */
mv_status mv_fail(mv_status status, const char *fmt, ...) MV_PRINTF(2, 3);
/* Puts "context: " before the last error's message (mv_fail cannot take mv_last_error() as an
 * argument: it writes the buffer it would read). Returns status. */
mv_status mv_fail_context(mv_status status, const char *context);

/* Moves rng past count draws of mv_rng_normal, as if they had been made (rng.c): a process
 * that computes some rows of a batch skips the others' noise at the cost of the words. */
void mv_rng_skip_normals(mv_rng *rng, size_t count);

/* for (type i = 0; i < n; i++) body, split over the threads when `parallel` is true, and
 * without entering OpenMP at all otherwise: a parallel region that an `if` clause keeps on
 * one thread still allocates and frees a team in libgomp, and costs microseconds, which
 * matters for the many small products of a visualization step. The same goes for one thread
 * in all (OMP_NUM_THREADS=1) and for a loop already inside a parallel region (the trials of
 * visualize --search), where a nested region would get a team of one. */
#define MV_FOR_EACH(type, i, n, parallel, ...)                                                \
    do {                                                                                      \
        if ((parallel) && omp_get_max_threads() > 1 && !omp_in_parallel()) {                  \
            _Pragma("omp parallel for schedule(static)") for (type i = 0; i < (n); i++)       \
                __VA_ARGS__                                                                   \
        } else {                                                                              \
            for (type i = 0; i < (n); i++)                                                    \
                __VA_ARGS__                                                                   \
        }                                                                                     \
    } while (0)

/* How much work makes a loop worth MV_FOR_EACH's threads. Opening a region costs a few
 * microseconds, so a loop is split only when its work clearly exceeds that; the work per
 * unit differs from loop to loop, hence one threshold per kind of loop, each tuned by
 * timing (make bench). A split never changes a result: every parallel loop writes disjoint
 * outputs, each summed in an order fixed by the code. */
enum {
    /* multiply-adds of the portable dense-layer loops (layers.c) */
    MV_PARALLEL_DENSE_WORK = 32768,
    /* multiply-adds of the AVX2 + FMA kernels (gemm.c), which get through them faster than
     * the portable loops: the bar is higher */
    MV_PARALLEL_SIMD_WORK = 65536,
    /* values moved by the transpose of delta in gemm.c (a copy, no arithmetic) */
    MV_PARALLEL_TRANSPOSE_VALUES = 8192,
    /* values of a loop over rows that does a few operations per value: assembling a batch,
     * normalising pixels, an L2 attack step (train.c, visualize.c) */
    MV_PARALLEL_ROW_VALUES = 65536,
    /* values of visualize's pixel update, blurs and clipping included: tens of operations
     * per value, so far fewer values pay for the region */
    MV_PARALLEL_UPDATE_VALUES = 4096,
    /* multiply-adds in double of the class-statistics and mixture fits (classstats.c,
     * classmixture.c), whose regions are heavier to open (per-thread packing, dynamic
     * schedules) */
    MV_PARALLEL_FIT_WORK = 1 << 20,
    /* Elementwise loops (activations, optimizer updates) go in chunks of this many values,
     * split over the threads from MV_PARALLEL_MIN_CHUNKS chunks (the optimizer from one
     * chunk more) */
    MV_PARALLEL_CHUNK = 16384,
    MV_PARALLEL_MIN_CHUNKS = 4,
};

/* The files that compute in mv_real are compiled twice: float (the library) and double
 * (-DMV_F64, for gradient checks). In the double copy every symbol is made local to one
 * partially linked object, except the entry points named with MV_VARIANT, which the float
 * build reaches under their _f64 names. */
#ifdef MV_F64
#define MV_VARIANT(name) name##_f64
#else
#define MV_VARIANT(name) name##_f32
#endif
#define MV_EXPORTED __attribute__((visibility("default")))

/* Math in the working precision. */
#ifdef MV_F64
#define MV_EXP exp
#define MV_LOG1P log1p
#define MV_TANH tanh
#define MV_ERF erf
#define MV_FABS fabs
#else
#define MV_EXP expf
#define MV_LOG1P log1pf
#define MV_TANH tanhf
#define MV_ERF erff
#define MV_FABS fabsf
#endif

/* Two 64-bit values mixed into one seed (splitmix64's finalizer over a hash combine), so
 * that each use of a run's seed (epoch order, batch, validation split) gets its own stream. */
static inline uint64_t mv_seed_mix(uint64_t a, uint64_t b)
{
    uint64_t z = a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Index of the largest of v[0..n), the first on ties (the top class of a row). */
static inline int mv_index_of_max(const mv_real *v, int n)
{
    int best = 0;
    for (int k = 1; k < n; k++)
        if (v[k] > v[best])
            best = k;
    return best;
}

/* ---- activations.c: elementwise over n values */
/* a[i] = act(z[i]) */
void mv_act_forward(mv_activation act, const mv_real *z, mv_real *a, size_t n);
/* g[i] *= act'(z[i]), using the stored a[i] where that is cheaper */
void mv_act_backward(mv_activation act, const mv_real *z, const mv_real *a, mv_real *g,
                     size_t n);
/* Scalar forms, for tests and finite differences. */
double mv_act_value(mv_activation act, double z);
double mv_act_slope(mv_activation act, double z);
/* Non-zero for activations with a kink at 0 (finite differences must not straddle it). */
int mv_act_has_kink(mv_activation act);

/* ---- losses.c: the output head */
/* Output activation of the head for rows [batch][n]. */
void mv_head_forward(mv_head head, const mv_real *z, mv_real *a, int batch, int n);
/* Mean loss; when delta != NULL writes dC/dz (divided by batch). */
double mv_head_loss(mv_head head, const mv_real *z, const mv_real *a, const mv_real *y,
                    mv_real *delta, int batch, int n);
/* mv_head_loss for rows [0, rows) of a batch of `batch` rows spread over processes: each
 * row's loss into losses[r] (may be NULL) and, when delta is not NULL, its dLoss/dz with the
 * 1/batch of the whole batch's mean. */
void mv_head_loss_rows(mv_head head, const mv_real *z, const mv_real *a, const mv_real *y,
                       mv_real *delta, int rows, int n, int batch, double *losses);
/* net.c: mv_forward_train with row r's dropout masks drawn from row_seeds[r], so that a row
 * gets its masks whatever its place in the batch or the process computing it. */
void mv_forward_train_rows(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch,
                           float dropout, const uint64_t *row_seeds);
/* Seeds delta = dS/dz[L-1] [n] of one row (z, a: that row's [n]) for an objective on output
 * unit k, and stores S in *value. */
mv_status mv_head_objective_seed(mv_head head, mv_objective kind, const mv_real *z,
                                 const mv_real *a, int n, int k, mv_real *delta,
                                 mv_real *value);

/* ---- layers.c: one dense layer, batched, row-major */
/* out_z[B][n_out] = in[B][n_in] . W^T + b */
void mv_dense_forward(const mv_real *in, const mv_real *W, const mv_real *b, mv_real *out_z,
                      int batch, int n_in, int n_out);
/* dW[n_out][n_in] = delta^T . in ; db[n_out] = column sums of delta (either may be NULL);
 * din[B][n_in] = delta . W (when din != NULL). Every output element is reduced by one
 * thread in a fixed order, so results do not depend on the thread count. scratch: [B][n_out]
 * values the kernels may use to rearrange delta (NULL: none). */
void mv_dense_backward(const mv_real *in, const mv_real *W, const mv_real *delta, mv_real *dW,
                       mv_real *db, mv_real *din, int batch, int n_in, int n_out,
                       mv_real *scratch);

/* The weight and bias gradients of a batch cut into chunks: chunk c is rows [bounds[c],
 * bounds[c + 1]) of in and delta (bounds[0] = 0, ascending; a chunk may be empty), n_chunks
 * a power of two up to 2^MV_MAX_GRAD_LEVELS. Each element is the sum of its chunk sums in a
 * fixed binary tree, ((s0 + s1) + (s2 + s3)) + ..., each chunk sum reduced in row order as
 * mv_dense_backward reduces a whole batch (so one chunk gives mv_dense_backward's bits). A
 * process that holds only some chunks can thus compute the subtrees it owns, and another
 * combine them into the very bits one process computes (train.c, across MPI ranks).
 * dW or db may be NULL; scratch as for mv_dense_backward. */
#define MV_MAX_GRAD_LEVELS 8
void mv_dense_param_grad_chunks(const mv_real *in, const mv_real *delta, mv_real *dW,
                                mv_real *db, int n_in, int n_out, mv_real *scratch,
                                const int *bounds, int n_chunks);

/* ---- gemm.c: the same three products in float with AVX2 + FMA kernels (x86-64 with gcc or
 * clang, unless built with -DMV_NO_SIMD). layers.c uses them when mv_simd_enabled() says the
 * processor has AVX2 and FMA and MLPVIZ_SIMD=portable is not set. */
#if !defined(MV_NO_SIMD) && defined(__x86_64__) && defined(__GNUC__)
#define MV_SIMD_KERNELS 1
void mv_simd_dense_forward(const float *in, const float *W, const float *b, float *z, int B,
                           int K, int N);
/* dW only; the bias gradient stays in layers.c. scratch: [B][N] values it may overwrite, or
 * NULL. */
void mv_simd_dense_weight_grad(const float *in, const float *delta, float *dW, int B, int K,
                               int N, float *scratch);
void mv_simd_dense_input_grad(const float *delta, const float *W, float *din, int B, int K,
                              int N);
/* mv_dense_param_grad_chunks (dW and db, either may be NULL); B = bounds[n_chunks]. */
void mv_simd_dense_param_grad_chunks(const float *in, const float *delta, float *dW,
                                     float *db, int B, int K, int N, float *scratch,
                                     const int *bounds, int n_chunks);
#else
#define MV_SIMD_KERNELS 0
#endif
/* Non-zero when layers.c should call the kernels above (decided once, on first use). */
int mv_simd_enabled(void);
/* Tests: 1 uses the AVX2 kernels when the processor has them, 0 the portable loops. */
void mv_simd_force(int enabled);

/* ---- net.c */
/* Runs the backward recursion from `top` (dC/dz of layer `top`, stored in ws->top_delta for
 * the last layer or ws->delta[0] otherwise) down to the input. */
void mv_backward_from(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch,
                      int top, const mv_real *top_delta, mv_params *grads, mv_real *grad_x);
/* One subtree of a batch's chunks (mv_dense_param_grad_chunks): rows [row0, row0 +
 * bounds[n_chunks]) of the rows passed, chunk c being bounds[c] .. bounds[c + 1] from row0. */
typedef struct {
    int row0;
    const int *bounds;   /* [n_chunks + 1], bounds[0] = 0 */
    int n_chunks;        /* a power of two */
    mv_params *grads;    /* receives the subtree's sums */
} mv_grad_node;
/* mv_backward with the parameter gradients summed by chunks: each node's into its grads. */
void mv_backward_nodes(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch,
                       const mv_grad_node *nodes, int n_nodes, mv_real *grad_x);
/* share.c: a batch shared among the processes of a job (see the file's comment). One per
 * training run; chunks: the run's gradient chunks (a power of two, at least the job's size). */
typedef struct mv_share mv_share;
mv_status mv_share_create(mv_share **out, const mv_arch *arch, int chunks);
void mv_share_free(mv_share *s);
/* Starts a batch of `rows` rows: this process computes rows [*row0, *row0 + *count). */
void mv_share_batch(mv_share *s, int rows, int *row0, int *count);
/* The rows mv_share_batch would give, without starting the batch. */
void mv_share_rows(const mv_share *s, int rows, int *row0, int *count);
/* This process's nodes for mv_backward_nodes (rows relative to *row0). Borrowed. */
const mv_grad_node *mv_share_nodes(const mv_share *s, int *n);
/* The parameters [lo, hi) this process updates. */
void mv_share_slice(const mv_share *s, size_t *lo, size_t *hi);
/* After mv_backward_nodes on every process: *grads holds the batch's gradient, over this
 * process's slice at least (collective). Borrowed. */
mv_status mv_share_reduce(mv_share *s, const mv_params **grads);
/* Every process's slice of data [P] to every process (collective). */
mv_status mv_share_gather_slices(mv_share *s, float *data);
/* The current batch's rows of every process, in row order: row_bytes a row (collective). */
mv_status mv_share_gather_rows(mv_share *s, const void *mine, size_t row_bytes, void *all);
/* optim.c: mv_optimizer_step on the parameters [lo, hi) of the flat block alone (the
 * others, and their moments, untouched); every element gets the bits of a whole step. */
void mv_optimizer_step_range(mv_optimizer *opt, const mv_arch *arch, mv_params *params,
                             const mv_params *grads, double lr, size_t lo, size_t hi);
/* ---- arch.c */
int mv_arch_max_width(const mv_arch *arch);

/* ---- gradcheck.c, compiled in both precisions */
mv_status mv_gradcheck_run_f32(const mv_gradcheck_config *config, mv_gradcheck_report *report);
mv_status mv_gradcheck_run_f64(const mv_gradcheck_config *config, mv_gradcheck_report *report);
/* Analytic gradients of the gradcheck setup, as doubles in report order: every parameter,
 * then the input gradient of the loss, then of the target. *out belongs to the caller
 * (free). */
mv_status mv_gradcheck_analytic_f32(const mv_gradcheck_config *config, double **out,
                                    size_t *count);
mv_status mv_gradcheck_analytic_f64(const mv_gradcheck_config *config, double **out,
                                    size_t *count);

/* ---- fileio.c */
/* A piece of the bytes of a file being written. */
typedef struct {
    const void *data;
    size_t size;
} mv_byte_span;

/* mv_write_file_atomic for a file made of several pieces. */
mv_status mv_write_spans_atomic(const char *path, const mv_byte_span *spans, int n_spans);
/* Reads path whole into *out (malloc'd, [*size] bytes), refusing anything but a regular file
 * of at most max_bytes (MV_ERR_FORMAT when larger); the messages name the file. */
mv_status mv_read_file(const char *path, uint64_t max_bytes, unsigned char **out, size_t *size);
/* The process umask, read once without changing it (umask() would set it, racing with other
 * threads creating files); 022 where /proc does not show it. */
mode_t mv_process_umask(void);
/* mkdir (one level, 0777 less the umask) that accepts an existing directory, and only a
 * directory. */
mv_status mv_make_directory(const char *path);

/* ---- gradcheck.c helpers shared with the tests */
/* |a - b| / max(|a|, |b|, floor) */
double mv_rel_error(double a, double b, double floor);

/* The L2 threat model of adversarial training (train.c), in network units x = (pixel -
 * mean) / std, with distances measured in pixels. D = the model's input width.
 * mv_project_l2: x [D] onto the L2 ball of radius eps around clean [D], then into the pixel
 * range (clamping after the ball keeps x in the ball: it only moves a pixel towards the
 * clean one's range).
 * mv_step_l2: x += a move of L2 length `length` in pixels along v [D]: v is a gradient in
 * network units (gradient != 0: the steepest ascent in pixel L2 is along v_i / std_c) or a
 * displacement in network units (gradient == 0: along v_i std_c in pixels). A zero v leaves
 * x unchanged. */
void mv_project_l2(const mv_model *m, double eps, const mv_real *clean, mv_real *x);
void mv_step_l2(const mv_model *m, mv_real *x, const mv_real *v, double length, int gradient);

/* Network-input gradients gx [count] of images to pixel gradients grad [count] (model.c):
 * x = (pixel - mean) / std, so dS/dpixel = dS/dx / std. With x (the network inputs) the
 * gradient of -l2 |x|^2 is added first; x NULL means no such term. grad may be gx. */
void mv_model_input_to_pixel_grad(const mv_model *model, const mv_real *gx, const mv_real *x,
                                  double l2, float *grad, size_t count);

/* Total variation of an image p [H][W][C], C <= 4 (visualize.c): the sum over pixels of
 * sqrt(sum_c (forward differences along x and y)^2 + 0.01^2), differences past the last
 * column or row being 0. mv_tv_add_gradient adds tv * (-dTV/dp) to g [H][W][C]. */
double mv_tv_value(const float *p, int W, int H, int C);
void mv_tv_add_gradient(const float *p, float *g, int W, int H, int C, double tv);

/* Images grouped by class (classstats.c): members [count] holds the image indices of class
 * 0, then class 1, ..., each class in dataset order; class k is members[start[k] ..
 * start[k + 1]), start [K + 1]. Labels must be in 0..K-1. */
void mv_group_by_class(const mv_dataset *data, int *start, int *members);
/* Images in data's smallest class (classstats.c): 0 when a class has none, -1 when out of
 * memory. n_classes must be at least 1; labels outside 0..K-1 are not counted. */
int mv_smallest_class_size(const mv_dataset *data);
/* One draw of a low-rank Gaussian (classstats.c): mean [D] + temperature * sum_i sd_i z_i
 * basis_i (basis [rank][D], sd [rank], z_i standard normal from rng) clamped to [0, 1], into
 * out [D]. All rank normals are drawn, whatever the temperature; rank 0..64 (0: basis and sd
 * may be NULL, out is the mean). */
void mv_low_rank_draw(const float *mean, const float *basis, const float *sd, int rank,
                      size_t D, double temperature, mv_rng *rng, float *out);
/* Class k's name for messages ("?" when the dataset has none). Borrowed. */
const char *mv_dataset_class_name(const mv_dataset *data, int k);


/* ---------------------------------------------------------------- storage (data.c, image.c) */

/* Where a streamed dataset's images are: one file each (an image folder), or one IDX file
 * read at offsets. */
struct mv_dataset_files {
    char **paths;        /* folder: [count] each image's file, owned; NULL for IDX */
    long long max_pixels; /* folder: the loader's limit, kept for every later decode */
    char *idx_path;      /* IDX: the image file, owned; NULL for a folder */
    int *items;          /* IDX: [count] each image's item in the file, owned */
    long long idx_data;  /* IDX: offset of item 0's bytes (after the header) */
};

/* mv_image_info, and whether the file stores 16 bits a sample (*sixteen non-zero). */
mv_status mv_image_probe(const char *path, int *width, int *height, int *channels,
                         int *sixteen);
/* mv_image_load into bytes [height][width][channels] (pixel b means b / 255.0f), for an
 * 8-bit image of exactly that size whose conversion mixes no values (gray to gray or RGB,
 * RGB to RGB, alpha dropped); anything else is an error naming the file. */
mv_status mv_image_load_bytes(const char *path, int channels, int width, int height,
                              long long max_pixels, uint8_t *out);
/* Non-zero when data holds its images in the storage it names (pixels, bytes or files). */
int mv_dataset_has_images(const mv_dataset *data);

/* ---------------------------------------------------------------- rows (prefetch.c) */

/* Rows of a dataset as floats in [0, 1], whatever its storage: out [n][D] gets the images
 * indices[0 .. n). The one reader of a dataset's pixels on the training path, so that 8-bit
 * and streamed datasets train with the bits of float ones. An error names the file. */
mv_status mv_dataset_read_rows(const mv_dataset *data, const int *indices, int n, float *out);

/* Images of a dataset as floats for code that indexes them, pixels + members[s] * D: the
 * dataset's own pixels and the given members when it holds floats, else the members' rows
 * read into a buffer of the view's own, [n][D], with members 0 .. n-1. Closed with
 * mv_rows_view_close (also after a failed open). */
typedef struct {
    const float *pixels;
    const int *members; /* [n] */
    float *rows;        /* owned: the rows read, or NULL */
    int *order;         /* owned: 0 .. n-1, or NULL */
} mv_rows_view;
mv_status mv_rows_view_open(mv_rows_view *view, const mv_dataset *data, const int *members,
                            int n);
void mv_rows_view_close(mv_rows_view *view);

/* Double-buffered reads of the next batch while the current one trains. start() copies the
 * indices and begins reading them (on a thread of its own when the data comes from disk);
 * take() waits for them and lends rows [n][D], valid until the start() after next. At most
 * max_rows rows a start. Owned by the caller (mv_prefetch_free). */
typedef struct mv_prefetch mv_prefetch;
mv_status mv_prefetch_create(mv_prefetch **out, const mv_dataset *data, int max_rows);
mv_status mv_prefetch_start(mv_prefetch *p, const int *indices, int n);
mv_status mv_prefetch_take(mv_prefetch *p, const float **rows);
void mv_prefetch_free(mv_prefetch *p);

/* dist.c: mv_dist_allgatherv where every rank's part is already in place in all (its
 * counts[rank] bytes at the sum of the counts before it): nothing is copied locally. */
mv_status mv_dist_allgatherv_in_place(void *all, const size_t *counts);
/* dist.c: every rank sends send_counts[r] floats from send + send_offsets[r] to rank r and
 * receives recv_counts[r] floats from rank r at recv + recv_offsets[r] (MPI_Alltoallv). */
mv_status mv_dist_alltoallv_floats(const float *send, const size_t *send_counts,
                                   const size_t *send_offsets, float *recv,
                                   const size_t *recv_counts, const size_t *recv_offsets);

/* model.c: MV_OK when the model is complete and consistent (what mv_model_save writes is
 * exactly what mv_model_load accepts); every reader ends with it. */
mv_status mv_model_check(const mv_model *model);
/* mv_model_check for a writer: the message becomes "cannot save PATH[as]: why". */
mv_status mv_model_check_to_save(const mv_model *model, const char *path, const char *as);
/* onnx_read.c: 1 when data[0..size) looks like an ONNX ModelProto (a well-formed protobuf
 * whose top-level fields are ModelProto's, holding a graph; or, truncated or damaged, one
 * that starts with ir_version). No allocation. */
int mv_onnx_sniff(const uint8_t *data, size_t size);
/* onnx_meta.c: an ONNX model from data[0..size), read from path (mv_model_load_with). */
mv_status mv_onnx_load(mv_model **out, const char *path, const uint8_t *data, size_t size,
                       const mv_model_hints *hints);

#endif /* MV_INTERNAL_H */
