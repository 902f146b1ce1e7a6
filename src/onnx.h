/* onnx.h: the ONNX reader's internal interface (docs/onnx.md). Three files share it:
 * onnx_read.c owns the bytes (protobuf, tensors, external data), onnx_graph.c turns a graph
 * into an MLP, onnx_meta.c finds the input shape, scaling and class names. Only these
 * include the protoc-c output, which the build generates from Debian's onnx.proto. */
#ifndef MV_ONNX_H
#define MV_ONNX_H

#include <stdint.h>

#include "mlpviz.h"
#include "onnx.pb-c.h"

#define MV_ONNX_MAX_DIMS 8

/* An ONNX file, unpacked. The model tree belongs to this struct (mv_onnx_close). */
typedef struct {
    const char *path;            /* borrowed, for messages */
    Onnx__ModelProto *model;
    ProtobufCAllocator allocator; /* the budgeted allocator that unpacked `model` */
    uint64_t size;               /* bytes of the file */
    uint32_t crc;                /* CRC-32 of the file's bytes */
    int opset;                   /* of the default domain */
} mv_onnx_file;

/* A tensor's values as float (FLOAT or DOUBLE tensors) or int64 (INT64 tensors). */
typedef struct {
    int ndim;
    int64_t dims[MV_ONNX_MAX_DIMS];
    size_t count;                /* product of dims (1 for a scalar) */
    float *values;               /* [count], owned, or NULL for an int64 tensor */
    int64_t *ints;               /* [count], owned, or NULL for a float tensor */
} mv_onnx_tensor;

/* Unpacks an ONNX file already read into data[0..size): nesting depth and memory bounded,
 * opset of the default domain checked (9 to 21). Fails with the path in the message. */
mv_status mv_onnx_open(mv_onnx_file *f, const char *path, const uint8_t *data, size_t size);
void mv_onnx_close(mv_onnx_file *f);

/* The values of a tensor (initializer, Constant attribute), from raw_data, the typed fields
 * or an external data file next to the model; checks that the sizes agree. `what` names the
 * tensor in messages. out->values / out->ints belong to the caller (mv_onnx_tensor_free). */
mv_status mv_onnx_tensor_values(const mv_onnx_file *f, const Onnx__TensorProto *t,
                                mv_onnx_tensor *out);
void mv_onnx_tensor_free(mv_onnx_tensor *t);

/* Turns the graph into the network of *out (layers, activations, head) with the input
 * shape of `shape` ({C, H, W}; channel order chw when chw is 1, else hwc). The caller fills
 * in normalisation and class names. *out belongs to the caller (mv_model_free). */
mv_status mv_onnx_build_network(const mv_onnx_file *f, const int shape[3], int chw,
                                const char *head_name, mv_model **out);

/* The graph's one image input: its name and its declared shape without the batch dimension
 * (dims[i] = 0 when symbolic or absent); *ndim = -1 when the graph declares no shape. */
mv_status mv_onnx_graph_input(const mv_onnx_file *f, const char **name, int *ndim,
                              int64_t dims[MV_ONNX_MAX_DIMS]);

#endif
