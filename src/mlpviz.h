/* mlpviz.h: the one public header of libmlpviz.
 *
 * A dense multilayer perceptron with its own backpropagation, batched as matrices
 * (one row per sample), and the input gradients that class visualization climbs.
 *
 * Conventions
 * - Every public name starts with mv_ (types, functions) or MV_ (constants).
 * - Functions that can fail return mv_status; mv_last_error() then holds a readable message.
 *   The library never exits and never prints.
 * - Ownership: an object returned through an out-pointer by *_create belongs to the caller
 *   and is released with the matching *_free. Pointers passed in are borrowed, never kept
 *   past the call unless the comment says so.
 * - Layers are numbered from 0: layer l maps widths[l] inputs to widths[l+1] outputs with
 *   W[l] of shape [widths[l+1]][widths[l]] (row-major) and b[l] of shape [widths[l+1]].
 * - mv_real is float. The library is also compiled in double (-DMV_F64) for gradient checks;
 *   only mv_gradcheck() reaches that variant from a float build.
 */
#ifndef MLPVIZ_H
#define MLPVIZ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef MV_F64
typedef double mv_real;
#else
typedef float mv_real;
#endif

#define MV_VERSION "0.1.0"
#define MV_MAX_LAYERS 16 /* weight layers; an MLP deeper than this is not what mlpviz is for */

/* ---------------------------------------------------------------- errors */

typedef enum {
    MV_OK = 0,
    MV_ERR_ARG,       /* an argument is out of range or inconsistent */
    MV_ERR_NOMEM,     /* an allocation failed */
    MV_ERR_IO,        /* a file could not be read or written */
    MV_ERR_FORMAT,    /* a file's content is not what it should be */
    MV_ERR_NUMERIC,   /* a NaN or infinity appeared */
    MV_ERR_TOLERANCE, /* a check ran and failed (e.g. a gradient check above tolerance) */
} mv_status;

/* Short name of a status code ("invalid argument", ...). Static storage. */
const char *mv_status_string(mv_status status);

/* Message of the last failure in this thread. Static thread-local storage, valid until the
 * next failing call in the same thread. */
const char *mv_last_error(void);

/* ---------------------------------------------------------------- random numbers */

/* The project's own generator (xoshiro256**, seeded through splitmix64): the same seed gives
 * the same stream on every machine. Never rand(). */
typedef struct {
    uint64_t s[4];
} mv_rng;

/* Seeds the generator; every seed, including 0, gives a valid stream. */
void mv_rng_seed(mv_rng *rng, uint64_t seed);
/* Next 64 random bits. */
uint64_t mv_rng_next(mv_rng *rng);
/* Uniform double in [0, 1), 53 random bits. */
double mv_rng_uniform(mv_rng *rng);
/* Standard normal (Box-Muller, one value per call: simple and reproducible). */
double mv_rng_normal(mv_rng *rng);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint32_t mv_rng_below(mv_rng *rng, uint32_t n);

/* ---------------------------------------------------------------- architecture */

typedef enum {
    MV_ACT_IDENTITY,
    MV_ACT_SIGMOID,
    MV_ACT_TANH,
    MV_ACT_RELU,
    MV_ACT_LEAKY_RELU,  /* param = slope alpha for z < 0 */
    MV_ACT_SCALED_RELU, /* param = k in k*relu(z) */
    MV_ACT_SOFTPLUS,
    MV_ACT_GELU,        /* exact form z * Phi(z) */
    MV_ACT_COUNT
} mv_act_kind;

/* An activation and its parameter (ignored by the kinds that have none). */
typedef struct {
    mv_act_kind kind;
    float param;
} mv_activation;

/* The output layer's activation and the training loss, fused so that dL/dz is stable. */
typedef enum {
    MV_HEAD_SOFTMAX_CE,   /* softmax + cross-entropy: dL/dz = p - y */
    MV_HEAD_SIGMOID_BCE,  /* elementwise sigmoid + binary cross-entropy: dL/dz = p - y */
    MV_HEAD_IDENTITY_MSE, /* identity + squared error summed over outputs: dL/dz = 2 (z - y) */
    MV_HEAD_COUNT
} mv_head;

