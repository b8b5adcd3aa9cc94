#!/usr/bin/python3
"""Export a torchvision network to a salpipe model file (HDF5, format 2).

    python3 scripts/export_torchvision.py ARCH -o MODEL.h5 [--weights STATE_DICT.pth]
                                          [--seed N] [--transform-input on|off]

ARCH: alexnet, vgg11..vgg19(_bn), googlenet, inception_v3, resnet18..resnet152.
Without --weights the network is torch.manual_seed(N) followed by
torchvision.models.ARCH(...), so a test can build the same network in PyTorch.

The network is traced with torch.fx; every module call and supported function call
(relu, cat, +, flatten, max/avg pooling, dropout) becomes one node of the file, named
after the module scope it happens in (docs/model-format.md, "Node names"). Any
torchvision-style network built from the supported operations exports from Python:

    from export_torchvision import export_model, IMAGENET_PREPROCESS
    export_model(net, "net.h5", "mynet", IMAGENET_PREPROCESS)

API (helper scripts and tests use it): build_torchvision(), trace_network(),
export_model(), and the older export_sequential() for a flat list of modules.
"""
import argparse
import os
import re
import sys

# export_ops.py lies next to this file (also when imported by path).
if os.path.dirname(os.path.abspath(__file__)) not in sys.path:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_ops import (SUPPORTED, ExportError, _describe, _describe_call,  # noqa: E402
                        _label, _shape, _where)

FORMAT_NAME = "salpipe-model"
FORMAT_VERSION = 2

CHAIN_ARCHS = ("alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn",
               "vgg19", "vgg19_bn")
GRAPH_ARCHS = ("googlenet", "inception_v3", "resnet18", "resnet34", "resnet50",
               "resnet101", "resnet152")
ARCHS = CHAIN_ARCHS + GRAPH_ARCHS
TRANSFORM_INPUT_ARCHS = ("googlenet", "inception_v3")

# DNNBrain's test_transform for AlexNet/VGG/GoogLeNet/ResNet: Resize((224, 224)),
# ToTensor, Normalize; the constants are stored as float64.
IMAGENET_PREPROCESS = {
    "input_channels": 3,
    "input_size": (224, 224),
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
    "resize": "stretch",
    "resize_size": 256,
}
# DNNBrain's InceptionV3: Resize((299, 299)). resize_size is what torchvision's own
# eval transform would use with resize = "crop" (342, then a 299 center crop).
INCEPTION_PREPROCESS = dict(IMAGENET_PREPROCESS, input_size=(299, 299), resize_size=342)

# torchvision's _transform_input (GoogLeNet, Inception-v3): channel c becomes
# x * (STD[c] / 0.5) + (MEAN[c] - 0.5) / 0.5, undoing ImageNet normalization and
# applying the (x - 0.5) / 0.5 one the original Google weights expect.
_TI_MEAN = (0.485, 0.456, 0.406)
_TI_STD = (0.229, 0.224, 0.225)

# The prefix of the final linear layer in a torchvision state dict, per architecture.
_FINAL_LINEAR = dict({a: "classifier.6" for a in CHAIN_ARCHS},
                     **{a: "fc" for a in GRAPH_ARCHS})
_AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")

_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,63}$")
_FORMAT1_KINDS = ("conv2d", "batchnorm2d", "relu", "maxpool2d", "adaptive_avgpool2d",
                  "flatten", "dropout", "linear")


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


# ---------------------------------------------------------------------------------
# Writing a node list (shared by export_model and export_sequential)

