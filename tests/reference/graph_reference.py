"""PyTorch's values for graph networks (ResNet, GoogLeNet, Inception-v3), keyed by the
salpipe node names, for tests/reference/make_reference.py.

The exporter's own tracer (scripts/export_torchvision.py `trace_network`) gives the
torch.fx graph of the model and the list of salpipe nodes, each pointing at the fx
node whose value is its output. An fx Interpreter runs that graph, records every fx
node's value and replaces every ReLU *call* (nn.ReLU modules, reused ones included,
F.relu, torch.relu, Tensor.relu) by RuleReLU, whose backward applies the saliency
method's rule (SPEC §1). The transform_input node, which the exporter emits itself,
is computed by torchvision's own `_transform_input`.

Independently of fx, `check_dnnbrain_names` runs the untraced torchvision model with
forward hooks on the modules DNNBrain names (its layer2loc tables, restated here from
the model's structure) and checks that each exported alias carries that module's
output, so the names are checked against PyTorch itself.
"""
import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
import torchvision

METHODS = ["vanilla", "guided", "deconvnet"]


class RuleReLU(torch.autograd.Function):
    """ReLU whose backward is a saliency method's rule (SPEC §1). `method` is the rule
    of every call; `override` maps a call's tag (the fx node name) to another rule,
    which the DNNBrain comparison uses to reproduce its partly hooked networks."""
    method = "vanilla"
    override = {}

    @staticmethod
    def forward(ctx, x, tag=None):
        ctx.save_for_backward(x)
        ctx.tag = tag
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        method = RuleReLU.override.get(ctx.tag, RuleReLU.method)
        if method == "vanilla":
            return g * (x > 0), None
        if method == "guided":
            return g * (x > 0) * (g > 0), None
        if method == "deconvnet":
            return g * (g > 0), None
        raise ValueError(method)


_RELU_FUNCTIONS = (F.relu, torch.relu, torch.relu_, F.relu_)


class RuleInterpreter(torch.fx.Interpreter):
    """Runs a traced graph, keeping every fx node's value, with RuleReLU at every
    ReLU call (tagged by the fx node's name). In-place ReLUs become out-of-place, so
    recorded values stay as they were computed."""

    def __init__(self, gm):
        super().__init__(gm)
        self.values = {}
        self._current = None

    def run_node(self, n):
        self._current = n
        out = super().run_node(n)
        self.values[n] = out
        return out

    def call_module(self, target, args, kwargs):
        if isinstance(self.fetch_attr(target), torch.nn.ReLU):
            return RuleReLU.apply(args[0], self._current.name)
        return super().call_module(target, args, kwargs)

    def call_function(self, target, args, kwargs):
        if target in _RELU_FUNCTIONS:
            return RuleReLU.apply(args[0], self._current.name)
        return super().call_function(target, args, kwargs)

    def call_method(self, target, args, kwargs):
        if target in ("relu", "relu_"):
            return RuleReLU.apply(args[0], self._current.name)
        return super().call_method(target, args, kwargs)


def relu_call_tags(gm):
    """{fx node name: qualified module name or None} of every ReLU call in the graph."""
    mods = dict(gm.named_modules())
    tags = {}
    for n in gm.graph.nodes:
        if n.op == "call_module" and isinstance(mods.get(n.target), torch.nn.ReLU):
            tags[n.name] = n.target
        elif n.op == "call_function" and n.target in _RELU_FUNCTIONS:
            tags[n.name] = None
        elif n.op == "call_method" and n.target in ("relu", "relu_"):
            tags[n.name] = None
    return tags


def transform_input(model, x):
    """torchvision's own _transform_input of GoogLeNet / Inception-v3, switched on."""
    saved = model.transform_input
    model.transform_input = True
    try:
        return model._transform_input(x)
    finally:
        model.transform_input = saved


