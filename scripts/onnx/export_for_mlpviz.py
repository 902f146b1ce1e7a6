#!/usr/bin/python3
"""Export a PyTorch image classifier to ONNX with the metadata mlpviz reads.

As a library:
    import sys; sys.path.insert(0, "scripts/onnx")
    from export_for_mlpviz import export_for_mlpviz
    export_for_mlpviz(model, "model.onnx", input_shape=(1, 28, 28),
                      mean=[0.2860], std=[0.3530],
                      classes=["T-shirt/top", "Trouser", ...])

As a command, on a whole pickled module (torch.save(model, PATH)):
    /usr/bin/python3 scripts/onnx/export_for_mlpviz.py MODEL.pt OUT.onnx \
        --input-shape 1x28x28 --mean 0.2860 --std 0.3530 \
        --classes-file models/fashion-mnist.classes [--pixel-scale 1] \
        [--channel-order chw] [--opset 17]

The graph input is x = (pixel * pixel_scale - mean) / std, per channel, shaped
[N, C, H, W] ("chw") or [N, H, W, C] ("hwc"); the batch axis is dynamic. The
metadata_props written (docs/onnx.md):
    mlpviz.input_shape    "CxHxW"
    mlpviz.channel_order  "chw" | "hwc"
    mlpviz.pixel_scale    "1" | "255"
    mlpviz.mean           comma-separated, one per channel
    mlpviz.std            comma-separated, one per channel
    mlpviz.classes        JSON array of strings
"""
import argparse
import json

import onnx
import torch


def mlpviz_metadata(input_shape, mean, std, classes, pixel_scale=1, channel_order="chw"):
    """The mlpviz.* metadata as a dict of strings."""
    c, h, w = (int(v) for v in input_shape)
    if channel_order not in ("chw", "hwc"):
        raise ValueError("channel_order must be 'chw' or 'hwc'")
    if int(pixel_scale) not in (1, 255) or pixel_scale != int(pixel_scale):
        raise ValueError("pixel_scale must be 1 or 255")
    mean, std = [float(v) for v in mean], [float(v) for v in std]
    if len(mean) != c or len(std) != c:
        raise ValueError(f"mean and std need {c} values (one per channel)")
    return {
        "mlpviz.input_shape": f"{c}x{h}x{w}",
        "mlpviz.channel_order": channel_order,
        "mlpviz.pixel_scale": str(int(pixel_scale)),
        "mlpviz.mean": ",".join(repr(v) for v in mean),
        "mlpviz.std": ",".join(repr(v) for v in std),
        "mlpviz.classes": json.dumps(list(classes), ensure_ascii=False),
    }


def sidecar_json(input_shape, mean, std, classes, pixel_scale=1, channel_order="chw"):
    """The same metadata as the text of a MODEL.onnx.json sidecar."""
    meta = mlpviz_metadata(input_shape, mean, std, classes, pixel_scale, channel_order)
    return json.dumps({
        "input_shape": meta["mlpviz.input_shape"],
        "channel_order": channel_order,
        "pixel_scale": int(pixel_scale),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "classes": list(classes),
    }, ensure_ascii=False, indent=1) + "\n"


def add_metadata(model_proto, props):
    """Set metadata_props entries (replacing any with the same key)."""
    keep = {p.key: p.value for p in model_proto.metadata_props if p.key not in props}
    keep.update(props)
    onnx.helper.set_model_props(model_proto, keep)
    return model_proto


def export_for_mlpviz(model, path, input_shape, mean, std, classes, pixel_scale=1,
                      channel_order="chw", opset=17, **export_kwargs):
    """torch.onnx.export with a [1,C,H,W] (or [1,H,W,C]) dummy input and a dynamic
    batch axis, then the mlpviz.* metadata_props, then onnx.checker. Extra
    keyword arguments go to torch.onnx.export (e.g. do_constant_folding)."""
    props = mlpviz_metadata(input_shape, mean, std, classes, pixel_scale, channel_order)
    c, h, w = (int(v) for v in input_shape)
    dummy = torch.zeros(1, c, h, w) if channel_order == "chw" else torch.zeros(1, h, w, c)
    model.eval()
    torch.onnx.export(model, dummy, path, opset_version=opset,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                      **export_kwargs)
    proto = add_metadata(onnx.load(path), props)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)
    return proto


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a whole module saved with torch.save(model, PATH)")
    ap.add_argument("out")
    ap.add_argument("--input-shape", required=True, help="CxHxW, e.g. 1x28x28")
    ap.add_argument("--mean", required=True, help="comma-separated, one per channel")
    ap.add_argument("--std", required=True, help="comma-separated, one per channel")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--classes", help="comma-separated class names")
    g.add_argument("--classes-file", help="one class name a line")
    ap.add_argument("--pixel-scale", type=int, default=1, choices=(1, 255))
    ap.add_argument("--channel-order", default="chw", choices=("chw", "hwc"))
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args()
    if args.classes_file:
        with open(args.classes_file, encoding="utf-8") as f:
            classes = [line.rstrip("\n") for line in f if line.strip()]
    else:
        classes = args.classes.split(",")
    model = torch.load(args.model)
    export_for_mlpviz(model, args.out, [int(v) for v in args.input_shape.split("x")],
                      [float(v) for v in args.mean.split(",")],
                      [float(v) for v in args.std.split(",")], classes,
                      args.pixel_scale, args.channel_order, args.opset)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
