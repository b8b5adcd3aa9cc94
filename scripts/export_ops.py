"""How each PyTorch operation becomes a salpipe model node (docs/model-format.md).

Used by scripts/export_torchvision.py: _describe() turns a torch.nn module into
(kind, attributes, datasets), _describe_call() does the same for a torch.fx
call_function / call_method node (relu, cat, +, flatten, pooling, dropout). Anything
the format cannot express raises ExportError with the operation and its place.
"""
import operator

SUPPORTED = ("modules Conv2d, BatchNorm2d, ReLU, MaxPool2d, AvgPool2d, "
             "AdaptiveAvgPool2d, Flatten, Dropout, Linear, Identity; functions relu, "
             "torch.cat (dim 1), + / torch.add, torch.flatten(x, 1), max_pool2d, "
             "avg_pool2d, adaptive_avg_pool2d, dropout (eval)")


class ExportError(Exception):
    """A network or argument this exporter cannot write; the message says why."""


def _pair(v, what):
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    try:
        v = tuple(v)
    except TypeError:
        raise ExportError(f"{what} must be an int or a pair of ints, got {v!r}") from None
    if len(v) == 1:
        v = v * 2
    if len(v) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        raise ExportError(f"{what} must be an int or a pair of ints, got {v!r}")
    return v



def _array(t, what):
    """A parameter or buffer as a float32/float64 numpy array (half is widened)."""
    import torch
    t = t.detach().cpu()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    if t.dtype not in (torch.float32, torch.float64):
        raise ExportError(f"{what} has dtype {t.dtype}, expected a floating-point tensor")
    return t.numpy()


def _pool_attrs(where, kernel_size, stride, padding, ceil_mode):
    k = _pair(kernel_size, f"{where}: kernel_size")
    s = _pair(stride if stride not in (None, (), []) else kernel_size, f"{where}: stride")
    p = _pair(padding, f"{where}: padding")
    if any(pi * 2 > ki for pi, ki in zip(p, k)):
        raise ExportError(f"{where}: padding {p} is more than half the kernel {k}")
    return {"kernel_size": k, "stride": s, "padding": p, "ceil_mode": int(bool(ceil_mode))}


def _describe(m, where):
    """(kind, int/float attributes, datasets) of one module, or ExportError."""
    import numpy as np
    import torch.nn as nn
    if isinstance(m, nn.Conv2d):
        if _pair(m.dilation, f"{where} dilation") != (1, 1):
            raise ExportError(f"{where}: Conv2d with dilation {m.dilation} is not "
                              "supported (only 1)")
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
            raise ExportError(f"{where}: MaxPool2d with dilation {m.dilation} is not "
                              "supported (only 1)")
        if m.return_indices:
            raise ExportError(f"{where}: MaxPool2d(return_indices=True) is not supported")
        return "maxpool2d", _pool_attrs(where, m.kernel_size, m.stride, m.padding,
                                        m.ceil_mode), {}
    if isinstance(m, nn.AvgPool2d):
        return _avgpool(where, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                        m.count_include_pad, m.divisor_override)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return _adaptive(where, m.output_size)
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


def _avgpool(where, kernel_size, stride, padding, ceil_mode, count_include_pad,
             divisor_override):
    if divisor_override is not None:
        raise ExportError(f"{where}: avg_pool2d with divisor_override="
                          f"{divisor_override} is not supported")
    attrs = _pool_attrs(where, kernel_size, stride, padding, ceil_mode)
    attrs["count_include_pad"] = int(bool(count_include_pad))
    return "avgpool2d", attrs, {}


def _adaptive(where, size):
    if isinstance(size, int):
        size = (size, size)
    if any(v is None for v in size):
        raise ExportError(f"{where}: adaptive_avg_pool2d with output_size {size} (None) "
                          "is not supported; give both sizes")
    return "adaptive_avgpool2d", {"output_size": _pair(tuple(size), "output_size")}, {}



