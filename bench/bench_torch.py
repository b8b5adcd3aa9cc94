"""PyTorch side of scripts/bench.sh: the same saliency maps as salpipe, two ways.

    bench_torch.py dnnbrain ARCH IMAGES UNITS --reps R [--threads T]
    bench_torch.py batched  ARCH IMAGES UNITS --reps R [--threads T] [--batch B]
                            [--strategy repeat|retain|vmap] [--dtype float32|float64]
                            [--dump MAPS.npy]

ARCH is a torchvision constructor (the network is torch.manual_seed(0) + ARCH(), the
same weights as `export_torchvision.py ARCH --seed 0`). IMAGES is a text file with one
image path per line; UNITS are 1-based units of the last layer (AlexNet/VGG `fc3`,
ResNet `fc`) separated by commas (e.g. 540,23).
Methods are always vanilla and guided. Prints one JSON object on stdout: the time of
each repetition (seconds), the number of maps per repetition and the median maps/s.

dnnbrain: DNNBrain's loop. For every image, every unit and every method: hooks are
  registered, the image is preprocessed (PIL + torchvision, as DNNBrain's
  test_transform), the whole network runs forward on that one image with its
  parameters still requiring grad, model.zero_grad(), then .backward() on the mean of
  the unit's activation (for fc3 the unit's value), the map is read and the hooks are
  removed. Guided uses hooks on every nn.ReLU module (forward hook saves the mask,
  backward hook clamps the gradient at zero; a module ResNet calls 3 times per block
  runs its hooks at every call), as DNNBrain's GuidedSaliency does; vanilla uses
  plain autograd. Weight gradients are therefore computed every time.

batched: the best batched PyTorch we could write. Parameters frozen, B images per
  forward, ReLU modules replaced by one autograd Function whose backward applies the
  vanilla or guided rule per sample (at every call of a reused module). Strategy
  `repeat`: the batch is repeated once per (unit, method) seed, so one forward and one
  backward give every map; `retain`: one forward of B images, then one
  autograd.grad(retain_graph=True) per seed; `vmap`: one forward of B images, then
  functorch.vmap over the one-hot seeds (and a guided flag per seed) of one
  autograd.grad: every seed's backward as one batched pass.
--dtype float64 runs the network and the preprocessing in float64 (the reference of
the float32 maps' error); --dump saves the first image's maps (T, M, C, H, W) in the
run's dtype.

Both time image decoding and preprocessing, but not `import torch`, building the
network or writing the maps anywhere; one untimed warm-up pass runs first.
"""
import argparse
import json
import statistics
import sys
import time
import warnings

import functorch
import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# DNNBrain's test_transform for AlexNet/VGG.
TRANSFORM = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(),
                                transforms.Normalize(MEAN, STD)])
METHODS = ("vanilla", "guided")


def tensor(pil, dtype=torch.float32):
    """The network input of a PIL image. float32: TRANSFORM, as DNNBrain does it;
    float64: SPEC section 1's float64 preprocessing, (x / 255 - mean) / std in double
    after the same resize (a float32 tensor cast to double would differ from it by
    float32 rounding, enough to flip a near-tie and change a deep map by 1e-3)."""
    if dtype != torch.float64:
        return TRANSFORM(pil).to(dtype)
    x = np.asarray(TRANSFORM.transforms[0](pil), dtype=np.float64) / 255.0
    x = (x - np.array(MEAN)) / np.array(STD)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def build(arch):
    torch.manual_seed(0)
    return getattr(torchvision.models, arch)().eval()


def last_layer(model):
    """The module whose units are the targets: AlexNet/VGG fc3, ResNet fc."""
    return model.fc if hasattr(model, "fc") else model.classifier[-1]


def load(path):
    with Image.open(path) as im:
        return im.convert("RGB")


# ---- DNNBrain's loop ---------------------------------------------------------------


def dnnbrain_map(model, last, relus, pil, unit, method):
    """One map the way DNNBrain's saliency classes compute it."""
    acts, masks, handles = [], [], []
    handles.append(last.register_forward_hook(
        lambda mod, inp, out: acts.append(out[0, unit - 1].mean())))
    if method == "guided":
        def fwd(mod, inp, out):
            masks.append((out > 0).to(out.dtype))

        def bwd(mod, grad_in, grad_out):
            return (masks.pop() * grad_in[0].clamp(min=0),)
        for r in relus:
            handles.append(r.register_forward_hook(fwd))
            handles.append(r.register_backward_hook(bwd))
    x = TRANSFORM(pil).unsqueeze(0).requires_grad_(True)
    model(x)
    model.zero_grad()
    acts.pop().backward()
    m = x.grad[0].numpy().copy()
    for h in handles:
        h.remove()
    return m


def run_dnnbrain(model, paths, units):
    last = last_layer(model)
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    n = 0
    for p in paths:
        pil = load(p)
        for u in units:
            for meth in METHODS:
                dnnbrain_map(model, last, relus, pil, u, meth)
                n += 1
    return n


# ---- batched -----------------------------------------------------------------------


