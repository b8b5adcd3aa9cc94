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

So DNNBrain's guided rule reaches only nn.ReLU modules met before the target module:
  - GoogLeNet and Inception-v3 call F.relu: no ReLU is hooked, their "guided" map is
    the vanilla one;
  - in ResNet, modules() lists a block before its children, so with a block
    (layerN_bottleneckK) as the target its own ReLU module (called 2 or 3 times)
    stays vanilla while every earlier one is guided.
salpipe applies the method's rule at every ReLU call (docs/saliency.md). For each
DNNBrain map, `explain` says which salpipe map it must equal, or, when it mixes rules,
computes the mixed map with the reference's own fx interpreter (guided at the hooked
calls, vanilla at the others) so the test can check the difference is exactly that.
"""
import torch

from graph_reference import RuleReLU, dnnbrain_modules, relu_call_tags, target_scalars

DNNBRAIN_METHODS = ["vanilla", "guided"]


def dnnbrain_map(model, layer, unit, x, method):
    """DNNBrain's map of image x (1,C,H,W) for its layer name `layer`, 1-based
    `unit`, method vanilla or guided. Returns (map (C,H,W), hooked ReLU modules)."""
    target = dict(dnnbrain_modules(model))[layer]
    hooked = []
    if method == "guided":
        for mod in model.modules():
            if isinstance(mod, torch.nn.ReLU):
                hooked.append(mod)
            if mod is target:
                break
    state = {}

    def keep_scalar(mod, inp, out):
        state["scalar"] = out[0, unit - 1].mean()

    def guide(mod, grad_in, grad_out):
        return (grad_in[0] * (grad_out[0] > 0),)

    handles = [target.register_forward_hook(keep_scalar)]
    handles += [m.register_full_backward_hook(guide) for m in hooked]
    inplace = {}
    for mod in model.modules():  # full backward hooks refuse in-place outputs
        if isinstance(mod, torch.nn.ReLU):
            inplace[mod], mod.inplace = mod.inplace, False
    try:
        x = x.clone().requires_grad_(True)
        model(x)
        (g,) = torch.autograd.grad(state["scalar"], x)
    finally:
        for h in handles:
            h.remove()
        for mod, v in inplace.items():
            mod.inplace = v
    return g[0].detach(), hooked


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


def mixed_map(net, x, target_name, unit, rules):
    """The map of image x (1,C,H,W) with the given rule per ReLU call (fx node name),
    computed by the reference's fx interpreter."""
    x = x.clone().requires_grad_(True)
    values, _ = net.forward(x)
    scalar, _ = target_scalars(values, net.node(target_name)["name"], unit)
    RuleReLU.override = rules
    try:
        (g,) = torch.autograd.grad(scalar.sum(), x)
    finally:
        RuleReLU.override = {}
    return g[0].detach()