def _function_ops():
    """target -> (op, parameter names, defaults, index of an argument it changes in
    place or None) for the functions the format expresses."""
    import torch
    import torch.nn.functional as F
    relu = ("relu", ("input", "inplace"), {"inplace": False}, None)
    add = ("add", ("input", "other", "alpha"), {"alpha": 1}, None)
    cat = ("cat", ("tensors", "dim"), {"dim": 0}, None)
    return {
        F.relu: relu, torch.relu: relu, torch.relu_: ("relu", ("input",), {}, 0),
        operator.add: add, torch.add: add, operator.iadd: add[:3] + (0,),
        torch.cat: cat, torch.concat: cat,
        torch.flatten: ("flatten", ("input", "start_dim", "end_dim"),
                        {"start_dim": 0, "end_dim": -1}, None),
        F.max_pool2d: ("maxpool", ("input", "kernel_size", "stride", "padding",
                                   "dilation", "ceil_mode", "return_indices"),
                       {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False,
                        "return_indices": False}, None),
        F.avg_pool2d: ("avgpool", ("input", "kernel_size", "stride", "padding",
                                   "ceil_mode", "count_include_pad", "divisor_override"),
                       {"stride": None, "padding": 0, "ceil_mode": False,
                        "count_include_pad": True, "divisor_override": None}, None),
        F.adaptive_avg_pool2d: ("adaptive_avgpool", ("input", "output_size"), {}, None),
        F.dropout: ("dropout", ("input", "p", "training", "inplace"),
                    {"p": 0.5, "training": True, "inplace": False}, None),
    }


_METHOD_OPS = {
    "relu": ("relu", ("input",), {}, None),
    "relu_": ("relu", ("input",), {}, 0),
    "add": ("add", ("input", "other", "alpha"), {"alpha": 1}, None),
    "add_": ("add", ("input", "other", "alpha"), {"alpha": 1}, 0),
    "flatten": ("flatten", ("input", "start_dim", "end_dim"),
                {"start_dim": 0, "end_dim": -1}, None),
}


def _label(n):
    """How an fx node's operation is called in messages: torch.sigmoid, Tensor.view,
    nn.Sigmoid."""
    from torch.fx.node import _get_qualified_name
    if n.op == "call_function":
        try:
            return _get_qualified_name(n.target)
        except Exception:
            return getattr(n.target, "__name__", repr(n.target))
    if n.op == "call_method":
        return f"Tensor.{n.target}"
    if n.op == "call_module":
        return f"module '{n.target}'"
    return f"{n.op} {n.target}"


def _where(n, root):
    """Where node n is, for messages: module scope (and class), fx node name."""
    scope = n.meta.get("salpipe_scope", "")
    if n.op == "call_module":
        scope = n.target
    if scope:
        try:
            cls = type(root.get_submodule(scope)).__name__
        except AttributeError:
            cls = "?"
        place = f"module '{scope}' ({cls})"
    else:
        place = f"the top level of {type(root).__name__}"
    return f"{place}, fx node '{n.name}'"


def _bind(spec, n, where):
    import torch.fx as fx
    op, params, defaults, _ = spec
    args = list(n.args)
    if n.op == "call_method":
        params = ("input",) + tuple(p for p in params if p != "input")
    if len(args) > len(params):
        raise ExportError(f"{where}: {_label(n)} with {len(args)} arguments is not supported")
    b = dict(zip(params, args))
    for k, v in n.kwargs.items():
        if k not in params or k in b:
            raise ExportError(f"{where}: {_label(n)}: argument '{k}' is not supported")
        b[k] = v
    for k, v in defaults.items():
        b.setdefault(k, v)
    missing = [p for p in params if p not in b]
    if missing:
        raise ExportError(f"{where}: {_label(n)} without {missing[0]}")
    for k, v in b.items():
        tensors = k in ("input", "other", "tensors")
        found = []
        fx.node.map_arg(v, found.append)
        if found and not tensors:
            raise ExportError(f"{where}: {_label(n)}: argument '{k}' is computed while "
                              "the network runs; the format needs a constant")
    return op, b


