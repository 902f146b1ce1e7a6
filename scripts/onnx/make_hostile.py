#!/usr/bin/python3
"""Make the damaged and hostile ONNX files of tests/fixtures/onnx/hostile/ (issue 13) with
this machine's onnx (python3-onnx 1.12, helper API; no PyTorch) and write their MANIFEST.

Usage (from the repository root; under a second):
  /usr/bin/python3 scripts/onnx/make_hostile.py [--out tests/fixtures/onnx/hostile]
  python3 scripts/onnx/make_hostile.py --big DIR     (standard library only)
      the two files too big to commit, made at test time by tests/cli_onnx_hostile.sh:
      DIR/many-empty-nodes.onnx (2,000,000 empty nodes: 4 MB that unpack to far more than
      the reader's memory budget), DIR/nested-deep.onnx (attribute subgraphs nested 2000
      deep; the walk must refuse it before protobuf-c recurses) and
      DIR/sidecar-many-members.onnx with a 2.6 MB sidecar object of 200,000 members (the
      JSON reader's duplicate check is quadratic: refused, not run for minutes)

Deterministic: the same bytes every run (no randomness; weights are a fixed pattern).
Every file but valid-*.onnx (the unbroken model, REASON "LOADS") is refused by mlpviz;
MANIFEST has one line per case,
  FILE|REASON|HINTS
REASON: words the one-line message must contain (besides the file's path); HINTS "hints"
when the file says nothing of mean, std and classes, so that the command gets
--mean 0 --std 1 --classes (3 names) and the error reported is the graph's, else "-".
Most cases start from one valid model (Flatten, Gemm, Relu, Gemm, Softmax on a 1x4x4 input,
3 classes, metadata_props complete) and break one thing; the truncations cut a committed
PyTorch fixture. Cases that need files beside the model (external data, a sidecar) come with
them.
"""
import argparse
import os
import struct
import sys

try:
    from onnx import ModelProto, TensorProto, helper
except ImportError:  # --big needs only the standard library (it starts from valid-base.onnx)
    ModelProto = TensorProto = helper = None

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")

PROPS = {"mlpviz.input_shape": "1x4x4", "mlpviz.mean": "0.5", "mlpviz.std": "0.25",
         "mlpviz.classes": '["a", "b", "c"]'}


def pattern(n, salt):
    """n fixed float weights in [-0.5, 0.5)."""
    return [((i * 37 + salt * 11) % 17 - 8) / 16.0 for i in range(n)]


def raw(values):
    return struct.pack("<%df" % len(values), *values)


def weight(name, dims, salt, **kw):
    n = 1
    for d in dims:
        n *= d
    t = helper.make_tensor(name, TensorProto.FLOAT, dims, raw(pattern(n, salt)), raw=True)
    for k, v in kw.items():
        setattr(t, k, v)
    return t


def bare(name, elem, dims, raw_data=None, floats=None, ints=None):
    """A tensor as given (helper.make_tensor checks the sizes this file gets wrong)."""
    t = TensorProto(name=name, data_type=elem, dims=dims)
    if raw_data is not None:
        t.raw_data = raw_data
    if floats is not None:
        t.float_data.extend(floats)
    if ints is not None:
        t.int32_data.extend(ints)
    return t


def base_inits():
    return [weight("W1", [5, 16], 1), weight("b1", [5], 2), weight("W2", [3, 5], 3),
            weight("b2", [3], 4)]


def base_nodes(opset=17):
    axis = -1 if opset >= 13 else 1
    return [helper.make_node("Flatten", ["input"], ["flat"], name="flatten", axis=1),
            helper.make_node("Gemm", ["flat", "W1", "b1"], ["h1"], name="fc1", transB=1),
            helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
            helper.make_node("Gemm", ["a1", "W2", "b2"], ["z"], name="fc2", transB=1),
            helper.make_node("Softmax", ["z"], ["probs"], name="softmax", axis=axis)]