def _write(nodes, path, name, preprocess, extra_attrs=None):
    """Writes `nodes` (dicts with name, alias, kind, inputs, attrs, data) to `path`.
    A file that uses nothing of format 2 (a chain of format-1 kinds, no aliases) is
    written as format 1, exactly as before, so older salpipe reads AlexNet/VGG files;
    any other file is format 2 with `inputs` written on every node.
    The file is written to a temporary name and renamed: no partial file on failure."""
    import h5py
    import numpy as np
    _check_preprocess(preprocess)
    if not nodes:
        raise ExportError("no layers to export")
    defaults = [["input"]] + [[n["name"]] for n in nodes[:-1]]
    plain = all(n["kind"] in _FORMAT1_KINDS and not n.get("alias") and
                list(n["inputs"]) == d for n, d in zip(nodes, defaults))
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["format_version"] = np.int64(1 if plain else FORMAT_VERSION)
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
            grp.attrs["count"] = np.int64(len(nodes))
            for i, nd in enumerate(nodes):
                g = grp.create_group(f"{i:03d}")
                g.attrs["kind"] = nd["kind"]
                g.attrs["name"] = nd["name"]
                if nd.get("alias"):
                    g.attrs["alias"] = nd["alias"]
                if not plain:
                    g.attrs.create("inputs", data=list(nd["inputs"]),
                                   dtype=h5py.string_dtype("utf-8"))
                for key, value in nd["attrs"].items():
                    if isinstance(value, float):
                        g.attrs[key] = np.float64(value)
                    else:
                        g.attrs[key] = np.asarray(value, dtype=np.int64)
                for key, value in nd["data"].items():
                    g.create_dataset(key, data=value)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def export_sequential(layers, path, name, preprocess, extra_attrs=None):
    """Writes the modules in `layers` (applied in order to one image) to `path` as a
    salpipe model called `name`, with DNNBrain's chain names (conv1, conv1_relu, ...).
    preprocess: a dict like IMAGENET_PREPROCESS. extra_attrs: more root attributes
    (provenance), ignored by the loader. Raises ExportError for a module or setting
    the format cannot express; a failure leaves no partial file. Returns the names."""
    _check_preprocess(preprocess)
    mods = _flat_modules(layers)
    if not mods:
        raise ExportError("no layers to export")
    described = [_describe(m, f"layer {i} ({type(m).__name__})") for i, m in enumerate(mods)]
    names = layer_names([d[0] for d in described])
    nodes = [{"name": n, "alias": "", "kind": k, "inputs": [names[i - 1] if i else "input"],
              "attrs": a, "data": d, "fx_node": None, "module": m}
             for i, ((k, a, d), n, m) in enumerate(zip(described, names, mods))]
    _write(nodes, path, name, preprocess, extra_attrs)
    return names


def torchvision_layers(model):
    """The layer list of a torchvision AlexNet/VGG: its forward is features, avgpool,
    torch.flatten(x, 1), classifier."""
    import torch.nn as nn
    return [model.features, model.avgpool, nn.Flatten(), model.classifier]


# ---------------------------------------------------------------------------------
# Tracing: torch.fx with a tracer that records the module scope of every node

def _tracer_class():
    import torch.fx as fx

    class ScopeTracer(fx.Tracer):
        """torch.fx's tracer (torch.nn modules are leaves) that stores in each node's
        meta the qualified name of the innermost module being traced when it was
        created, and remembers each module's output node (first call)."""

        def __init__(self):
            super().__init__()
            self.scopes = []
            self.module_out = {}

        def call_module(self, m, forward, args, kwargs):
            path = self.path_of_module(m)
            self.scopes.append(path)
            try:
                out = super().call_module(m, forward, args, kwargs)
            finally:
                self.scopes.pop()
            if isinstance(out, fx.Proxy):
                self.module_out.setdefault(path, out.node)
            return out

        def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
            node = super().create_node(kind, target, args, kwargs, name, type_expr)
            node.meta["salpipe_scope"] = self.scopes[-1] if self.scopes else ""
            return node

    return ScopeTracer


def _dnnbrain_aliases(model):
    import torchvision.models as tvm
    if isinstance(model, tvm.GoogLeNet):
        names = ("conv1 maxpool1 conv2 conv3 maxpool2 inception3a inception3b maxpool3 "
                 "inception4a inception4b inception4c inception4d inception4e maxpool4 "
                 "inception5a inception5b fc").split()
        return {a: a for a in names}
    if isinstance(model, tvm.ResNet):
        out = {"conv": "conv1", "bn": "bn1", "relu": "relu", "maxpool": "maxpool"}
        for i in range(1, 5):
            for k, block in enumerate(getattr(model, f"layer{i}")):
                word = "bottleneck" if isinstance(block, tvm.resnet.Bottleneck) else \
                    "basicblock"
                out[f"layer{i}_{word}{k}"] = f"layer{i}.{k}"
        out.update(avgpool="avgpool", fc="fc")
        return out
    if isinstance(model, tvm.Inception3):
        out = {"conv1": "Conv2d_1a_3x3", "conv2": "Conv2d_2a_3x3", "conv3": "Conv2d_2b_3x3",
               "maxpool1": "maxpool1", "conv4": "Conv2d_3b_1x1", "conv5": "Conv2d_4a_3x3",
               "maxpool2": "maxpool2"}
        mixed = "5b 5c 5d 6a 6b 6c 6d 6e 7a 7b 7c".split()
        out.update({f"inception{i + 1}": f"Mixed_{m}" for i, m in enumerate(mixed)})
        out.update(avgpool="avgpool", fc="fc")
        return out
    return {}


