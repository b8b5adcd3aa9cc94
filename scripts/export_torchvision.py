#!/usr/bin/python3
"""Export a torchvision AlexNet or VGG to a salpipe model file (HDF5, format 1).

    python3 scripts/export_torchvision.py ARCH -o MODEL.h5 [--weights STATE_DICT.pth] [--seed N]

Without --weights the network is torch.manual_seed(N) followed by
torchvision.models.ARCH(), so a test can build the same network in PyTorch.

The writer, export_sequential(), walks any flat list of supported torch modules, so
other nn.Sequential-style networks can be exported from Python:

    from export_torchvision import export_sequential, IMAGENET_PREPROCESS
    export_sequential([net.features, net.pool, nn.Flatten(), net.head], "net.h5",
                      "mynet", IMAGENET_PREPROCESS)

The file layout is documented in docs/model-format.md.
"""
import argparse
import os
import sys

FORMAT_NAME = "salpipe-model"
FORMAT_VERSION = 1

ARCHS = ("alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn",
         "vgg19", "vgg19_bn")

# DNNBrain's test_transform for AlexNet/VGG; the constants are stored as float64.
IMAGENET_PREPROCESS = {
    "input_channels": 3,
    "input_size": (224, 224),
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
    "resize": "stretch",
    "resize_size": 256,
}

SUPPORTED = ("Conv2d, BatchNorm2d, ReLU, MaxPool2d, AdaptiveAvgPool2d, Flatten, "
             "Dropout, Linear (nested Sequential is expanded, Identity skipped)")


class ExportError(Exception):
    """A network or argument this exporter cannot write; the message says why."""


def _pair(v, what):
    if isinstance(v, int):
        return (v, v)
    v = tuple(v)
    if len(v) != 2 or not all(isinstance(x, int) for x in v):
        raise ExportError(f"{what} must be an int or a pair of ints, got {v!r}")
    return v


def _flat_modules(layers):
    """Expands nested nn.Sequential and drops nn.Identity, keeping order."""
    import torch.nn as nn
    out = []
    for m in layers:
        if isinstance(m, nn.Sequential):
            out.extend(_flat_modules(list(m)))
        elif not isinstance(m, nn.Identity):
            out.append(m)
    return out


def _array(t, what):
    """A parameter or buffer as a float32/float64 numpy array (half is widened)."""
    import torch
    t = t.detach().cpu()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    if t.dtype not in (torch.float32, torch.float64):
        raise ExportError(f"{what} has dtype {t.dtype}, expected a floating-point tensor")
    return t.numpy()


