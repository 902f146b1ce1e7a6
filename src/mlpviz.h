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
 *
 * Sections go from the bottom layer up, each function filed with the module that owns its
 * subject: errors, random numbers and files; the network (architecture, parameters,
 * workspace, passes and input gradients); images and datasets; the model (a network with its
 * input normalisation, classes and file: predictions, pixel gradients; read from mlpviz's
 * own format or from ONNX, written to either) and its class statistics and mixtures;
 * optimizers, training and evaluation; visualization; gradient checking. What only the
 * mlpviz binary needs (options, drawing on its sheets) is in src/cli/. Link with
 * `pkg-config --libs mlpviz` (stb, protobuf-c, libm, OpenMP).
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

/* ---------------------------------------------------------------- files */

/* Writes size bytes to path atomically: an unnamed temporary file in the same directory
 * (O_TMPFILE), fsync, then a hidden name and a rename over path, so that a writer killed at
 * any point leaves no partial file. On failure nothing new is left and an earlier file at
 * path is untouched; the message names the path and the reason. Where that way is not
 * possible (no O_TMPFILE or no locks on the filesystem, /proc not mounted, the hidden name
 * held) the temporary file is named (.NAME.XXXXXX) from the start, and a writer killed during
 * the write leaves it. docs/model-format.md ("Writing") has the details. */
mv_status mv_write_file_atomic(const char *path, const void *data, size_t size);

/* Writes a little-endian float32 NumPy .npy file (format 1.0, C order) of the given shape,
 * atomically. */
mv_status mv_npy_write(const char *path, const float *values, int ndim, const int *shape);

/* CRC-32 (IEEE 802.3, as zlib and PNG); start with crc = 0. */
uint32_t mv_crc32(uint32_t crc, const void *data, size_t size);

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

/* Sets arch->widths and n_layers to inputs, the hidden widths listed in `hidden` ("512,256";
 * "" for none, one weight layer) and outputs; activations and head are left as they are. A
 * bad list fails as mv_arch_parse_widths fails on "inputs,hidden,outputs", whose text the
 * message shows. */
mv_status mv_arch_set_widths(mv_arch *arch, int inputs, const char *hidden, int outputs);

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
    mv_real *mask[MV_MAX_LAYERS];  /* [capacity][widths[l+1]] hidden layers: 0 or 1/(1-p) */
    mv_real *kept[MV_MAX_LAYERS];  /* [capacity][widths[l+1]] hidden outputs after dropout */
    mv_real *scratch;              /* [capacity][max width] delta rearranged for the kernels */
    int dropout_active;            /* set by mv_forward_train, cleared by mv_forward */
    mv_real *block;                /* owner of all of the above */
} mv_workspace;

/* *out belongs to the caller (mv_workspace_free). */
mv_status mv_workspace_create(mv_workspace **out, const mv_arch *arch, int capacity);
void mv_workspace_free(mv_workspace *ws);

/* ---------------------------------------------------------------- passes and input gradients */

/* Forward pass of `batch` rows of x [batch][widths[0]]; fills ws->z and ws->a. The passes
 * trust their caller: ws must come from mv_workspace_create with net's architecture and
 * batch <= ws->capacity (mv_input_grad checks the batch). */
void mv_forward(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch);

/* Training forward pass with inverted dropout on every hidden layer: each hidden unit is
 * zeroed with probability `dropout` (0 <= dropout < 1) and the survivors are scaled by
 * 1/(1-dropout). Masks come from `seed` alone, so a step can be replayed exactly (resumed
 * training, finite differences); mv_backward then differentiates through the same masks. */
void mv_forward_train(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch,
                      float dropout, uint64_t seed);

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
    MV_OBJ_MARGIN,  /* z[L-1]_k - max over j != k of z[L-1]_j: the class's lead over the
                       strongest other class at this input; needs two outputs or more */
    MV_OBJ_HIDDEN_PRE, /* z[layer]_k, a hidden unit's pre-activation, whose gradient lives
                          even where a relu is off (a gray start leaves many units dead) */
    MV_OBJ_COUNT
} mv_objective;

typedef struct {
    mv_objective kind;
    int layer; /* MV_OBJ_HIDDEN and MV_OBJ_HIDDEN_PRE: hidden layer index, 0 .. L-2 */
} mv_target;

/* Input gradient of one scalar per row: for row r, d S(row r) / d x[r] where S is the
 * objective at unit index[r]. Runs its own forward pass; leaves parameters and any
 * gradient buffers untouched. values (may be NULL) receives S per row. */
mv_status mv_input_grad(const mv_net *net, mv_workspace *ws, const mv_real *x, int batch,
                        mv_target target, const int *index, mv_real *grad_x,
                        mv_real *values);

/* Which dense-layer kernels this process runs: "avx2+fma" (processor and build allow it, and
 * MLPVIZ_SIMD=portable is not set) or "portable". Static storage. The two round differently,
 * so a model trained with one is not bit-identical to one trained with the other. */
const char *mv_simd_name(void);

/* ---------------------------------------------------------------- images */

/* Default refusal threshold: an image whose header declares more pixels is not decoded. */
#define MV_DEFAULT_MAX_PIXELS (1LL << 26)

/* Loads one image (PNG, JPEG, BMP, TGA, GIF: what stb_image reads; the content decides, not
 * the extension) converted to `channels` (1: luminance 0.299 R + 0.587 G + 0.114 B, 3: RGB,
 * gray replicated; alpha dropped) and resized to width x height (area averaging when
 * shrinking, bilinear when enlarging). The header is checked first: images of more than
 * max_pixels pixels (0 = MV_DEFAULT_MAX_PIXELS) or of zero size are refused.
 * out: [height][width][channels] floats in [0, 1], caller-allocated. */