def image_input(name="input", dims=("N", 1, 4, 4)):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))


def model(nodes=None, inits=None, inputs=None, outputs=None, opset=17, props=PROPS):
    """The valid base model, with any part replaced."""
    graph = helper.make_graph(
        base_nodes(opset) if nodes is None else nodes, "mlp",
        [image_input()] if inputs is None else inputs,
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N", 3])
         for o in (["probs"] if outputs is None else outputs)],
        base_inits() if inits is None else inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="make_hostile.py")
    m.ir_version = 8
    helper.set_model_props(m, props or {})
    return m.SerializeToString()


def replace(items, name, new):
    return [new if getattr(i, "name", None) == name else i for i in items]


def with_init(name, tensor):
    return model(inits=replace(base_inits(), name, tensor))


def cases():
    """(file, bytes or None, reason, hints, {side file: bytes})."""
    out = []

    def add(name, data, reason, hints="-", side=None):
        out.append((name, data, reason, hints, side or {}))

    # -- the base model itself, which loads: the cases below each break one thing in it
    add("valid-base.onnx", model(), "LOADS")
    add("valid-base-nometa.onnx", model(props={}), "LOADS", "hints")
    # mlpviz.classes twice: loads with the last list (once leaked the first)
    m_twice = ModelProto.FromString(model())
    e = m_twice.metadata_props.add()
    e.key, e.value = "mlpviz.classes", '["x", "y", "z"]'
    add("valid-classes-twice.onnx", m_twice.SerializeToString(), "LOADS")

    # -- truncated: a committed PyTorch fixture cut at several points
    good = open(os.path.join(ROOT, "tests/fixtures/onnx/gemm-relu-softmax.onnx"), "rb").read()
    for cut in (1, 2, 40, len(good) // 3, len(good) // 2, len(good) - 200, len(good) - 1):
        # cut 2 leaves a whole ModelProto: ir_version and nothing else
        add("truncated-%d.onnx" % cut, good[:cut],
            "has no graph" if cut == 2 else "truncated or damaged")

    # -- absurd dims
    t = bare("W1", TensorProto.FLOAT, [2 ** 40, 2 ** 40], b"")
    add("dims-2pow40.onnx", with_init("W1", t), "dimension 0 is 1099511627776")
    t = bare("W1", TensorProto.FLOAT, [-5, 16], b"")
    add("dims-negative.onnx", with_init("W1", t), "dimension 0 is -5")
    # 2^30 elements is within the per-tensor limit: refused for its 0 bytes of data, and
    # (under the test's ulimit -v) without first allocating 4 GiB for the values
    t = bare("W1", TensorProto.FLOAT, [2 ** 15, 2 ** 15], b"")
    add("dims-2pow30-no-data.onnx", with_init("W1", t), "raw_data holds 0 bytes")
    t = bare("W1", TensorProto.FLOAT, [2 ** 15, 2 ** 15], floats=[])
    add("dims-2pow30-no-floats.onnx", with_init("W1", t), "different number of values")
    add("input-dims-2pow40.onnx",
        model(inputs=[image_input(dims=("N", 1, 2 ** 40, 2 ** 40))]), "features per image")
    add("tensor-9-dims.onnx", with_init("b1", weight("b1", [5, 1, 1, 1, 1, 1, 1, 1, 1], 2)),
        "9 dimensions")

    # an activation straight on a 1x256x256 input needs a 65536 x 65536 identity layer in
    # front (16 GiB): refused for its size, not attempted
    add("identity-65536.onnx", model(
        nodes=[helper.make_node("Relu", ["input"], ["probs"], name="relu0")], inits=[],
        inputs=[image_input(dims=("N", 1, 256, 256))],
        props=dict(PROPS, **{"mlpviz.input_shape": "1x256x256"})),
        "identity layer of 65536 features")

    # -- cycles
    nodes = base_nodes()
    nodes[2] = helper.make_node("Relu", ["a1"], ["a1"], name="relu1")
    add("cycle-self.onnx", model(nodes=nodes), "cycle")
    nodes = base_nodes()
    nodes[1:3] = [helper.make_node("Gemm", ["a1", "W1", "b1"], ["h1"], name="fc1", transB=1),
                  helper.make_node("Relu", ["h1"], ["a1"], name="relu1")]
    add("cycle-pair.onnx", model(nodes=nodes), "cycle")

    # -- wrong tensor sizes
    add("raw-short.onnx", with_init("W1", bare(
        "W1", TensorProto.FLOAT, [5, 16], raw(pattern(79, 1)))),
        "raw_data holds 316 bytes, its shape needs 320")
    add("raw-long.onnx", with_init("W1", bare(
        "W1", TensorProto.FLOAT, [5, 16], raw(pattern(81, 1)))),
        "raw_data holds 324 bytes, its shape needs 320")
    add("floatdata-count.onnx", with_init("b1", bare(
        "b1", TensorProto.FLOAT, [5], floats=pattern(4, 2))), "different number of values")
    add("weight-wrong-shape.onnx", with_init("W1", weight("W1", [5, 15], 1)),
        "matches the input's features")
    add("weight-int32.onnx", with_init("W1", bare(
        "W1", TensorProto.INT32, [5, 16], ints=[1] * 80)), "data type 6")

    def external(location, length=None, data_bytes=320, props=None):
        t = bare("W1", TensorProto.FLOAT, [5, 16])
        t.data_location = TensorProto.EXTERNAL
        entries = [("location", location), ("offset", "0")]
        if length is not None:
            entries.append(("length", str(length)))
        for k, v in entries:
            e = t.external_data.add()
            e.key, e.value = k, v
        return with_init("W1", t), raw(pattern(80, 1))[:data_bytes]

    data, payload = external("ext-length.data", length=300)
    add("ext-length.onnx", data, "external length 300, its shape needs 320 bytes",
        side={"ext-length.data": payload})
    data, payload = external("ext-short.data")
    add("ext-short.onnx", data, "holding 320 bytes", side={"ext-short.data": payload[:200]})
    data, payload = external("ext-huge.data")
    t = bare("W1", TensorProto.FLOAT, [2 ** 15, 2 ** 15])
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", "ext-huge.data"
    add("ext-huge.onnx", with_init("W1", t), "holding 4294967296 bytes",
        side={"ext-huge.data": payload})
    data, _ = external("../../etc/passwd")
    add("ext-dotdot.onnx", data, "bad external data entry")
    data, _ = external("/etc/passwd")
    add("ext-absolute.onnx", data, "bad external data entry")
    data, _ = external("ext-missing.data")
    add("ext-missing.onnx", data, "cannot open its external data")

    # -- unsupported ops
    nodes = base_nodes()
    nodes[0] = helper.make_node("Conv", ["input", "K"], ["conv"], name="conv0")
    nodes.insert(1, helper.make_node("Flatten", ["conv"], ["flat"], name="flatten", axis=1))
    add("op-conv.onnx", model(nodes=nodes, inits=base_inits() + [weight("K", [1, 1, 3, 3], 5)]),
        "node 'conv0' (Conv): is not supported")
    nodes = base_nodes()
    nodes[3:3] = [helper.make_node("Gemm", ["a1", "W3", "b3"], ["h2"], name="fc2a", transB=1),
                  helper.make_node("Add", ["h2", "a1"], ["r"], name="residual")]
    nodes[5] = helper.make_node("Gemm", ["r", "W2", "b2"], ["z"], name="fc2", transB=1)
    add("op-residual-add.onnx", model(nodes=nodes, inits=base_inits() + [
        weight("W3", [5, 5], 6), weight("b3", [5], 7)]), "adds two computed values")
    nodes = [helper.make_node("Softmax", ["input"], ["probs"], name="softmax", axis=-1)]
    add("op-softmax-partial.onnx", model(nodes=nodes, inits=[]), "part of the features")
    nodes = base_nodes()
    nodes[1] = helper.make_node("Gemm", ["flat", "W1", "b1"], ["h1"], name="fc1", transA=1)
    add("op-gemm-transA.onnx", model(nodes=nodes), "transA=1")
    nodes = base_nodes()
    nodes[2] = helper.make_node("Relu", ["h1"], ["a1"], name="relu1", domain="com.example")
    add("op-foreign-domain.onnx", model(nodes=nodes), "domain 'com.example'")
    add("op-conv-nometa.onnx", model(nodes=[
        helper.make_node("Conv", ["input", "K"], ["probs"], name="conv0")],
        inits=[weight("K", [3, 1, 4, 4], 5)], props={}), "(Conv): is not supported", "hints")

    # -- text from the file in the message: a line break or a terminal escape must not
    # reach the terminal (the message stays one printable line)
    nodes = base_nodes()
    nodes[2] = helper.make_node("Conv\nsecond line", ["h1"], ["a1"],
                                name="relu\x1b[31mred\nline2")
    add("names-control-chars.onnx", model(nodes=nodes),
        "node 'relu?[31mred?line2' (Conv?second line): is not supported")
    add("meta-input-shape-newline.onnx", model(props=dict(PROPS, **{
        "mlpviz.input_shape": "1x4\nx4"})), "input_shape '1x4?x4' is not CxHxW")

    # -- graph shape
    add("opset-8.onnx", model(opset=8), "opset 8")
    add("opset-22.onnx", model(opset=22), "opset 22")
    add("two-inputs.onnx", model(inputs=[image_input(), image_input("mask")]),
        "more than one input")
    add("no-input.onnx", model(inputs=[]), "no input")
    m = helper.make_model(helper.make_graph([], "g", [], []),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ClearField("graph")
    add("no-graph.onnx", m.SerializeToString(), "has no graph")
    nodes = base_nodes()
    nodes[2] = helper.make_node("Relu", ["h1"], ["h1"], name="relu1")
    add("duplicate-output.onnx", model(nodes=nodes), "defined twice")
    add("output-not-end.onnx", model(outputs=["a1"]), "not the end of the chain")
    add("two-outputs.onnx", model(outputs=["probs", "z"]), "2 outputs")
    nodes = base_nodes() + [helper.make_node("Relu", ["probs"], ["after"], name="late")]
    add("after-softmax.onnx", model(nodes=nodes, outputs=["after"]), "after the final")
    w = weight("W1", [5, 16], 1)
    w.raw_data = raw([float("nan")] + pattern(79, 1))
    add("weight-nan.onnx", with_init("W1", w), "finite")
    # 5000 empty nodes: 10 KB, refused for their number (the budget case is --big)
    add("nodes-5000.onnx", model(nodes=[helper.make_node("", [], []) for _ in range(5000)]),
        "5000 nodes")
    add("nested-30.onnx", nested(30), "nested more than 24")
    add("nested-5.onnx", nested(5), "(If): is not supported")

    # -- metadata
    def props(**kw):
        p = dict(PROPS)
        p.update({"mlpviz." + k: v for k, v in kw.items()})
        return model(props=p)

    add("meta-input-shape.onnx", props(input_shape="28x28"), "input_shape '28x28' is not CxHxW")
    add("meta-input-shape-5ch.onnx", props(input_shape="5x4x4"), "is not CxHxW")
    add("meta-classes-object.onnx", props(classes='{"a": 1}'), "must be a JSON array")
    add("meta-classes-badjson.onnx", props(classes='["a", "b",]'), "mlpviz.classes")
    add("meta-classes-count.onnx", props(classes='["a", "b"]'),
        "2 class names given for a network of 3 outputs")
    add("meta-classes-empty-name.onnx", props(classes='["a", "", "c"]'), "class 1")
    add("meta-mean-count.onnx", props(mean="0.1,0.2"), "2 mean and 1 std values for 1 channels")
    add("meta-std-text.onnx", props(std="wide"), "std 'wide' is not")
    add("meta-head.onnx", props(head="softmax-please"), "head")
    add("sidecar-badjson.onnx", model(props={}), "line 2", side={
        "sidecar-badjson.onnx.json": b'{"mean": 0.5, "std": 0.25,\n "classes": ["a", "b", "c"],}\n'})
    add("sidecar-array.onnx", model(props={}), "not a JSON object", side={
        "sidecar-array.onnx.json": b'["a", "b", "c"]\n'})
    add("sidecar-classes-count.onnx", model(props={}), "4 class names given", side={
        "sidecar-classes-count.onnx.json":
            b'{"mean": 0.5, "std": 0.25, "classes": ["a", "b", "c", "d"]}\n'})
    add("sidecar-mean-kind.onnx", model(props={}), "wrong kind", side={
        "sidecar-mean-kind.onnx.json": b'{"mean": {"r": 0.5}, "std": 0.25, "classes": ["a"]}\n'})
    return out


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def nested(levels, base=None):
    """A valid base model whose graph gets one extra node, an If-like node with an attribute
    subgraph holding a node with an attribute subgraph ... `levels` graphs deep (by hand:
    GraphProto.node = 1, NodeProto.attribute = 5, AttributeProto.g = 6)."""
    g = b""
    for _ in range(levels):
        attr = field(1, b"body") + varint(20 << 3) + varint(5) + field(6, g)  # type = GRAPH
        g = field(1, field(2, b"y") + field(4, b"If") + field(5, attr))
    # ModelProto.graph is field 7: append the extra node to the graph as a second graph field
    # (protobuf merges a message field that appears twice), so the base stays unchanged in
    # front.
    return (base or model()) + field(7, g)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def big(out):
    os.makedirs(out, exist_ok=True)
    base = open(os.path.join(ROOT, "tests/fixtures/onnx/hostile/valid-base.onnx"), "rb").read()
    empty_node = field(1, b"")
    write(os.path.join(out, "many-empty-nodes.onnx"), base + field(7, empty_node * 2000000))
    write(os.path.join(out, "nested-deep.onnx"), nested(2000, base))
    nometa = open(os.path.join(ROOT, "tests/fixtures/onnx/hostile/valid-base-nometa.onnx"),
                  "rb").read()
    write(os.path.join(out, "sidecar-many-members.onnx"), nometa)
    members = ",".join('"k%d": 0' % i for i in range(200000))
    write(os.path.join(out, "sidecar-many-members.onnx.json"),
          ('{%s, "mean": 0, "std": 1, "classes": ["a", "b", "c"]}\n' % members).encode())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/onnx/hostile"))
    ap.add_argument("--big", metavar="DIR")
    args = ap.parse_args()
    if args.big:
        big(args.big)
        return
    os.makedirs(args.out, exist_ok=True)
    lines = ["# FILE|REASON|HINTS  (made by scripts/onnx/make_hostile.py; every file is refused "
             "with one line naming it and containing REASON, or loads for LOADS; HINTS 'hints': "
             "run with --mean 0 --std 1 --classes of 3 names)"]
    total = 0
    for name, data, reason, hints, side in cases():
        write(os.path.join(args.out, name), data)
        total += len(data)
        for s, payload in side.items():
            write(os.path.join(args.out, s), payload)
            total += len(payload)
        lines.append("%s|%s|%s" % (name, reason, hints))
    write(os.path.join(args.out, "MANIFEST"), ("\n".join(lines) + "\n").encode())
    print("%d cases, %d bytes" % (len(lines) - 1, total), file=sys.stderr)


if __name__ == "__main__":
    main()