def _has_transform_input(model):
    import torchvision.models as tvm
    return isinstance(model, (tvm.GoogLeNet, tvm.Inception3)) and \
        bool(getattr(model, "transform_input", False))


def _default_input_shape(model):
    import torchvision.models as tvm
    if isinstance(model, tvm.Inception3):
        return (3, 299, 299)
    if isinstance(model, (tvm.AlexNet, tvm.VGG, tvm.GoogLeNet, tvm.ResNet)):
        return (3, 224, 224)
    return None


def _unique(base, counts, used):
    k = counts.get(base, 0)
    while True:
        k += 1
        name = base if k == 1 else f"{base}_{k}"
        if name not in used:
            counts[base] = k
            used.add(name)
            return name


def trace_network(model, input_shape=None):
    """Traces `model` (switched to eval mode) with torch.fx. Returns (graph_module,
    nodes): graph_module is the traced GraphModule with GoogLeNet/Inception-v3's
    transform_input switched off inside it; nodes is the file's node list, in file
    order, as dicts with keys name, alias ("" if none), kind, inputs (names; "input"
    is the network input), attrs, data (numpy arrays), fx_node (None for
    transform_input) and module (the nn.Module of a module call, else None).
    input_shape (C, H, W): run the network once on zeros of that shape to check
    shapes (add operands, linear on flat values); default 224 or 299 for torchvision's
    networks, no check for others. Raises ExportError naming an unsupported
    operation and where it is (module scope and fx node).
    Recording fx node values with torch.fx.Interpreter: clone them, since the
    in-place ReLUs of torchvision's networks overwrite the conv/bn outputs they read."""
    import numpy as np
    import torch
    import torch.fx as fx
    import torch.nn as nn
    import torchvision.models as tvm
    from torch.fx.passes.shape_prop import ShapeProp
    root_name = type(model).__name__
    model.eval()
    ti = _has_transform_input(model)
    tracer = _tracer_class()()
    if ti:
        model.transform_input = False
    try:
        try:
            graph = tracer.trace(model)
        except ExportError:
            raise
        except Exception as e:
            raise ExportError(f"torch.fx cannot trace {root_name}: {type(e).__name__}: "
                              f"{e}") from e
    finally:
        if ti:
            model.transform_input = True
    gm = fx.GraphModule(tracer.root, graph, root_name)

    if input_shape is None:
        input_shape = _default_input_shape(model)
    params = list(model.parameters())
    dtype = params[0].dtype if params else torch.float32
    if input_shape is not None:
        try:
            with torch.no_grad():
                ShapeProp(gm).propagate(torch.zeros((1,) + tuple(input_shape), dtype=dtype))
        except Exception as e:
            raise ExportError(f"{root_name} does not run on a "
                              f"{'x'.join(map(str, input_shape))} input: "
                              f"{type(e).__name__}: {e}") from e

    order = {n: i for i, n in enumerate(graph.nodes)}
    recs = {}      # fx node -> record dict, for every node that becomes a file node
    passthru = {}  # fx node -> the fx node whose value it is (nn.Identity)
    placeholder, out_node = None, None
    shares = {}     # fx node -> the first node whose memory its value is in
    mutations = []  # (in-place node, the node it changes, where)
    for n in graph.nodes:
        where = _where(n, model)
        if n.op == "placeholder":
            if placeholder is not None:
                raise ExportError(f"{where}: {root_name}.forward takes more than one input")
            placeholder = n
            shares[n] = n
            continue
        if n.op == "output":
            out_node = n.args[0]
            if not isinstance(out_node, fx.Node):
                raise ExportError(f"{where}: {root_name} returns {type(out_node).__name__}; "
                                  "the format needs one tensor")
            continue
        if n.op == "get_attr":
            raise ExportError(f"{where}: reads the tensor '{n.target}' directly; "
                              f"supported: {SUPPORTED}")
        module, mutated = None, None
        if n.op == "call_module":
            module = gm.get_submodule(n.target)
            if len(n.args) != 1 or n.kwargs or not isinstance(n.args[0], fx.Node):
                raise ExportError(f"{where}: {type(module).__name__} called with other "
                                  "than one tensor")
            if isinstance(module, nn.Identity):
                passthru[n] = n.args[0]
                shares[n] = shares[n.args[0]]
                continue
            kind, attrs, data = _describe(module, where)
            op, ins = None, [n.args[0]]
            if getattr(module, "inplace", False) and kind == "relu":
                mutated = n.args[0]
        else:
            op, kind, attrs, data, ins, mutated = _describe_call(n, where)
        if mutated is not None:
            mutations.append((n, mutated, where))
        # PyTorch returns flatten's and eval dropout's input memory, and an in-place
        # operation's result is its input: they share the memory of their input.
        shares[n] = shares[ins[0]] if kind in ("flatten", "dropout") or mutated is not None \
            else n
        dims4 = ("conv2d", "batchnorm2d", "maxpool2d", "avgpool2d", "adaptive_avgpool2d")
        for t in ins:
            s = _shape(t)
            if s is not None and ((kind in dims4 and len(s) != 4) or
                                  (kind == "linear" and len(s) != 2)):
                raise ExportError(f"{where}: {kind} applied to a value of shape {list(s)}"
                                  f"; {kind} needs " +
                                  ("(N, features): flatten first" if kind == "linear"
                                   else "(N, C, H, W)"))
        scope = n.meta.get("salpipe_scope", "")
        base = n.target if module is not None else (f"{scope}.{op}" if scope else op)
        recs[n] = {"base": base, "kind": kind, "attrs": attrs, "data": data,
                   "ins": ins, "fx_node": n, "module": module, "where": where}

    # An in-place operation must not change a value something reads afterwards (the
    # file's nodes are separate values; PyTorch's would have changed under them).
    for n, mutated, where in mutations:
        for v in graph.nodes:
            if order[v] < order[n] and shares.get(v) is shares[mutated]:
                later = [u for u in v.users if u is not n and order[u] > order[n]]
                if later:
                    raise ExportError(f"{where}: {_label(n)} changes '{mutated.name}' "
                                      f"in place, and fx node '{later[0].name}' reads "
                                      f"{'it' if v is mutated else repr(v.name)} afterwards")

    def resolve(x):
        while x in passthru:
            x = passthru[x]
        return x

    # Only nodes the output depends on are written.
    live, stack = set(), [resolve(out_node)] if out_node is not None else []
    while stack:
        x = stack.pop()
        if x in live or x not in recs:
            continue
        live.add(x)
        stack.extend(resolve(i) for i in recs[x]["ins"])

    used, counts, names = {"input"}, {}, {placeholder: "input"}
    nodes = []
    if ti:
        used.add("transform_input")
        names[placeholder] = "transform_input"
        nodes.append({
            "name": "transform_input", "alias": "", "kind": "channel_affine",
            "inputs": ["input"], "attrs": {},
            "data": {"scale": np.array([s / 0.5 for s in _TI_STD], dtype=np.float64),
                     "shift": np.array([(m - 0.5) / 0.5 for m in _TI_MEAN],
                                       dtype=np.float64)},
            "fx_node": None, "module": None})
    for n in graph.nodes:
        if n not in live:
            continue
        r = recs[n]
        inputs = []
        for i in r["ins"]:
            i = resolve(i)
            if i not in names:
                raise ExportError(f"{r['where']}: reads fx node '{i.name}', which is no "
                                  "network value")
            inputs.append(names[i])
        name = _unique(r["base"], counts, used)
        if not _NAME_RE.match(name):
            raise ExportError(f"{r['where']}: node name '{name}' is not 1..63 characters "
                              "of A-Z a-z 0-9 _ - .")
        names[n] = name
        nodes.append({"name": name, "alias": "", "kind": r["kind"], "inputs": inputs,
                      "attrs": r["attrs"], "data": r["data"], "fx_node": n,
                      "module": r["module"]})
    if not nodes:
        raise ExportError(f"{root_name}: no operations to export")

    chain = all(nd["inputs"] == [nodes[i - 1]["name"] if i else "input"]
                for i, nd in enumerate(nodes))
    if isinstance(model, (tvm.AlexNet, tvm.VGG)) and chain:
        for nd, name in zip(nodes, layer_names([nd["kind"] for nd in nodes])):
            nd["name"] = name
        for i, nd in enumerate(nodes):
            nd["inputs"] = [nodes[i - 1]["name"] if i else "input"]
    by_fx = {nd["fx_node"]: nd for nd in nodes if nd["fx_node"] is not None}
    taken = {nd["name"] for nd in nodes}
    for alias, path in _dnnbrain_aliases(model).items():
        nd = by_fx.get(resolve(tracer.module_out.get(path)))
        if nd is None or alias == nd["name"]:
            continue
        if alias in taken or nd["alias"]:
            raise ExportError(f"{root_name}: DNNBrain name '{alias}' ({path}) collides "
                              f"with node '{nd['name']}'")
        nd["alias"] = alias
        taken.add(alias)
    return gm, nodes