mv_status mv_image_load(const char *path, int channels, int width, int height,
                        long long max_pixels, float *out);

/* Reads only the header: size and channel count as stored (1..4). */
mv_status mv_image_info(const char *path, int *width, int *height, int *channels);

/* Writes an 8-bit PNG of [height][width][channels] floats in [0, 1] (clamped, rounded),
 * atomically: a temporary file in the same directory, fsync, rename. When text_key is not
 * NULL the PNG carries a tEXt chunk text_key = text_value. */
mv_status mv_png_write(const char *path, const float *pixels, int width, int height,
                       int channels, const char *text_key, const char *text_value);

/* Separable Gaussian blur of image [H][W][C] in place, with half-sample symmetric borders so
 * that a constant image stays constant and the mean is preserved; scratch [H][W][C]. */
void mv_gaussian_blur(float *image, float *scratch, int W, int H, int C, double sigma);

/* ---------------------------------------------------------------- datasets */

/* How a dataset holds its pixels. Every storage gives the same floats: a byte b is the pixel
 * b / 255.0f, exactly what the float loader makes of it. */
typedef enum {
    MV_STORAGE_FLOAT = 0, /* pixels: floats in memory (the default) */
    MV_STORAGE_BYTES,     /* bytes: 8 bits a value in memory, a quarter of the floats; asked
                           * for, it is used only when every value is a byte / 255 exactly
                           * (8-bit files at their own size, no luminance mixing, no 16-bit
                           * file), and the dataset is held as floats otherwise */
    MV_STORAGE_STREAM     /* nothing in memory but the file list: each image is read from disk
                           * when its row is asked for */
} mv_storage;

/* Where a streamed dataset's images are (data.c); opaque. */
typedef struct mv_dataset_files mv_dataset_files;

/* Labelled images, all of one shape. Code that reads `pixels` directly needs
 * MV_STORAGE_FLOAT, the default of every loader. */
typedef struct {
    int count;                 /* images */
    int channels, height, width;
    int n_classes;
    char **class_names;        /* [n_classes], owned; sorted bytewise for image folders */
    float *pixels;             /* FLOAT: [count][height][width][channels] in [0, 1], owned;
                                * NULL for the other storages */
    int *labels;               /* [count], 0 .. n_classes-1, owned */
    mv_storage storage;        /* which of pixels, bytes, files holds the images */
    uint8_t *bytes;            /* BYTES: [count][height][width][channels], owned */
    mv_dataset_files *files;   /* STREAM: each image's file (and place in it), owned */
} mv_dataset;

typedef struct {
    int width, height;         /* target size; 0 = the first image's size */
    int channels;              /* 1 or 3; 0 = 1 when every image is gray, 3 otherwise */
    int skip_bad;              /* non-zero: skip unreadable files (counted) instead of failing */
    long long max_pixels;      /* per image; 0 = MV_DEFAULT_MAX_PIXELS */
    mv_storage storage;        /* 0 = MV_STORAGE_FLOAT */
} mv_load_options;

/* Zero options: every field chosen automatically, bad files are errors. */
void mv_load_options_defaults(mv_load_options *options);

/* Loads ROOT/<class>/<file>: classes are the sub-directories sorted bytewise, a file's label
 * is the directory it is in, hidden files and directories are ignored, files are decoded in
 * parallel. An empty class directory, fewer than 2 classes, or (without skip_bad) any
 * unreadable file is an error naming the path. *skipped (may be NULL) receives the number of
 * files skipped. *out belongs to the caller (mv_dataset_free). */
mv_status mv_dataset_load_folder(mv_dataset **out, const char *root,
                                 const mv_load_options *options, int *skipped);

/* Loads an IDX image file (idx3, unsigned bytes, optionally gzip-compressed) and its IDX label
 * file (idx1). class_names (may be NULL: "0", "1", ...) names labels 0..n_names-1; a label
 * outside that range is an error. With class_names NULL and n_names 0, the classes are
 * "0" .. the largest label. *out belongs to the caller (mv_dataset_free). */
mv_status mv_dataset_load_idx(mv_dataset **out, const char *images_path,
                              const char *labels_path, const char *const *class_names,
                              int n_names);

/* mv_dataset_load_idx with a storage. MV_STORAGE_BYTES always holds bytes (IDX images are
 * 8-bit); MV_STORAGE_STREAM keeps the labels and reads each image at its offset in the
 * image file, which must then be uncompressed (a gzip file is refused: it cannot be read at
 * an offset without inflating everything before it). */
mv_status mv_dataset_load_idx_as(mv_dataset **out, const char *images_path,
                                 const char *labels_path, const char *const *class_names,
                                 int n_names, mv_storage storage);

/* Writes every image as ROOT/<class-name>/<index, 5 digits>.png (directories created),
 * in parallel, each file atomically. The dataset must be held as floats. */
mv_status mv_dataset_write_folder(const mv_dataset *data, const char *root);

/* Releases a dataset; NULL is allowed. */
void mv_dataset_free(mv_dataset *data);

/* Splits data into a training part and a validation part of round(fraction * count)
 * images chosen by seed; both keep the original order and data's storage (the parts of a
 * streamed dataset hold their share of its file list). The parts belong to the caller
 * (mv_dataset_free). */
mv_status mv_dataset_split(const mv_dataset *data, double fraction, uint64_t seed,
                           mv_dataset **train_out, mv_dataset **val_out);

/* ---------------------------------------------------------------- model */

/* A float32 array stored by name in a model file (optimizer moments, class means, ...). */
typedef struct {
    char name[32];
    size_t count;
    float *data;               /* [count], owned by the model */
} mv_model_extra;

#define MV_MODEL_MAX_EXTRAS 32