/* The shape of a network: a plain value, copied freely. */
typedef struct {
    int n_layers;                       /* weight layers L, 1..MV_MAX_LAYERS */
    int widths[MV_MAX_LAYERS + 1];      /* widths[0] inputs ... widths[L] outputs */
    mv_activation act[MV_MAX_LAYERS];   /* act[l] follows hidden layer l < L-1 */
    mv_head head;                       /* decides the last layer's activation */
} mv_arch;

/* Checks an architecture (widths >= 1, known kinds, finite parameters). */
mv_status mv_arch_validate(const mv_arch *arch);

/* Parses "784,128,64,10" (input, hidden..., output) into arch->widths and n_layers. */
mv_status mv_arch_parse_widths(mv_arch *arch, const char *text);

/* Parses one activation name: identity, sigmoid, tanh, relu, leaky_relu[:alpha],
 * scaled_relu[:k] (also "5relu" for k = 5), softplus, gelu. */
mv_status mv_activation_parse(mv_activation *act, const char *text);

/* Parses a head name: ce (softmax + cross-entropy), bce (sigmoid + BCE), mse. */
mv_status mv_head_parse(mv_head *head, const char *text);

/* Canonical names, static storage. */
const char *mv_act_name(mv_act_kind kind);
const char *mv_head_name(mv_head head);

/* Total number of parameters (weights and biases). */
size_t mv_arch_param_count(const mv_arch *arch);

/* ---------------------------------------------------------------- parameters and network */

/* Parameters (or gradients of the same shape) in one contiguous block:
 * W[0], b[0], W[1], b[1], ... so optimizers can run over data[0..count). */
typedef struct {
    mv_real *data;                 /* [count], owned by the object */
    size_t count;
    mv_real *W[MV_MAX_LAYERS];     /* [widths[l+1]][widths[l]], views into data */
    mv_real *b[MV_MAX_LAYERS];     /* [widths[l+1]], views into data */
} mv_params;

typedef struct {
    mv_arch arch;
    mv_params p;
} mv_net;

/* Allocates a network with zeroed parameters. *out belongs to the caller (mv_net_free). */
mv_status mv_net_create(mv_net **out, const mv_arch *arch);
/* Releases a network; NULL is allowed. */
void mv_net_free(mv_net *net);
/* He-normal init for layers feeding relu-like activations, Xavier-normal otherwise, zero
 * biases. Values are rounded to float so both precisions start from identical weights. */
void mv_net_init(mv_net *net, uint64_t seed);

/* Allocates a zeroed parameter-shaped block (for gradients, optimizer moments).
 * *out belongs to the caller (mv_params_free). */
mv_status mv_params_create(mv_params **out, const mv_arch *arch);
void mv_params_free(mv_params *params);

/* ---------------------------------------------------------------- workspace */

/* Every buffer that forward and backward passes need for batches up to `capacity` rows,
 * allocated once so that the passes themselves never allocate. */
typedef struct {
    mv_arch arch;
    int capacity;
    mv_real *z[MV_MAX_LAYERS];     /* [capacity][widths[l+1]] pre-activations */
    mv_real *a[MV_MAX_LAYERS];     /* [capacity][widths[l+1]] activations; a[L-1] = outputs */
    mv_real *delta[2];             /* [capacity][max width] ping-pong dC/dz buffers */
    mv_real *top_delta;            /* [capacity][widths[L]] dC/dz of the last layer */
    mv_real *block;                /* owner of all of the above */
} mv_workspace;

/* *out belongs to the caller (mv_workspace_free). */
mv_status mv_workspace_create(mv_workspace **out, const mv_arch *arch, int capacity);
void mv_workspace_free(mv_workspace *ws);

/* ---------------------------------------------------------------- passes */

/* Forward pass of `batch` rows of x [batch][widths[0]]; fills ws->z and ws->a. */
void mv_forward(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch);

/* Mean loss over the batch of the last forward pass against targets [batch][widths[L]]
 * (one-hot or soft labels for CE, 0/1 for BCE, real values for MSE). When want_delta is
 * non-zero it also stores dC/dz[L] (already divided by batch) in ws->top_delta.
 * Loss terms are summed in double. */