def _describe(m, where):
    """(kind, int/float attributes, datasets) of one module, or ExportError."""
    import numpy as np
    import torch.nn as nn
    if isinstance(m, nn.Conv2d):
        if _pair(m.dilation, f"{where} dilation") != (1, 1):
            raise ExportError(f"{where}: dilation {m.dilation} is not supported (only 1)")
        if m.padding_mode != "zeros":
            raise ExportError(f"{where}: padding_mode '{m.padding_mode}' is not supported "
                              "(only 'zeros')")
        padding = m.padding
        if isinstance(padding, str):
            if padding != "valid":
                raise ExportError(f"{where}: padding='{padding}' is not supported; give "
                                  "explicit padding")
            padding = 0
        w = _array(m.weight, f"{where}.weight")
        b = _array(m.bias, f"{where}.bias") if m.bias is not None else \
            np.zeros(m.out_channels, dtype=w.dtype)
        return "conv2d", {
            "in_channels": m.in_channels, "out_channels": m.out_channels,
            "kernel_size": _pair(m.kernel_size, "kernel_size"),
            "stride": _pair(m.stride, "stride"), "padding": _pair(padding, "padding"),
            "groups": m.groups,
        }, {"weight": w, "bias": b}
    if isinstance(m, nn.BatchNorm2d):
        if m.running_mean is None or m.running_var is None:
            raise ExportError(f"{where}: batch norm without running statistics "
                              "(track_running_stats=False) is not supported")
        mean = _array(m.running_mean, f"{where}.running_mean")
        var = _array(m.running_var, f"{where}.running_var")
        if m.affine:
            w, b = _array(m.weight, f"{where}.weight"), _array(m.bias, f"{where}.bias")
        else:
            w, b = np.ones_like(mean), np.zeros_like(mean)
        return "batchnorm2d", {"eps": float(m.eps)}, {
            "weight": w, "bias": b, "running_mean": mean, "running_var": var}
    if isinstance(m, nn.ReLU):
        return "relu", {}, {}
    if isinstance(m, nn.MaxPool2d):
        if _pair(m.dilation, f"{where} dilation") != (1, 1):
            raise ExportError(f"{where}: dilation {m.dilation} is not supported (only 1)")
        k = _pair(m.kernel_size, "kernel_size")
        s = _pair(m.stride if m.stride is not None else m.kernel_size, "stride")
        return "maxpool2d", {"kernel_size": k, "stride": s,
                             "padding": _pair(m.padding, "padding"),
                             "ceil_mode": int(bool(m.ceil_mode))}, {}
    if isinstance(m, nn.AdaptiveAvgPool2d):
        size = m.output_size
        if isinstance(size, int):
            size = (size, size)
        if any(v is None for v in size):
            raise ExportError(f"{where}: output_size {m.output_size} with None is not "
                              "supported; give both sizes")
        return "adaptive_avgpool2d", {"output_size": _pair(tuple(size), "output_size")}, {}
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise ExportError(f"{where}: Flatten(start_dim={m.start_dim}, "
                              f"end_dim={m.end_dim}) is not supported (only 1, -1)")
        return "flatten", {}, {}
    if isinstance(m, nn.Dropout):
        return "dropout", {}, {}
    if isinstance(m, nn.Linear):
        w = _array(m.weight, f"{where}.weight")
        b = _array(m.bias, f"{where}.bias") if m.bias is not None else \
            np.zeros(m.out_features, dtype=w.dtype)
        return "linear", {"in_features": m.in_features,
                          "out_features": m.out_features}, {"weight": w, "bias": b}
    raise ExportError(f"{where}: unsupported module {type(m).__name__} ({m!r}); "
                      f"supported: {SUPPORTED}")


def layer_names(kinds):
    """DNNBrain names for a sequence of layer kinds: conv1.., fc1.., and a batch norm,
    ReLU or max-pool named after the convolution or linear layer before it."""
    names, used = [], set()
    count = {}
    anchor = None

    def numbered(prefix):
        count[prefix] = count.get(prefix, 0) + 1
        return f"{prefix}{count[prefix]}"

    suffix = {"batchnorm2d": "_bn", "relu": "_relu", "maxpool2d": "_maxpool"}
    fallback = {"batchnorm2d": "bn", "relu": "relu", "maxpool2d": "maxpool"}
    for kind in kinds:
        if kind == "conv2d":
            name = anchor = numbered("conv")
        elif kind == "linear":
            name = anchor = numbered("fc")
        elif kind in suffix:
            name = anchor + suffix[kind] if anchor else numbered(fallback[kind])
        elif kind == "adaptive_avgpool2d":
            name = "avgpool"
        elif kind == "flatten":
            name = "flatten"
        else:
            name = numbered(kind)
        base, k = name, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        names.append(name)
    return names


def _check_preprocess(pre):
    c = int(pre["input_channels"])
    if c not in (1, 3):
        raise ExportError(f"input_channels must be 1 or 3, got {c}")
    for key in ("mean", "std"):
        if len(pre[key]) != c:
            raise ExportError(f"preprocess {key} needs {c} values, got {pre[key]!r}")
    if len(pre["input_size"]) != 2:
        raise ExportError(f"input_size must be (H, W), got {pre['input_size']!r}")
    if pre.get("resize", "stretch") not in ("stretch", "crop"):
        raise ExportError(f"resize must be 'stretch' or 'crop', got {pre['resize']!r}")