/* One metadata entry; the file stores it as a "key=value\n" line. Key non-empty without '='
 * or newline, value without newline; both owned by the model. */
typedef struct {
    char *key, *value;
} mv_model_meta;

/* What mv_model_load saw of the file itself, beyond what the model holds: for reports and
 * provenance, so that no caller reads the model file's bytes. All zero for a model that was
 * not loaded from a file (created, trained, copied). */
typedef enum { MV_FORMAT_NONE, MV_FORMAT_MLPVIZ, MV_FORMAT_ONNX } mv_model_format;

typedef struct {
    mv_model_format format;    /* which reader made the model */
    uint64_t size;             /* bytes */
    uint32_t version;          /* format version (ONNX: the IR version) */
    uint32_t crc;              /* the stored CRC-32, verified by the load (ONNX: computed) */
} mv_model_file_info;

/* A trained classifier as stored on disk: the network, how to feed it, what its outputs are
 * called, and how it was made. docs/model-format.md describes the bytes. */
typedef struct {
    mv_net *net;               /* owned */
    int channels, height, width; /* input image shape: channels*height*width == widths[0] */
    float mean[4], std[4];     /* per channel: x = (pixel - mean[c]) / std[c] */
    int n_classes;             /* == output width */
    char **class_names;        /* [n_classes], owned */
    mv_model_meta *meta;       /* [n_meta] in file order (command line, seed, accuracies...),
                                  owned, NULL when n_meta is 0 */
    int n_meta;
    int n_extras;
    mv_model_extra extras[MV_MODEL_MAX_EXTRAS];
    mv_model_file_info file;   /* filled by mv_model_load, else zero */
} mv_model;

/* A model with a zeroed network of this shape, input shape 1 x widths[0] x 1, mean 0, std 1,
 * classes named "0".."n-1". *out belongs to the caller (mv_model_free). */
mv_status mv_model_create(mv_model **out, const mv_arch *arch);
/* Releases a model; NULL is allowed. */
void mv_model_free(mv_model *model);
/* A deep copy of src: network, input shape and normalisation, class names, metadata entries
 * (order and duplicates kept) and extras; its file info is zero (it was not loaded). *out
 * belongs to the caller (mv_model_free); src is only read. */
mv_status mv_model_clone(mv_model **out, const mv_model *src);

/* Replaces the class names (copied); n must equal the output width. */
mv_status mv_model_set_class_names(mv_model *model, const char *const *names, int n);
/* Reorders the outputs so that output k is the class named names[k]: the last layer's rows,
 * its biases and the names move together, so each class keeps its score function. names must
 * be the model's own names in some order. A model with extras (per-class arrays) is refused:
 * they would keep the old order. On failure the model is unchanged. */
mv_status mv_model_reorder_classes(mv_model *model, const char *const *names, int n);
/* Sets (or replaces) one metadata key; keys and values may not contain '\n', keys not '='. */
mv_status mv_model_meta_set(mv_model *model, const char *key, const char *value);
/* Value of a metadata key (its first entry), or NULL. Borrowed: valid until that key is set
 * again or the model is freed. */
const char *mv_model_meta_get(const mv_model *model, const char *key);
/* Stores a copy of a named float array, replacing one of the same name. */
mv_status mv_model_extra_set(mv_model *model, const char *name, const float *data,
                             size_t count);
/* A named float array, or NULL; *count (may be NULL) receives its length. Borrowed. */
const float *mv_model_extra_get(const mv_model *model, const char *name, size_t *count);

/* Normalises n images of pixels [n][height][width][channels] into network inputs x. */
void mv_model_prepare_input(const mv_model *model, const float *pixels, mv_real *x, int n);

/* Sets the model's input normalisation to the per-channel mean and standard deviation of
 * the dataset's pixels (summed in double, in a fixed order), whatever its storage. Fails
 * only when a streamed image cannot be read (the model is then unchanged). */
mv_status mv_model_fit_normalisation(mv_model *model, const mv_dataset *data);

/* Class probabilities [n][n_classes] of n images of pixels (caller-allocated): the model's
 * verdict on synthesized images, e.g. a second model judging them. MV_ERR_NUMERIC when an
 * output is not finite (finite but huge weights can overflow). */
mv_status mv_model_predict(const mv_model *model, const float *pixels, int n, float *probs);

/* Pixel gradients of n images of pixels [n][height][width][channels]: grad [n][D] (same
 * layout, caller-allocated) receives, for row r, d S / d pixels[r] of the objective S of
 * `target` at unit index[r], through the input normalisation (dS/dpixel = dS/dx / std).
 * values (may be NULL) receives S per row. Allocates its own batch buffers. */
mv_status mv_model_pixel_grad(const mv_model *model, const float *pixels, int n,
                              mv_target target, const int *index, float *grad, mv_real *values);

/* Writes the model atomically (temporary file, fsync, rename): a failure leaves any earlier
 * file at path untouched. */
mv_status mv_model_save(const mv_model *model, const char *path);
/* Reads and fully validates a model: magic, version, sizes before any large allocation,
 * CRC-32, finite weights; (*out)->file records the file's size, version and CRC. An ONNX file
 * (recognised by content) is read as mv_model_load_with(out, path, NULL) does. *out belongs
 * to the caller (mv_model_free). */
mv_status mv_model_load(mv_model **out, const char *path);

/* What an ONNX file may leave unsaid (docs/onnx.md): how to feed the graph and what its
 * outputs are called. Each field is "not given" when zero or NULL. The file's metadata_props
 * come first, then a sidecar JSON next to it (MODEL.onnx.json), then these; a hint that
 * disagrees with the file or sidecar is an error, not silently dropped. Borrowed. */