def export_model(model, path, name, preprocess, extra_attrs=None):
    """Traces `model` (trace_network) and writes it to `path` as format 2, checking
    every node's shapes on an input of preprocess's size. Returns the node names.
    Raises ExportError naming an unsupported operation and where it is; a failure
    leaves no partial file."""
    _check_preprocess(preprocess)
    shape = (int(preprocess["input_channels"]),) + tuple(int(v) for v in
                                                          preprocess["input_size"])
    _, nodes = trace_network(model, input_shape=shape)
    _write(nodes, path, name, preprocess, extra_attrs)
    return [n["name"] for n in nodes]


# ---------------------------------------------------------------------------------
# Building torchvision networks

def _load_state(weights):
    import torch
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
    return state


def build_torchvision(arch, weights=None, seed=0, transform_input=False):
    """torch.manual_seed(seed); torchvision.models.ARCH(...) (googlenet and
    inception_v3 with aux_logits=False, init_weights=True, transform_input); then the
    state dict from `weights` if given: its number of classes is taken from the final
    linear layer's weight, and auxiliary-classifier keys are dropped. Eval mode."""
    import torch
    import torchvision
    if arch not in ARCHS:
        raise ExportError(f"unknown architecture '{arch}'; expected one of {', '.join(ARCHS)}")
    kwargs = {}
    if arch in TRANSFORM_INPUT_ARCHS:
        kwargs = {"aux_logits": False, "init_weights": True,
                  "transform_input": bool(transform_input)}
    elif transform_input:
        raise ExportError(f"transform_input: {arch} has none (only "
                          f"{', '.join(TRANSFORM_INPUT_ARCHS)})")
    state = None
    if weights is not None:
        state = _load_state(weights)
        if arch in TRANSFORM_INPUT_ARCHS:
            state = {k: v for k, v in state.items() if not k.startswith(_AUX_PREFIXES)}
        w = state.get(_FINAL_LINEAR[arch] + ".weight")
        if isinstance(w, torch.Tensor) and w.dim() == 2 and w.shape[0] >= 1:
            kwargs["num_classes"] = int(w.shape[0])
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)(**kwargs)
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ExportError(f"{weights}: does not fit torchvision's {arch}: {e}") from e
    return model.eval()


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Export a torchvision network to a salpipe model file (format 2).")
    ap.add_argument("arch", metavar="ARCH", choices=ARCHS,
                    help="one of " + ", ".join(ARCHS))
    ap.add_argument("-o", "--output", required=True, metavar="MODEL.h5")
    ap.add_argument("--weights", metavar="STATE_DICT.pth",
                    help="file saved with torch.save(model.state_dict()); any number "
                         "of classes; auxiliary classifiers are ignored")
    ap.add_argument("--seed", type=int, default=0,
                    help="torch.manual_seed before building the model (default 0)")
    ap.add_argument("--transform-input", choices=("on", "off"), default="off",
                    help="googlenet, inception_v3: torchvision's transform_input "
                         "(default off, as DNNBrain builds them; torchvision's "
                         "pretrained weights expect on)")
    args = ap.parse_args(argv)
    try:
        import torch
        import torchvision
        ti = args.transform_input == "on"
        model = build_torchvision(args.arch, args.weights, args.seed, ti)
        source = (f"weights {os.path.abspath(args.weights)}" if args.weights else
                  f"torch.manual_seed({args.seed}); torchvision.models.{args.arch}()")
        pre = INCEPTION_PREPROCESS if args.arch == "inception_v3" else IMAGENET_PREPROCESS
        extra = {"exporter": "salpipe scripts/export_torchvision.py",
                 "source": source, "torch_version": torch.__version__,
                 "torchvision_version": torchvision.__version__}
        if args.arch in TRANSFORM_INPUT_ARCHS:
            extra["transform_input"] = args.transform_input
        names = export_model(model, args.output, args.arch, pre, extra)
    except ExportError as e:
        print(f"export_torchvision.py: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"export_torchvision.py: error: cannot write {args.output}: {e}",
              file=sys.stderr)
        return 2
    shown = " ".join(names) if len(names) <= 40 else \
        " ".join(names[:20]) + " ... " + " ".join(names[-5:])
    print(f"{args.output}: {args.arch}, {len(names)} layers: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