double mv_loss(const mv_net *net, mv_workspace *ws, const mv_real *targets, int batch,
               int want_delta);

/* Backward pass from ws->top_delta (set by mv_loss or by the caller): overwrites grads with
 * dC/dW and dC/db (summed over the batch rows), and, when grad_x is not NULL, writes dC/dx
 * [batch][widths[0]]. grads may be NULL to compute only grad_x. */
void mv_backward(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch,
                 mv_params *grads, mv_real *grad_x);

/* What an input gradient differentiates, per batch row. */
typedef enum {
    MV_OBJ_LOGIT,   /* z[L-1]_k, the class score before the head (Simonyan et al.) */
    MV_OBJ_OUTPUT,  /* a[L-1]_k, the head's output (softmax probability, sigmoid, identity) */
    MV_OBJ_LOGPROB, /* log a[L-1]_k (log-softmax or log-sigmoid); not for the MSE head */
    MV_OBJ_HIDDEN,  /* a[layer]_k, a hidden unit's activation */
    MV_OBJ_COUNT
} mv_objective;

typedef struct {
    mv_objective kind;
    int layer; /* MV_OBJ_HIDDEN only: hidden layer index, 0 .. L-2 */
} mv_target;

/* Input gradient of one scalar per row: for row r, d S(row r) / d x[r] where S is the
 * objective at unit index[r]. Runs its own forward pass; leaves parameters and any
 * gradient buffers untouched. values (may be NULL) receives S per row. */
mv_status mv_input_grad(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch,
                        mv_target target, const int *index, mv_real *grad_x,
                        mv_real *values);

/* ---------------------------------------------------------------- gradient checking */

typedef enum { MV_PREC_FLOAT, MV_PREC_DOUBLE } mv_precision;

typedef struct {
    mv_arch arch;
    int batch;             /* rows of the random batch */
    uint64_t seed;         /* weights, inputs, targets and sampled coordinates */
    int samples;           /* coordinates per tensor; 0 = every coordinate */
    double step;           /* finite-difference step h */
    double floor;          /* floor on the relative-error denominator */
    mv_target target;      /* objective for the input-gradient check */
} mv_gradcheck_config;

/* Fills a config with the defaults (batch 4, 64 samples, floor 1e-4,
 * logit objective); step 0 means 1e-3 in double, 1e-2 in float. */
void mv_gradcheck_defaults(mv_gradcheck_config *config, const mv_arch *arch);

#define MV_GRADCHECK_MAX_TENSORS (2 * MV_MAX_LAYERS + 2)

typedef struct {
    char name[24];         /* "W0", "b0", ..., "x(loss)", "x(logit)" */
    double max_rel_error;  /* max |analytic - numeric| / max(|a|, |n|, floor) */
    double max_abs_grad;   /* max |analytic| over the whole tensor */
    int checked;           /* coordinates compared */
    int skipped;           /* coordinates skipped: a relu-like kink lay within the stencil */
} mv_gradcheck_tensor;

typedef struct {
    int n_tensors;
    mv_gradcheck_tensor tensor[MV_GRADCHECK_MAX_TENSORS];
    double max_rel_error;  /* over all tensors */
    double float_vs_double;/* largest normwise relative difference max|f - d| / max|d|, over
                              the tensors, of the float and double analytic gradients (filled
                              by mv_gradcheck; < 0 when not computed) */
} mv_gradcheck_report;

/* Central finite differences (4-point stencil) on sampled coordinates of every parameter
 * tensor, of the input for the loss, and of the input for config->target, in the given
 * precision; then compares the float and double analytic gradients on the same weights.
 * Returns MV_OK when it ran (judge the report), or an error. */
mv_status mv_gradcheck(const mv_gradcheck_config *config, mv_precision precision,
                       mv_gradcheck_report *report);

/* Index of a tensor whose analytic gradient is all zero over the whole tensor, or -1.
 * A check that passes on zeros proves nothing. */
int mv_gradcheck_zero_tensor(const mv_gradcheck_report *report);

#ifdef __cplusplus
}
#endif
#endif /* MLPVIZ_H */