typedef struct {
    int channels, height, width;    /* input shape C x H x W */
    int channel_order_hwc;          /* 1: graph input is [N][H][W][C]; 0: not given (chw) */
    float pixel_scale;              /* graph-input value of a white pixel (1 or 255) */
    int n_mean, n_std;              /* 1 (every channel) or channels values */
    float mean[4], std[4];          /* in graph-input units: x = (pixel*scale - mean) / std */
    const char *const *class_names; /* [n_classes] */
    int n_classes;
} mv_model_hints;

/* mv_model_load for either format; hints (may be NULL) serve ONNX files only, and an
 * mlpviz model file with a non-empty hints is MV_ERR_ARG (its file records all of that). */
mv_status mv_model_load_with(mv_model **out, const char *path, const mv_model_hints *hints);

/* Writes the model as an ONNX file (docs/onnx.md), atomically like mv_model_save: IR version
 * 8, opset 17, the network as PyTorch exports an MLP (input "input" float [N][C][H][W] with a
 * symbolic batch N, Flatten, one Gemm per layer with float32 initializers, the hidden
 * activations as standard ops, the head as Softmax, Sigmoid or nothing; output "output"
 * [N][K]). The graph input is the normalised image in CHW order, x = (pixel - mean[c]) /
 * std[c]: the first layer's weight columns are reordered from mlpviz's HWC to CHW (a
 * permutation, so outputs agree exactly), and the normalisation, class names, head and the
 * model's metadata (as "mlpviz.meta.KEY") go into metadata_props, with any byte of a name
 * or value that is not UTF-8 replaced by U+FFFD. mv_model_load reads the file back. */
mv_status mv_model_save_onnx(const mv_model *model, const char *path);

/* ---------------------------------------------------------------- class statistics and mixtures */

/* Fits, for every class of data, the mean image and a low-rank Gaussian of its pixels (the
 * top `rank` principal directions of the class covariance and the standard deviation along
 * each, found by seeded subspace iteration in double), and stores them in the model as
 * extras "class.mean" [K][D], "class.basis" [K][rank][D] (orthonormal rows) and
 * "class.sd" [K][rank] (descending), D = height * width * channels, in pixel space [0, 1].
 * They give class visualization its class-conditional starts (Santurkar et al. 2019). The
 * result depends only on the data, rank and seed, never on the thread count. rank is
 * 0..64 (0 stores the means alone) and below the smallest class size. */
mv_status mv_model_fit_class_stats(mv_model *model, const mv_dataset *data, int rank,
                                   uint64_t seed);

/* The rank at which to fit class statistics on data when `wanted` (0..64) is asked for: the
 * policy of `mlpviz train`, here so that every caller applies the same. A class of n images
 * spans at most n - 1 directions, so the rank is lowered below the smallest class's size; and
 * images of more than 4096 values get the means alone (rank 0), as the fit holds a D x D
 * matrix per class (128 MB at 4096). MV_OK when *rank is wanted or lowered only for the class
 * sizes. Otherwise the message says why it is less, and *rank is still what can be fitted:
 * 0 (MV_ERR_ARG) when the images are too large for a Gaussian; -1, nothing, when a class has
 * no image (MV_ERR_ARG) or the classes cannot be counted (MV_ERR_NOMEM). */
mv_status mv_class_stats_rank(const mv_dataset *data, int wanted, int *rank);

/* Non-zero when the model carries consistent class statistics; *rank (may be NULL)
 * receives their rank. */
int mv_model_has_class_stats(const mv_model *model, int *rank);

/* One start image for class k into out [D] (caller-allocated): the class mean plus
 * temperature * sum_i sd_i z_i basis_i with z_i standard normal from rng, clamped to [0, 1].
 * temperature 0 gives the mean. Fails when the model has no class statistics. */
mv_status mv_class_sample(const mv_model *model, int k, double temperature, mv_rng *rng,
                          float *out);

/* Fits, for every class of data, a mixture of `components` (M) k-means components of its
 * pixels (k-means++ seeding from seed and the class, then Lloyd iterations in double until
 * no assignment changes, at most 50; an emptied component takes the member farthest from
 * its centre), and stores them in the model as extras "class.mixture.mean" [K][M][D] (each
 * component's mean image) and "class.mixture.weight" [K][M] (the fraction of the class's
 * images in it), components by decreasing weight, in pixel space [0, 1]. When the model
 * already carries class statistics of rank R > 0 (fit them first), also
 * "class.mixture.sd" [K][M][R]: the standard deviation of each component's members along
 * the class's R basis directions ("class.basis"); otherwise an earlier "class.mixture.sd"
 * is emptied. Refit the mixture whenever the class statistics are refitted: at another
 * rank mv_model_has_class_mixture reports it inconsistent, at the same rank its deviations
 * would silently refer to the old directions. They give
 * class visualization diverse class-conditional starts, each near one of the class's
 * modes. The result depends only on the data, components, seed and class statistics, never
 * on the thread count. components is 1..64 and at most the smallest class size; errors name
 * the class. On failure the model's earlier mixture, if any, is left or reported absent. */
mv_status mv_model_fit_class_mixture(mv_model *model, const mv_dataset *data, int components,
                                     uint64_t seed);

/* The number of mixture components to fit on data when `wanted` are asked for: at most one
 * per image of the smallest class, 0 (none) when a class has no image or the classes cannot
 * be counted. */
int mv_class_mixture_components(const mv_dataset *data, int wanted);

/* Non-zero when the model carries a consistent class mixture (sizes agree with its classes,
 * input and class statistics; every class's weights >= 0 with a positive sum);
 * *components (may be NULL) receives M, 0 when there is none. */
int mv_model_has_class_mixture(const mv_model *model, int *components);