class GraphNet:
    """A traced torchvision graph network: forward to per-node values."""

    def __init__(self, model, gm, nodes):
        self.model, self.gm, self.nodes = model, gm, nodes
        self.names = [nd["name"] for nd in nodes]
        self.by_name = {}
        for nd in nodes:
            self.by_name[nd["name"]] = nd
            if nd["alias"]:
                self.by_name[nd["alias"]] = nd
        self.has_transform = any(nd["kind"] == "channel_affine" and nd["fx_node"] is None
                                 for nd in nodes)

    def node(self, name):
        """The node named or aliased `name`."""
        return self.by_name[name]

    def forward(self, x):
        """{node name: value} for input x (autograd graph kept), and the graph's
        output."""
        h = transform_input(self.model, x) if self.has_transform else x
        interp = RuleInterpreter(self.gm)
        out = interp.run(h)
        values = {}
        for nd in self.nodes:
            if nd["fx_node"] is None:
                if nd["kind"] != "channel_affine":
                    raise SystemExit(f"node {nd['name']}: no fx node and not the "
                                     "input transform")
                values[nd["name"]] = h
            else:
                values[nd["name"]] = interp.values[nd["fx_node"]]
        return values, out

    def ancestors(self, name):
        """Names of the node `name` and every node it reads, directly or not."""
        seen, todo = set(), [self.node(name)["name"]]
        while todo:
            k = todo.pop()
            if k in seen or k == "input":
                continue
            seen.add(k)
            nd = self.by_name[k]
            ins = nd["inputs"]
            if not ins:  # absent inputs: the previous node (format 1's chain)
                i = self.names.index(k)
                ins = [self.names[i - 1]] if i > 0 else []
            todo.extend(ins)
        return seen


# ---- DNNBrain's layer names, restated from its layer2loc tables ------------------

_INCEPTION_V3 = [("conv1", "Conv2d_1a_3x3"), ("conv2", "Conv2d_2a_3x3"),
                 ("conv3", "Conv2d_2b_3x3"), ("maxpool1", "maxpool1"),
                 ("conv4", "Conv2d_3b_1x1"), ("conv5", "Conv2d_4a_3x3"),
                 ("maxpool2", "maxpool2")] + \
    [(f"inception{i + 1}", m) for i, m in enumerate(
        ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c",
         "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"])] + \
    [("avgpool", "avgpool"), ("fc", "fc")]
_GOOGLENET = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a",
              "inception3b", "maxpool3", "inception4a", "inception4b", "inception4c",
              "inception4d", "inception4e", "maxpool4", "inception5a", "inception5b", "fc"]


def dnnbrain_modules(model):
    """[(DNNBrain layer name, module)] for a torchvision ResNet, GoogLeNet or
    Inception-v3 (dnnbrain/dnn/models.py layer2loc; ResNet-18/34 blocks are
    `layerN_basicblockK`, as salpipe documents)."""
    if isinstance(model, torchvision.models.ResNet):
        block = ("bottleneck" if isinstance(model.layer1[0],
                                            torchvision.models.resnet.Bottleneck)
                 else "basicblock")
        out = [("conv", model.conv1), ("bn", model.bn1), ("relu", model.relu),
               ("maxpool", model.maxpool)]
        for i in range(1, 5):
            layer = getattr(model, f"layer{i}")
            out += [(f"layer{i}_{block}{k}", layer[k]) for k in range(len(layer))]
        return out + [("avgpool", model.avgpool), ("fc", model.fc)]
    if isinstance(model, torchvision.models.GoogLeNet):
        return [(n, getattr(model, n)) for n in _GOOGLENET]
    if isinstance(model, torchvision.models.Inception3):
        return [(n, getattr(model, m)) for n, m in _INCEPTION_V3]
    raise SystemExit(f"no DNNBrain layer names for {type(model).__name__}")


