"""DNNBrain's hook-based vanilla and guided saliency, restated, and what salpipe's
maps should be next to it (for tests/reference/make_reference.py).

DNNBrain (dnnbrain/dnn/algo.py, VanillaSaliencyImage / GuidedSaliencyImage) computes a
map like this, on the untraced torchvision model:
  - a forward hook on the target module takes mean(output[0, channel - 1]) as the
    scalar (image 0 of the batch; a linear unit's value as is);
  - guided only: walking model.modules() in order, every nn.ReLU module met gets a
    backward hook that zeroes the ReLU's input gradient where its output gradient
    is <= 0, and the walk stops at the target module (after hooking it, if it is a
    ReLU). A hooked module reused in a block is hooked at each of its calls;
  - the gradient at the network input (DNNBrain reads it at the first layer's
    module; here it is taken at the input tensor, the same thing when the first
    module reads the input, as in ResNet).
DNNBrain runs one forward per map; here one forward serves every target and method,
the hooks being enabled per backward, which gives the same gradients.

So DNNBrain's guided rule reaches only nn.ReLU modules met before the target module:
  - GoogLeNet and Inception-v3 call F.relu: no ReLU is hooked, their "guided" map is
    the vanilla one;
  - in ResNet, modules() lists a block before its children, so with a block
    (layerN_bottleneckK) as the target its own ReLU module (called 2 or 3 times)
    stays vanilla while every earlier one is guided.
salpipe applies the method's rule at every ReLU call (docs/saliency.md). For each
DNNBrain map, `explain` says which salpipe map it must equal, or, when it mixes rules,
gives the rule per ReLU call (guided at the hooked calls, vanilla at the others) for
the reference's own fx interpreter to compute the mixed map, so the test can check the
difference is exactly that.
"""
import torch

from graph_reference import dnnbrain_modules, relu_call_tags

DNNBRAIN_METHODS = ["vanilla", "guided"]


def hooked_relus(model, target):
    """The nn.ReLU modules DNNBrain's guided hooks for target module `target`: those
    model.modules() lists up to the target, the target included."""
    hooked = []
    for mod in model.modules():
        if isinstance(mod, torch.nn.ReLU):
            hooked.append(mod)
        if mod is target:
            break
    return hooked


def dnnbrain_maps(model, requests, x):
    """DNNBrain's maps of image x (1,C,H,W): for each (layer, 1-based unit) in
    `requests` and each method of DNNBRAIN_METHODS, a (C,H,W) tensor, as
    [[vanilla, guided], ...]. One forward serves all: every target module keeps its
    scalar, every nn.ReLU module carries the guiding hook, and each backward enables
    it only on the modules DNNBrain would have hooked for that target and method."""
    mods = dict(dnnbrain_modules(model))
    scalars, active = {}, set()

    def guide(mod, grad_in, grad_out):
        if mod in active:
            return (grad_in[0] * (grad_out[0] > 0),)
        return None

    handles = []
    for layer, unit in requests:
        def keep_scalar(mod, inp, out, layer=layer, unit=unit):
            scalars[(layer, unit)] = out[0, unit - 1].mean()
        handles.append(mods[layer].register_forward_hook(keep_scalar))
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    handles += [m.register_full_backward_hook(guide) for m in relus]
    inplace = {m: m.inplace for m in relus}
    for m in relus:  # full backward hooks refuse in-place outputs
        m.inplace = False
    try:
        x = x.clone().requires_grad_(True)
        model(x)
        out = []
        for layer, unit in requests:
            row = []
            for method in DNNBRAIN_METHODS:
                active.clear()
                if method == "guided":
                    active.update(hooked_relus(model, mods[layer]))
                (g,) = torch.autograd.grad(scalars[(layer, unit)], x, retain_graph=True)
                row.append(g[0].detach())
            out.append(row)
    finally:
        for h in handles:
            h.remove()
        for m, v in inplace.items():
            m.inplace = v
    return out


def explain(net, target_name, method, hooked):
    """What salpipe's maps predict for DNNBrain's map: (salpipe method it must equal
    or "", why, {fx ReLU call: rule} for the mixed map, or None)."""
    if method == "vanilla":
        return "vanilla", "no hooks: plain autograd, salpipe's vanilla", None
    calls = relu_call_tags(net.gm)
    names = {mod: q for q, mod in net.model.named_modules()}
    hooked_q = {names[m] for m in hooked}
    upstream = {nd["fx_node"].name for nd in net.nodes
                if nd["kind"] == "relu" and nd["fx_node"] is not None
                and nd["name"] in net.ancestors(target_name)}
    on = {c for c in upstream if calls.get(c) in hooked_q}
    if on == upstream:
        return ("guided", "every ReLU call the target reads is an nn.ReLU module met "
                "before the target in model.modules(): DNNBrain's guided is salpipe's", None)
    if not on:
        return ("vanilla", "no ReLU the target reads is an nn.ReLU module DNNBrain hooks "
                "(the network calls F.relu): DNNBrain's guided is salpipe's vanilla", None)
    off = sorted(upstream - on)
    mods = sorted({calls[c] or "F.relu" for c in off})
    why = (f"{len(off)} of the {len(upstream)} ReLU calls the target reads stay vanilla in "
           f"DNNBrain ({', '.join(mods)}: module(s) after the target in model.modules(), "
           "e.g. the target block's own ReLU); salpipe's guided applies the rule there too")
    rules = {c: "guided" if c in on else "vanilla" for c in upstream}
    return "", why, rules