/* One start image for class k into out [D] (caller-allocated): a component m drawn with
 * probability its weight, then its mean plus temperature * sum_i sd[m][i] z_i basis_i with
 * z_i standard normal from rng, clamped to [0, 1]. temperature 0 gives the component mean.
 * Every call draws one uniform and R normals from rng, whatever the temperature. Fails when
 * the model has no consistent mixture, and for temperature > 0 when the mixture has no
 * deviations (no class statistics of rank > 0 when it was fitted). */
mv_status mv_class_mixture_sample(const mv_model *model, int k, double temperature,
                                  mv_rng *rng, float *out);

/* ---------------------------------------------------------------- optimizers */

typedef enum {
    MV_OPT_SGD,
    MV_OPT_MOMENTUM, /* heavy ball: v = mu v + g; theta -= lr v */
    MV_OPT_NESTEROV, /* v = mu v + g; theta -= lr (g + mu v) */
    MV_OPT_ADAM,     /* Kingma & Ba, bias-corrected; weight decay added to the gradient */
    MV_OPT_ADAMW,    /* Adam with decoupled weight decay (Loshchilov & Hutter) */
    MV_OPT_COUNT
} mv_opt_kind;

typedef struct {
    mv_opt_kind kind;
    double momentum;      /* mu, momentum and nesterov (default 0.9) */
    double beta1, beta2;  /* adam, adamw (defaults 0.9, 0.999) */
    double eps;           /* adam, adamw (default 1e-8) */
    double weight_decay;  /* on weights only, never biases (default 0) */
} mv_opt_config;

/* Optimizer state: the moments, in the parameter layout. */
typedef struct {
    mv_opt_config config;
    size_t count;
    float *m;             /* [count] first moment / velocity, owned */
    float *v;             /* [count] second moment (adam, adamw), owned */
    long step;            /* updates done so far (adam's bias correction) */
} mv_optimizer;

/* Defaults for a kind (see mv_opt_config). */
void mv_opt_defaults(mv_opt_config *config, mv_opt_kind kind);
/* Parses sgd, momentum, nesterov, adam, adamw. */
mv_status mv_opt_parse(mv_opt_kind *kind, const char *text);
const char *mv_opt_name(mv_opt_kind kind);

/* Zeroed state for a parameter block of this shape. *out belongs to the caller
 * (mv_optimizer_free). */
mv_status mv_optimizer_create(mv_optimizer **out, const mv_opt_config *config,
                              const mv_arch *arch);
void mv_optimizer_free(mv_optimizer *opt);
/* One update of params from grads with learning rate lr. Elementwise, so the result does
 * not depend on the thread count. */
void mv_optimizer_step(mv_optimizer *opt, const mv_arch *arch, mv_params *params,
                       const mv_params *grads, double lr);

/* ---------------------------------------------------------------- training and evaluation */

typedef enum { MV_LR_CONST, MV_LR_STEP, MV_LR_COSINE, MV_LR_COUNT } mv_lr_schedule;

/* The norm of an adversarial-training ball. */
typedef enum { MV_ADV_LINF, MV_ADV_L2, MV_ADV_NORM_COUNT } mv_adv_norm;

typedef struct {
    mv_lr_schedule kind;
    double lr;            /* peak learning rate */
    double warmup_epochs; /* linear warm-up from 0 over this many epochs (may be fractional) */
    int step_every;       /* MV_LR_STEP: multiply by gamma every this many epochs */
    double gamma;
    double min_lr;        /* MV_LR_COSINE: the floor it decays to */
} mv_lr_config;

/* Learning rate at update `step` (0-based) of a run of total_steps, steps_per_epoch each. */
double mv_lr_at(const mv_lr_config *config, long step, long steps_per_epoch, long total_steps);
mv_status mv_lr_parse(mv_lr_schedule *kind, const char *text);

/* Per-epoch figures, as the metrics CSV records them. */
typedef struct {
    int epoch;            /* 1-based */
    double lr;            /* at the epoch's last step */
    double train_loss, train_accuracy; /* over the epoch's batches, as trained (augmented,
                                          dropout) */
    double val_loss, val_accuracy;     /* -1 when there is no validation set */
    double seconds;       /* wall time of the epoch */
} mv_epoch_metrics;

/* What a progress callback sees after every batch (batch > 0) and at every epoch's end
 * (batch == 0, metrics filled). */
typedef struct {
    int epoch, epochs;
    long batch, batches;  /* within the epoch */
    double loss, accuracy;/* running means over the epoch so far */
    double samples_per_second;
    double eta_seconds;   /* estimated time to the end of the run */
    const mv_epoch_metrics *metrics; /* epoch end only */
} mv_train_progress;