def export_sequential(layers, path, name, preprocess, extra_attrs=None):
    """Writes the modules in `layers` (applied in order to one image) to `path` as a
    salpipe model called `name`. preprocess: a dict like IMAGENET_PREPROCESS.
    extra_attrs: more root attributes (provenance), ignored by the loader.
    Raises ExportError for a module or setting the format cannot express; the file is
    written to a temporary name and renamed, so a failure leaves no partial file."""
    import h5py
    import numpy as np
    _check_preprocess(preprocess)
    mods = _flat_modules(layers)
    if not mods:
        raise ExportError("no layers to export")
    described = [_describe(m, f"layer {i} ({type(m).__name__})") for i, m in enumerate(mods)]
    names = layer_names([d[0] for d in described])

    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["format_version"] = np.int64(FORMAT_VERSION)
            f.attrs["name"] = name
            f.attrs["input_channels"] = np.int64(preprocess["input_channels"])
            f.attrs["input_size"] = np.asarray(preprocess["input_size"], dtype=np.int64)
            f.attrs["mean"] = np.asarray(preprocess["mean"], dtype=np.float64)
            f.attrs["std"] = np.asarray(preprocess["std"], dtype=np.float64)
            f.attrs["resize"] = preprocess.get("resize", "stretch")
            f.attrs["resize_size"] = np.int64(preprocess.get("resize_size", 256))
            for key, value in (extra_attrs or {}).items():
                f.attrs[key] = str(value) if isinstance(value, str) else value
            grp = f.create_group("layers")
            grp.attrs["count"] = np.int64(len(described))
            for i, ((kind, attrs, data), lname) in enumerate(zip(described, names)):
                g = grp.create_group(f"{i:03d}")
                g.attrs["kind"] = kind
                g.attrs["name"] = lname
                for key, value in attrs.items():
                    if isinstance(value, float):
                        g.attrs[key] = np.float64(value)
                    else:
                        g.attrs[key] = np.asarray(value, dtype=np.int64)
                for key, value in data.items():
                    g.create_dataset(key, data=value)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return names


def torchvision_layers(model):
    """The layer list of a torchvision AlexNet/VGG: its forward is features, avgpool,
    torch.flatten(x, 1), classifier."""
    import torch.nn as nn
    return [model.features, model.avgpool, nn.Flatten(), model.classifier]


def build_torchvision(arch, weights=None, seed=0):
    """torch.manual_seed(seed); torchvision.models.ARCH(); then the state dict from
    `weights` if given. Returns the model in eval mode."""
    import torch
    import torchvision
    if arch not in ARCHS:
        raise ExportError(f"unknown architecture '{arch}'; expected one of {', '.join(ARCHS)}")
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)()
    if weights is not None:
        try:
            try:
                state = torch.load(weights, map_location="cpu", weights_only=True)
            except TypeError:  # torch without weights_only
                state = torch.load(weights, map_location="cpu")
        except Exception as e:
            raise ExportError(f"{weights}: cannot read a state dict ({type(e).__name__}: "
                              f"{e}); expected a file saved with "
                              "torch.save(model.state_dict())") from e
        if not isinstance(state, dict):
            raise ExportError(f"{weights}: holds a {type(state).__name__}, expected a "
                              "state dict saved with torch.save(model.state_dict())")
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ExportError(f"{weights}: does not fit torchvision's {arch}: {e}") from e
    return model.eval()


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Export a torchvision AlexNet/VGG to a salpipe model file.")
    ap.add_argument("arch", metavar="ARCH", choices=ARCHS,
                    help="one of " + ", ".join(ARCHS))
    ap.add_argument("-o", "--output", required=True, metavar="MODEL.h5")
    ap.add_argument("--weights", metavar="STATE_DICT.pth",
                    help="file saved with torch.save(model.state_dict())")
    ap.add_argument("--seed", type=int, default=0,
                    help="torch.manual_seed before building the model (default 0)")
    args = ap.parse_args(argv)
    try:
        import torch
        import torchvision
        model = build_torchvision(args.arch, args.weights, args.seed)
        source = (f"weights {os.path.abspath(args.weights)}" if args.weights else
                  f"torch.manual_seed({args.seed}); torchvision.models.{args.arch}()")
        names = export_sequential(
            torchvision_layers(model), args.output, args.arch, IMAGENET_PREPROCESS,
            extra_attrs={"exporter": "salpipe scripts/export_torchvision.py",
                         "source": source, "torch_version": torch.__version__,
                         "torchvision_version": torchvision.__version__})
    except ExportError as e:
        print(f"export_torchvision.py: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"export_torchvision.py: error: cannot write {args.output}: {e}",
              file=sys.stderr)
        return 2
    print(f"{args.output}: {args.arch}, {len(names)} layers: {' '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