def _shape(n):
    tm = n.meta.get("tensor_meta") if n is not None else None
    return tuple(tm.shape) if tm is not None and hasattr(tm, "shape") else None


def _describe_call(n, where):
    """(op for the name, kind, attrs, data, tensor input nodes, mutated node or None)
    of one call_function / call_method node, or ExportError."""
    import torch.fx as fx
    ops = _function_ops()
    spec = ops.get(n.target) if n.op == "call_function" else _METHOD_OPS.get(n.target)
    if spec is None:
        raise ExportError(f"{where}: unsupported operation {_label(n)}; supported: "
                          f"{SUPPORTED}")
    op, b = _bind(spec, n, where)
    mutated = b["input"] if spec[3] == 0 else None
    if op == "relu":
        if b.get("inplace"):
            mutated = b["input"]
        return op, "relu", {}, {}, [b["input"]], mutated
    if op == "add":
        if not isinstance(b["other"], fx.Node) or not isinstance(b["input"], fx.Node):
            raise ExportError(f"{where}: {_label(n)} with a constant operand is not "
                              "supported (add takes two network values)")
        if b["alpha"] != 1:
            raise ExportError(f"{where}: {_label(n)} with alpha={b['alpha']} is not supported")
        a, c = _shape(b["input"]), _shape(b["other"])
        if a is not None and c is not None and a != c:
            raise ExportError(f"{where}: {_label(n)} of shapes {list(a)} and {list(c)}: "
                              "add needs identical shapes (no broadcasting)")
        return op, "add", {}, {}, [b["input"], b["other"]], mutated
    if op == "cat":
        ts = b["tensors"]
        if not isinstance(ts, (list, tuple)) or not all(isinstance(t, fx.Node) for t in ts) \
                or not 1 <= len(ts) <= 16:
            raise ExportError(f"{where}: {_label(n)} needs a list of 1 to 16 network values")
        dims = {len(s) for s in map(_shape, ts) if s is not None}
        if b["dim"] not in (1, -3) or (b["dim"] == -3 and dims - {4}):
            raise ExportError(f"{where}: {_label(n)} along dim {b['dim']} is not supported "
                              "(only channels, dim 1)")
        return op, "concat", {}, {}, list(ts), None
    if op == "flatten":
        s = _shape(b["input"])
        last = (-1,) if s is None else (-1, len(s) - 1)
        if b["start_dim"] != 1 or b["end_dim"] not in last:
            raise ExportError(f"{where}: {_label(n)}(start_dim={b['start_dim']}, "
                              f"end_dim={b['end_dim']}) is not supported (only 1, -1)")
        return op, "flatten", {}, {}, [b["input"]], None
    if op == "maxpool":
        if _pair(b["dilation"], f"{where}: dilation") != (1, 1) or b["return_indices"]:
            raise ExportError(f"{where}: {_label(n)} with dilation {b['dilation']} or "
                              "return_indices is not supported")
        attrs = _pool_attrs(where, b["kernel_size"], b["stride"], b["padding"],
                            b["ceil_mode"])
        return op, "maxpool2d", attrs, {}, [b["input"]], None
    if op == "avgpool":
        kind, attrs, data = _avgpool(where, b["kernel_size"], b["stride"], b["padding"],
                                     b["ceil_mode"], b["count_include_pad"],
                                     b["divisor_override"])
        return op, kind, attrs, data, [b["input"]], None
    if op == "adaptive_avgpool":
        kind, attrs, data = _adaptive(where, b["output_size"])
        return op, kind, attrs, data, [b["input"]], None
    assert op == "dropout"
    if b["training"]:
        raise ExportError(f"{where}: {_label(n)} with training=True drops values at "
                          "random; pass training=self.training and export in eval mode")
    return op, "dropout", {}, {}, [b["input"]], None


# DNNBrain's layer names (dnnbrain/dnn/models.py, layer2loc): alias -> module path.