typedef struct {
    int epochs;
    int batch;
    mv_opt_config opt;
    mv_lr_config lr;
    float dropout;        /* on hidden layers */
    float label_smoothing;/* targets (1 - e) one-hot + e / classes (Szegedy et al. 2016) */
    int shift;            /* augmentation: random shifts of up to this many pixels */
    int flip;             /* augmentation: random horizontal flips */
    /* Adversarial training (Madry et al. 2018): every batch is replaced by the worst case
     * found by adv_steps steps of projected gradient ascent on the loss inside the L-inf ball
     * of radius adv_eps (pixel units, the image kept in [0, 1]), from a random start; one
     * step without a random start is FGSM (Goodfellow et al. 2015). 0 steps = off. */
    int adv_steps;
    double adv_eps;
    double adv_step_size; /* per step, pixel units; 0 = 2.5 eps / steps (eps for FGSM) */
    /* The ball's norm. L2 (the threat model whose robust gradients look like the data,
     * Santurkar et al. 2019): a random start inside the ball, steps along the L2-normalised
     * pixel gradient, projection onto the ball, then onto the pixel range; one step without
     * a random start is the fast gradient method. */
    mv_adv_norm adv_norm;
    /* Gaussian noise of this standard deviation (pixel units, not clamped) added to every
     * training input before any attack: randomized-smoothing-style training, a second route
     * to perceptually aligned gradients (Kaur et al. 2019). 0 = off. */
    double noise_aug;
    uint64_t seed;        /* shuffling, dropout, augmentation */
    /* Every batch's parameter gradient is summed over this many chunks of rows (a power of
     * two up to 256; 0 = MV_DEFAULT_GRAD_CHUNKS) in a fixed tree, so that a job of up to that
     * many processes (mpirun, make MPI=1) computes the very bits of one process. Another
     * value gives other bits. */
    int grad_chunks;
    int keep_best;        /* end with the weights of the best validation accuracy */
    const char *checkpoint_path; /* written atomically every epoch and on interruption */
    const char *metrics_path;    /* CSV rewritten atomically every epoch (may be NULL) */
    void (*progress)(const mv_train_progress *progress, void *user);
    void *user;
    /* Asked after every batch (may be NULL): non-zero writes a checkpoint and stops, as an
     * interrupted run (a signal handler's flag, a deadline). Receives user. */
    int (*should_stop)(void *user);
    const mv_model *resume;  /* a checkpoint to continue from (may be NULL); borrowed */
} mv_train_config;

#define MV_DEFAULT_GRAD_CHUNKS 8

/* Defaults: 10 epochs, batch 128, adam lr 1e-3, no schedule, no regularization, seed 1. */
void mv_train_defaults(mv_train_config *config);

/* Trains model (network initialised, normalisation set, class names those of the dataset)
 * on train, measuring on val (may be NULL) after every epoch. Every epoch, and when
 * config->should_stop returns non-zero, a checkpoint (the model plus the training state) is
 * written to config->checkpoint_path. With config->resume (a loaded checkpoint made with the
 * same data and settings), training continues where it stopped and ends bitwise identical
 * to an uninterrupted run. Returns MV_OK (check *interrupted), MV_ERR_NUMERIC when the loss
 * became NaN or infinite (the model then holds the last completed epoch's weights, and its
 * meta "train.epochs" counts them when there was one), or another error. The model's meta receives the final figures ("train.accuracy", ...).
 * In a job of several processes (mv_dist_size() > 1) every process calls mv_train with the
 * same arguments: each computes its share of every batch, all end with the same model, and
 * rank 0 alone writes the checkpoint and the metrics and reports progress. The data must be
 * the same on every process (checked before the first step). A failure on any process is
 * returned on every process, as "rank R: reason". */
mv_status mv_train(mv_model *model, const mv_dataset *train, const mv_dataset *val,
                   const mv_train_config *config, int *interrupted);

/* Accuracy and mean loss of a model on a dataset, and the confusion matrix
 * confusion[true][predicted] (may be NULL; n_classes^2 counts, caller-allocated). */
mv_status mv_evaluate(const mv_model *model, const mv_dataset *data, double *accuracy,
                      double *loss, long *confusion);

/* ---------------------------------------------------------------- visualization */

/* Where each image starts. */
typedef enum {
    MV_INIT_GRAY,         /* every pixel 0.5 */
    MV_INIT_NOISE,        /* 0.5 + 0.1 N(0, 1), seeded */
    MV_INIT_IMAGE,        /* a given image */
    MV_INIT_MEAN,         /* the training data's mean pixel, plus N(0, 1/255) (Yosinski's
                             "mean plus rand") */
    MV_INIT_CLASS_MEAN,   /* the target class's mean image (needs class statistics) */
    MV_INIT_CLASS_SAMPLE, /* a draw from the target class's Gaussian (Santurkar et al. 2019) */
    MV_INIT_CLASS_MIXTURE,/* a draw from a k-means component of the target class and its
                             Gaussian along the class's directions (needs a class mixture):
                             seeds start from different modes of the class */
    MV_INIT_COUNT
} mv_viz_init;

/* How the (smoothed) gradient direction d becomes a step. */
typedef enum {
    MV_STEP_FIXED,        /* lr * d */
    MV_STEP_NORMALIZED,   /* lr * d / mean|d| (DeepDream style) */
    MV_STEP_PROGRESS,     /* min(max_lr, progress / (g . d)) * d: the objective should rise by
                             `progress` per step if it were linear (Yosinski et al. 2015) */
    MV_STEP_L2,           /* lr * d / |d|_2: every step moves the image by lr in L2 (pixel
                             units), the step of L2 adversarial attacks on robust models */
    MV_STEP_COUNT
} mv_viz_step;

/* What the decay pulls each image towards. */
typedef enum {
    MV_DECAY_TO_START,    /* the image it started from */
    MV_DECAY_TO_MEAN,     /* the data's mean pixel (Yosinski's L2 decay) */
    MV_DECAY_TO_PRIOR,    /* what is known before the ascent: the start when it is drawn from
                             the data (class starts, a given image), the mean pixel otherwise
                             (gray, noise, mean) */
    MV_DECAY_TO_COUNT
} mv_viz_decay_to;

/* What turns the gradient into a direction. */
typedef enum { MV_PIXOPT_PLAIN, MV_PIXOPT_MOMENTUM, MV_PIXOPT_ADAM, MV_PIXOPT_COUNT } mv_viz_optimizer;

/* Gradient ascent on the pixels (values in [0, 1]) of one image per target. Each
 * regularizer is off at 0. */