class RuleReLU(torch.autograd.Function):
    """ReLU whose backward is vanilla for some samples and guided for the others.
    RuleReLU.guided: None (all vanilla), True (all guided), a bool tensor (N,) (per
    sample) or a 0-dim bool tensor (under functorch.vmap: one flag per seed)."""
    guided = None

    @staticmethod
    def forward(ctx, x):
        y = x.clamp(min=0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        sel = RuleReLU.guided
        if sel is None:
            keep = y > 0
        elif sel is True:
            keep = (y > 0) & (g > 0)
        else:
            sel = sel if sel.dim() == 0 else sel.view(-1, *([1] * (g.dim() - 1)))
            keep = (y > 0) & ((g > 0) | ~sel)
        return g * keep


class RuleReLUModule(torch.nn.Module):
    def forward(self, x):
        return RuleReLU.apply(x)


def prepare_batched(model):
    for parent in list(model.modules()):
        for name, mod in list(parent.named_children()):
            if isinstance(mod, torch.nn.ReLU):
                setattr(parent, name, RuleReLUModule())
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def batched_maps(model, x, units, strategy):
    """Maps (n, T, M, C, H, W) of the images x (n, C, H, W)."""
    n, seeds = x.shape[0], [(u, m) for u in units for m in METHODS]
    if strategy == "repeat":
        xr = x.repeat(len(seeds), 1, 1, 1).requires_grad_(True)
        sel = torch.tensor([m == "guided" for _, m in seeds]).repeat_interleave(n)
        out = model(xr)
        rows = torch.arange(len(seeds) * n)
        cols = torch.tensor([u - 1 for u, _ in seeds]).repeat_interleave(n)
        RuleReLU.guided = sel
        (g,) = torch.autograd.grad(out[rows, cols].sum(), xr)
        g = g.view(len(units), len(METHODS), n, *x.shape[1:]).permute(2, 0, 1, 3, 4, 5)
    elif strategy == "vmap":
        xg = x.clone().requires_grad_(True)
        out = model(xg)
        # One-hot seeds (S, n, classes) and a guided flag per seed, both mapped over by
        # functorch.vmap: each seed's backward runs as one batched backward pass.
        # (functorch.vjp would refuse the autograd.Function; vmap over
        # autograd.grad of a graph built outside it takes it.)
        onehot = torch.zeros(len(seeds), *out.shape, dtype=out.dtype)
        for i, (u, _) in enumerate(seeds):
            onehot[i, :, u - 1] = 1
        flags = torch.tensor([m == "guided" for _, m in seeds])

        def one(seed, flag):
            RuleReLU.guided = flag
            return torch.autograd.grad(out, xg, seed, retain_graph=True)[0]
        g = functorch.vmap(one)(onehot, flags)
        g = g.view(len(units), len(METHODS), n, *x.shape[1:]).permute(2, 0, 1, 3, 4, 5)
    else:
        xg = x.clone().requires_grad_(True)
        out = model(xg)
        gs = []
        for i, (u, m) in enumerate(seeds):
            RuleReLU.guided = True if m == "guided" else None
            gs.append(torch.autograd.grad(out[:, u - 1].sum(), xg,
                                          retain_graph=i + 1 < len(seeds))[0])
        g = torch.stack(gs, 1).view(n, len(units), len(METHODS), *x.shape[1:])
    RuleReLU.guided = None
    return g


def run_batched(model, paths, units, batch, strategy, keep_first=False):
    n, first = 0, None
    dtype = next(model.parameters()).dtype
    for b in range(0, len(paths), batch):
        x = torch.stack([tensor(load(p), dtype) for p in paths[b:b + batch]])
        g = batched_maps(model, x, units, strategy)
        n += g.shape[0] * g.shape[1] * g.shape[2]
        if keep_first and first is None:
            first = g[0].numpy().copy()
    return n, first


# ---- main --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("dnnbrain", "batched"))
    ap.add_argument("arch")
    ap.add_argument("images")
    ap.add_argument("units")
    ap.add_argument("--reps", type=int, default=3,
                    help="0: no warm-up and no timing, only --dump (the float64 reference)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--strategy", choices=("repeat", "retain", "vmap"), default="retain")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                    help="float64: the reference for the float32 maps' error (batched only)")
    ap.add_argument("--dump", help="save the first image's maps (T, M, C, H, W) as .npy")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(a.threads)
    with open(a.images) as f:
        paths = [line.strip() for line in f if line.strip()]
    units = [int(u) for u in a.units.split(",")]
    model = build(a.arch).to(getattr(torch, a.dtype))
    if a.mode == "dnnbrain":
        if a.reps:
            run_dnnbrain(model, paths[:1], units[:1])  # warm-up
        work = lambda: run_dnnbrain(model, paths, units)  # noqa: E731
    else:
        prepare_batched(model)
        if a.reps:
            run_batched(model, paths[:a.batch], units, a.batch, a.strategy)  # warm-up
        work = lambda: run_batched(model, paths, units, a.batch, a.strategy)[0]  # noqa: E731
    times, maps = [], 0
    for _ in range(a.reps):
        t0 = time.perf_counter()
        maps = work()
        times.append(time.perf_counter() - t0)
    if a.dump:
        first = (run_batched(model, paths[:a.batch], units, a.batch, a.strategy, True)[1]
                 if a.mode == "batched" else
                 np.stack([np.stack([dnnbrain_map(model, last_layer(model),
                                                  [m for m in model.modules()
                                                   if isinstance(m, torch.nn.ReLU)],
                                                  load(paths[0]), u, meth)
                                     for meth in METHODS]) for u in units]))
        np.save(a.dump, first)
    med = statistics.median(times) if times else None
    json.dump({"mode": a.mode, "arch": a.arch, "strategy": a.strategy if a.mode == "batched"
               else None, "batch": a.batch if a.mode == "batched" else 1,
               "threads": a.threads, "dtype": a.dtype, "torch": torch.__version__,
               "images": len(paths),
               "maps": maps, "times": times, "median_s": med,
               "maps_per_s": maps / med if med else None},
              sys.stdout)
    print()


if __name__ == "__main__":
    main()