def check_dnnbrain_names(net, x, values):
    """Runs the untraced model on x with forward hooks on DNNBrain's modules and
    checks each one's output against the value of the node its name finds (name or
    alias) in `values`, and the model's output against the graph's last node.
    Returns [(DNNBrain name, node name)]; exits on a mismatch."""
    got = {}
    handles = []
    mods = dnnbrain_modules(net.model)
    for name, mod in mods:
        def hook(m, inp, out, name=name):
            got[name] = out.detach().clone()  # later in-place ReLUs would change it
        handles.append(mod.register_forward_hook(hook))
    saved = getattr(net.model, "transform_input", None)
    if net.has_transform:
        net.model.transform_input = True
    try:
        with torch.no_grad():
            final = net.model(x)
    finally:
        for h in handles:
            h.remove()
        if saved is not None:
            net.model.transform_input = saved
    pairs, bad = [], []
    for name, _ in mods:
        if name not in net.by_name:
            bad.append(f"{name}: no node is named or aliased so")
            continue
        node = net.node(name)["name"]
        ref = got[name].double()
        v = values[node].detach().double()
        err = (v - ref).abs().max().item() / max(ref.abs().max().item(), 1e-300)
        if v.shape != ref.shape or not err <= 1e-12:
            bad.append(f"{name}: node {node} differs from the module's output "
                       f"(shape {tuple(v.shape)} vs {tuple(ref.shape)}, rel {err:.2e})")
        pairs.append((name, node))
    last = values[net.names[-1]].detach()
    err = (last - final).abs().max().item() / max(final.abs().max().item(), 1e-300)
    if not err <= 1e-12:
        bad.append(f"the graph's last node {net.names[-1]} differs from the model's "
                   f"output (rel {err:.2e})")
    if bad:
        raise SystemExit("DNNBrain names against forward hooks on the torchvision "
                         "model:\n  " + "\n  ".join(bad))
    return pairs


def target_scalars(values, node, unit):
    """(per-image target scalar, per-image scale): the mean of channel `unit`
    (1-based) for a (N,C,H,W) output, the unit's value for (N,F); the scale is the
    mean |output| of that channel, or of the whole layer for a linear unit, whose own
    value can cancel far below its terms."""
    out = values[node]
    y = out[:, unit - 1]
    if y.dim() == 3:
        return y.mean(dim=(1, 2)), y.detach().abs().mean(dim=(1, 2))
    return y, out.detach().abs().mean(dim=1)


def graph_maps(net, x, targets, mixed=(), methods=METHODS):
    """Per-node values (autograd graph kept), activations, scales and maps
    (N,T,M,C,H,W) of input x for [(node name or alias, 1-based unit)]; and for each
    (target index, {fx ReLU call: rule}) in `mixed`, image 0's map with those rules
    (other calls vanilla), (C,H,W)."""
    x = x.clone().requires_grad_(True)
    values, _ = net.forward(x)
    n = x.shape[0]
    acts = np.zeros((n, len(targets)))
    scales = np.zeros((n, len(targets)))
    maps = np.zeros((n, len(targets), len(methods)) + tuple(x.shape[1:]))
    scalars = []
    for t, (name, unit) in enumerate(targets):
        per_image, scale = target_scalars(values, net.node(name)["name"], unit)
        scalars.append(per_image.sum())
        acts[:, t] = per_image.detach().numpy()
        scales[:, t] = scale.numpy()
        # Images are independent (eval mode): the batch sum's gradient holds each
        # image's own map.
        for m, method in enumerate(methods):
            RuleReLU.method = method
            (g,) = torch.autograd.grad(scalars[t], x, retain_graph=True)
            maps[:, t, m] = g.numpy()
    RuleReLU.method = "vanilla"
    mixed_maps = []
    for t, rules in mixed:
        RuleReLU.override = rules
        try:
            (g,) = torch.autograd.grad(scalars[t], x, retain_graph=True)
        finally:
            RuleReLU.override = {}
        mixed_maps.append(g[0].detach())
    return values, acts, scales, maps, mixed_maps