typedef struct {
    int steps;            /* ascent steps (default 300) */
    mv_objective objective; /* what each image climbs (default MV_OBJ_LOGIT): the target
                             class's logit (Simonyan et al. 2013), probability (MV_OBJ_OUTPUT),
                             log-probability or margin, or a hidden unit's pre-activation
                             (MV_OBJ_HIDDEN_PRE: targets are unit indices of hidden layer
                             unit_layer, scored by their activation) */
    int unit_layer;       /* MV_OBJ_HIDDEN_PRE: the hidden layer, 0 .. n_layers-2 */
    double l2;            /* objective - l2 * |x|^2 on the network input */
    double tv;            /* objective - tv * TV(p): the isotropic total variation of the pixels,
                             sum over pixels of sqrt(|forward differences|^2 + 0.01^2), which
                             favours flat regions with sharp edges over speckle */
    mv_viz_step step;     /* default MV_STEP_NORMALIZED */
    double lr;            /* step size, pixel units (default 0.02); the cap for PROGRESS */
    double progress;      /* MV_STEP_PROGRESS: wanted rise of the objective per step */
    mv_viz_optimizer optimizer; /* default MV_PIXOPT_PLAIN */
    double momentum;      /* MV_PIXOPT_MOMENTUM: mu (default 0.9); ADAM: beta1 (beta2 0.999) */
    double decay;         /* every step: p -= decay * (p - reference) (default 0.002) */
    mv_viz_decay_to decay_to; /* the reference (default MV_DECAY_TO_START) */
    int blur_every;       /* Gaussian blur of the image every this many steps */
    double blur_sigma;    /* its sigma in pixels (default 0.5, every 4 steps) */
    double grad_blur;     /* sigma of the blur of the gradient before each step (default 1) */
    int smooth_samples;   /* > 0: the gradient is the mean over this many copies of the image
                             with Gaussian noise of smooth_sigma pixels added (SmoothGrad): the
                             gradient of the noise-smoothed objective (default 0) */
    double smooth_sigma;
    int jitter;           /* random shifts (with wrap) of up to this many pixels (default 1) */
    int clamp;            /* clamp pixels to [0, 1] after every step (default 1) */
    double norm_pct;      /* Yosinski: pixels whose norm (over channels, network units) is
                             below this percentile are set to the mean pixel, every step */
    double contrib_pct;   /* Yosinski: likewise for |sum_c x_c g_c|, the pixel's first-order
                             contribution to the objective */
    int octaves;          /* multi-scale: the steps are split over this many octaves, the
                             first at 1/octave_scale^(octaves-1) of the resolution (default 1) */
    double octave_scale;  /* (default 1.5) */
    mv_viz_init init;     /* default MV_INIT_GRAY */
    double temperature;   /* MV_INIT_CLASS_SAMPLE and _MIXTURE: scale of the Gaussian's spread
                             (default 1) */
    double init_noise;    /* Gaussian noise of this sd added to every start, then clamped, so
                             that seeds from the same start differ (default 0) */
    double step_noise;    /* Gaussian noise of sd step_noise * (1 - step / steps) added to the
                             pixels after every step (Langevin-style: the ascent explores, and
                             seeds end in different images; 0 = off) */
    double diversity;     /* objective - diversity * the mean cosine similarity between the
                             last hidden layer's activations at this image and at each other
                             image with the same target: the seeds of a class are pushed
                             apart in the features the model classifies with, not collapsed
                             onto one prototype (Olah et al. 2017). Class objectives and a
                             hidden layer needed (0 = off) */
    double stop_prob;     /* an image stops changing once the model gives its target this
                             probability at the unjittered image: a start that is already
                             clear is kept as it is (class objectives; 0 = never) */
    uint64_t seed;        /* every random choice: starts and jitter */
    int frame_every;      /* call on_frame every this many steps (0 = never) */
    /* Receives the images [n][height][width][channels] after `step` steps (0 = the start);
     * the buffer is borrowed for the call. */
    void (*on_frame)(int step, const float *images, int n, void *user);
    void (*on_step)(int step, int steps, void *user); /* after every step (may be NULL) */
    /* With on_scores set, receives after every step (1..steps) the objective [n] of each row
     * as that step's gradient saw it: at the jittered image, averaged over the noisy copies
     * with gradient smoothing (the objective the ascent climbs), without the l2, tv and
     * diversity terms. Measured on passes the ascent makes anyway; the buffer is borrowed. */
    void (*on_scores)(int step, const double *scores, int n, void *user);
    void *user;
} mv_viz_config;

/* What one image achieved, measured on the final image without jitter. */
typedef struct {
    double score;         /* the objective */
    double logit, prob;   /* of the target class (class objectives; else of top_class) */
    double margin;        /* that logit minus the largest other logit */
    int top_class;        /* the class the model gives the final image */
    int first_top_step;   /* first step at which the target was the top class (for a unit:
                             the most active unit of its layer), or -1 */
} mv_viz_result;

/* The defaults listed in mv_viz_config. */
void mv_viz_defaults(mv_viz_config *config);

/* Fills config with a named preset (and the defaults for what the preset leaves alone):
 * "default" (tuned with an independent judge on the committed robust model, from nothing: a
 * gray start with noise 0.2 per seed, 400 L2 steps of 0.1 on the log-probability along the
 * gradient averaged over 8 copies with noise of sd 1, decay 0.005 towards the mean pixel, no
 * blur), "prior" (the same climb from a k-means component of the class, which needs a class
 * mixture: 100 steps of 0.05, no decay, no jitter), "plain" (unregularized ascent:
 * fixed steps from gray, nothing else), or "yosinski1".."yosinski4" (the four settings of
 * Yosinski et al. 2015, Table 1, translated from 0..255 mean-subtracted pixels to [0, 1]:
 * learning rates divided by 255^2, decay towards the mean pixel, blur sigmas, percentiles and
 * step counts kept). */
mv_status mv_viz_preset(mv_viz_config *config, const char *name);
/* The preset names, NULL-terminated. */
extern const char *const mv_viz_preset_names[];

/* Parses / names the enums above: "gray", "noise", "mean", "class-mean", "class-sample",
 * "class-mixture" (MV_INIT_IMAGE has no name: it needs a file); the objectives visualization
 * climbs, "logit", "prob" (MV_OBJ_OUTPUT), "logprob", "margin", "unit" (MV_OBJ_HIDDEN_PRE;
 * MV_OBJ_HIDDEN has no name here); "fixed", "normalized", "progress", "l2"; "plain",
 * "momentum", "adam". */
mv_status mv_viz_init_parse(mv_viz_init *init, const char *text);
mv_status mv_viz_objective_parse(mv_objective *objective, const char *text);
mv_status mv_viz_step_parse(mv_viz_step *step, const char *text);
mv_status mv_viz_optimizer_parse(mv_viz_optimizer *optimizer, const char *text);
/* "start", "mean", "prior". */
mv_status mv_viz_decay_to_parse(mv_viz_decay_to *decay_to, const char *text);
/* Their names (static storage; MV_INIT_IMAGE is "image", out of range "?"). */
const char *mv_viz_init_name(mv_viz_init init);
const char *mv_viz_objective_name(mv_objective objective);
const char *mv_viz_step_name(mv_viz_step step);
const char *mv_viz_optimizer_name(mv_viz_optimizer optimizer);
const char *mv_viz_decay_to_name(mv_viz_decay_to decay_to);

/* Optimises n images, images [n][height][width][channels] (caller-allocated, overwritten),
 * row r towards target targets[r] of model (a class, or a unit of config->unit_layer);
 * init_image [height][width][channels] is used by MV_INIT_IMAGE (else may be NULL). All rows
 * go through one batched pass per step; the result depends on the seed, never on the thread
 * count. No step allocates; building an octave's resampling operators (stb_image_resize)
 * does, between octaves. */
mv_status mv_visualize(const mv_model *model, const mv_viz_config *config, const int *targets,
                       int n, const float *init_image, float *images, mv_viz_result *results);

/* The same batch of n_all rows (targets [n_all]), of which only rows [n] (ascending row
 * indices; NULL: all, n = n_all) are computed here, into images [n][...] and results [n]: each
 * row gets the very bytes mv_visualize gives it in the whole batch, so that processes can
 * share a batch and put the rows back together. Every random draw of the other rows is made or
 * skipped in order (cheap beside the passes). With config->diversity the rows of one target
 * are coupled: a subset must hold all of them or none. on_frame and on_scores see the n rows
 * computed here, in this order. */
mv_status mv_visualize_rows(const mv_model *model, const mv_viz_config *config,
                            const int *targets, int n_all, const int *rows, int n,
                            const float *init_image, float *images, mv_viz_result *results);

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
    float dropout;         /* > 0: the loss is checked through fixed dropout masks */
    const float *weights;  /* NULL: random; else a given network's parameters, in mv_params
                              order [mv_arch_param_count(&arch)] (borrowed): checks that model */
    const float *inputs;   /* NULL: random in [-1, 1]; else [batch][widths[0]] network inputs
                              (normalised pixels, mv_model_prepare_input; borrowed) */
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

/* The finite-difference step used when config->step is 0: 1e-3 in double, 1e-2 in float. */
double mv_gradcheck_default_step(mv_precision precision);

/* Index of a tensor whose analytic gradient is all zero over the whole tensor, or -1.
 * A check that passes on zeros proves nothing. */
int mv_gradcheck_zero_tensor(const mv_gradcheck_report *report);

/* ---------------------------------------------------------------- several processes (MPI) */

/* A run under mpirun of a binary built with `make MPI=1` is one job of several processes,
 * ranks 0 .. size-1, each running the same command. Without MPI (the default build), or run
 * without mpirun, the job is this process alone, rank 0 of 1, and every call below is a local
 * copy. The collective calls (all but rank, size and mpi) must be made by every rank, in the
 * same order, from the thread that called mv_dist_init. A failed collective is MV_ERR_IO. */

/* Joins the job (MPI_Init_thread, funneled); call once, before any other mv_dist_ call. */
mv_status mv_dist_init(int *argc, char ***argv);
/* Leaves the job (MPI_Finalize); nothing after it. */
void mv_dist_finish(void);
/* This process's rank, and the number of processes in the job. */
int mv_dist_rank(void);
int mv_dist_size(void);
/* The processes of the job on this machine (this one included). */
int mv_dist_local_size(void);
/* 1 in an MPI build, 0 otherwise. */
int mv_dist_mpi(void);
/* all [size][bytes] receives every rank's `bytes` bytes of mine, in rank order. */
mv_status mv_dist_allgather(const void *mine, size_t bytes, void *all);
/* counts[r]: the bytes rank r gives (the same array on every rank); all receives them end to
 * end, in rank order. */
mv_status mv_dist_allgatherv(const void *mine, const size_t *counts, void *all);
/* Copies root's `bytes` bytes of data to every rank. */
mv_status mv_dist_broadcast(void *data, size_t bytes, int root);
/* Every rank says how its part went (mine: its status; on failure mv_last_error() holds the
 * reason). Returns the lowest rank that failed, or -1 when none did; on every rank that
 * failure then becomes the last error, as "rank R: reason", so that any rank can report it.
 * A collective that itself fails counts as a failure of this rank. */
int mv_dist_agree(mv_status mine);
/* mv_dist_agree with this rank's reason given (a caller's own message rather than the
 * library's last error; NULL: mv_last_error()). */
int mv_dist_agree_reason(mv_status mine, const char *reason);

#ifdef __cplusplus
}
#endif
#endif /* MLPVIZ_H */
