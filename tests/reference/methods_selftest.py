#!/usr/bin/env python3
"""Self-test of tests/reference/methods_reference.py (ctest methods_ref_selftest):
what the reference computes is checked against properties its definitions imply and
against independent computations, so a test comparing salpipe with it compares with
the definitions.

    methods_selftest.py ALEXNET.h5 WORKDIR [--image PHOTO]

ALEXNET.h5 is scripts/export_torchvision.py alexnet --seed 0. Small seeded networks
(a linear one, a ReLU/max-pool chain, a graph with add and concat) are exported to
WORKDIR with the exporter's own API and read back by the reference's file builder.
Prints one line per check; exit status 1 if any fails.
"""
import argparse
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn

import methods_reference as mr

PRE = {"input_channels": 3, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
       "resize": "stretch", "resize_size": 256}
FAILED = []


def check(name, ok, detail):
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")
    if not ok:
        FAILED.append(name)


def rel(a, b):
    """max |a - b| / max |b| (float64)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


# ---- small seeded networks ------------------------------------------------------

class TinyGraph(nn.Module):
    """conv, ReLU, a residual add, a two-branch concat, pooling, linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.branch = nn.Conv2d(6, 4, 1)
        self.pool = nn.MaxPool2d(2)
        self.avgpool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(40, 5)

    def forward(self, x):
        h = self.relu(self.conv1(x))
        h = torch.relu(self.conv2(h) + h)
        h = torch.cat([h, self.branch(h)], 1)
        h = self.avgpool(self.pool(h))
        return self.fc(torch.flatten(h, 1))


def tiny_models(workdir):
    """{name: (path, torch module)} of the small networks, exported to workdir."""
    ex = mr._exporter()
    torch.manual_seed(0)
    linear = [nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
              nn.Linear(4, 3)]
    chain = [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
             nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
             nn.Flatten(), nn.Linear(32, 5)]
    graph = TinyGraph().eval()
    out = {}
    for name, mods in (("linear", linear), ("chain", chain)):
        path = os.path.join(workdir, f"{name}.h5")
        ex.export_sequential(mods, path, name, dict(PRE, input_size=(12, 12)))
        out[name] = (path, nn.Sequential(*mods).eval())
    path = os.path.join(workdir, "graph.h5")
    ex.export_model(graph, path, "graph", dict(PRE, input_size=(12, 12)))
    out["graph"] = (path, graph)
    return out


def inputs(n, shape, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n,) + shape, generator=g, dtype=torch.float64).to(dtype)


# ---- the checks -----------------------------------------------------------------

def check_builders(models, alex):
    """The file builder equals the torch modules (small networks) and the
    torchvision rebuild (AlexNet), node by node and map by map."""
    for name in ("chain", "graph"):
        path, mod = models[name]
        net = mr.load_net(path, torch.float64, "file")
        x = inputs(2, (3, 12, 12), 1)
        with torch.no_grad():
            ref = mod.double()(x)
            got = net.forward(x)[net.names[-1]]
        mod.float()
        check(f"file builder, {name}", rel(got, ref) <= 1e-13,
              f"last node vs the torch module, rel {rel(got, ref):.1e}")
    path, x = alex
    tv = mr.load_net(path, torch.float64, "auto")
    fl = mr.load_net(path, torch.float64, "file")
    a, b = tv.forward(x), fl.forward(x)
    worst = max(rel(b[k].detach(), a[k].detach()) for k in tv.names)
    targets = [("fc3", 539)]
    maps = rel(mr.saliency(fl, x, targets, "guided"),
               mr.saliency(tv, x, targets, "guided"))
    check("builders agree, AlexNet", tv.builder == "torchvision" and worst <= 1e-12 and
          maps <= 1e-12, f"{tv.builder} vs file: node values rel {worst:.1e}, "
          f"guided maps rel {maps:.1e}")
    return tv


def independent_alexnet(x, layers, targets):
    """Untraced torchvision AlexNet (ReLUs out of place), forward hooks on the
    modules of `layers` and of the targets: ({layer: upsampled Grad-CAM (N,T,H,W)
    computed with numpy's own bilinear weights}, vanilla maps (N,T,C,H,W))."""
    ex = mr._exporter()
    model = ex.build_torchvision("alexnet", seed=0).double()
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    where = {"conv2": model.features[3], "conv5_relu": model.features[11],
             "fc1": model.classifier[1], "fc3": model.classifier[6]}
    got = {}
    hooks = [where[k].register_forward_hook(lambda m, i, o, k=k: got.__setitem__(k, o))
             for k in set(layers) | {t for t, _ in targets}]
    x = x.clone().requires_grad_(True)
    model(x)
    for h in hooks:
        h.remove()
    H, W = x.shape[2:]
    cams, van = {}, []
    for t, u in targets:
        (g,) = torch.autograd.grad(got[t][:, u].sum(), x, retain_graph=True)
        van.append(g)
    for layer in layers:
        a = got[layer]
        per_t = []
        for t, u in targets:
            (da,) = torch.autograd.grad(got[t][:, u].sum(), a, retain_graph=True)
            w = da.detach().numpy().mean(axis=(2, 3))
            cam = np.maximum(np.einsum("nk,nkyx->nyx", w, a.detach().numpy()), 0)
            wy, wx = bilinear_matrix(H, cam.shape[1]), bilinear_matrix(W, cam.shape[2])
            per_t.append(np.einsum("Yy,nyx,Xx->nYX", wy, cam, wx))
        cams[layer] = np.stack(per_t, axis=1)
    return cams, torch.stack(van, dim=1).numpy()


def bilinear_matrix(out, inp):
    """(out, inp) weights of 1-D linear interpolation with half-pixel centres
    (align_corners=False): source = (o + 0.5) * inp / out - 0.5, clamped at 0."""
    m = np.zeros((out, inp))
    for o in range(out):
        s = max((o + 0.5) * inp / out - 0.5, 0.0)
        i0 = min(int(math.floor(s)), inp - 1)
        i1 = min(i0 + 1, inp - 1)
        lam = s - i0
        m[o, i0] += 1 - lam
        m[o, i1] += lam
    return m


def check_alexnet(net, x):
    """Grad-CAM, gradient x input and guided Grad-CAM on AlexNet against hooks."""
    targets = [("fc3", 539), ("fc1", 3)]
    layers = ["conv5_relu", "conv2"]
    cams, van = independent_alexnet(x, layers, targets)
    for layer in layers:
        up, low = mr.gradcam(net, x, targets, layer)
        check(f"gradcam at {layer}", rel(up, cams[layer]) <= 1e-12 and
              float(up.abs().max()) > 0, f"vs forward hooks + numpy bilinear, rel "
              f"{rel(up, cams[layer]):.1e}, low-res {tuple(low.shape[2:])}")
    gxi = mr.gradient_x_input(net, x, targets)
    want = van * x.numpy()[:, None]
    check("gradient_x_input = vanilla * x", rel(gxi, want) <= 1e-12,
          f"vs the untraced model's autograd times x, rel {rel(gxi, want):.1e}")
    ggc = mr.guided_gradcam(net, x, targets, "conv5_relu")
    guided = mr.saliency(net, x, targets, "guided").numpy()
    want = guided * cams["conv5_relu"][:, :, None]
    check("guided_gradcam = guided * upsampled cam", rel(ggc, want) <= 1e-12,
          f"vs guided map times the hook Grad-CAM, rel {rel(ggc, want):.1e}")
    try:
        mr.gradcam(net, x, targets, "fc1")
        check("gradcam refuses a flat layer", False, "fc1 accepted")
    except mr.MethodError as e:
        check("gradcam refuses a flat layer", True, str(e))
    except Exception as e:  # accepted, then failed somewhere else
        check("gradcam refuses a flat layer", False, f"{type(e).__name__}: {e}")


def check_smoothgrad(models):
    path, _ = models["chain"]
    net = mr.load_net(path, torch.float64)
    x = inputs(2, (3, 12, 12), 2)
    targets = [("fc1", 2), ("conv2_relu", 5)]
    z = mr.torch_noise(2, 3, (3, 12, 12), 7)
    for base in mr.RULES:
        b = mr.saliency(net, x, targets, base)
        m = mr.smoothgrad(net, x, targets, z, 0.0, base, "mean")
        sq = mr.smoothgrad(net, x, targets, z, 0.0, base, "mean_square")
        var = mr.smoothgrad(net, x, targets, z, 0.0, base, "variance")
        ok = rel(m, b) <= 1e-15 and rel(sq, b * b) <= 1e-15 and \
            float(var.max()) <= 1e-28 * float((b * b).max())
        check(f"smoothgrad noise 0 = {base}", ok, f"mean rel {rel(m, b):.1e}, mean_square"
              f" vs {base}^2 rel {rel(sq, b * b):.1e}, max variance "
              f"{float(var.max()):.1e}")
    # One sample: the base map at x + sigma z, sigma from numpy's max - min.
    z1 = z[:, :1]
    sig = 0.15 * (x.numpy().reshape(2, -1).max(1) - x.numpy().reshape(2, -1).min(1))
    want = mr.saliency(net, x + torch.from_numpy(sig)[:, None, None, None] * z1[:, 0],
                       targets, "guided")
    got = mr.smoothgrad(net, x, targets, z1, 0.15, "guided", "mean")
    check("smoothgrad sample = base at x + sigma z", rel(got, want) <= 1e-15,
          f"sigma = 0.15 (max - min) per image {np.round(sig, 4).tolist()}, rel "
          f"{rel(got, want):.1e}")
    z = mr.torch_noise(2, 16, (3, 12, 12), 8)
    for base in mr.RULES:
        m = mr.smoothgrad(net, x, targets, z, 0.15, base, "mean")
        sq = mr.smoothgrad(net, x, targets, z, 0.15, base, "mean_square")
        var = mr.smoothgrad(net, x, targets, z, 0.15, base, "variance")
        scale = float(sq.max())
        short = float((sq - m * m).min())
        ok = float(var.min()) >= 0 and short >= -1e-13 * scale and \
            rel(var, sq - m * m) <= 1e-9 and float(var.max()) > 0
        check(f"smoothgrad statistics, {base}", ok, f"min variance {float(var.min()):.1e}"
              f", min(mean_square - mean^2) {short:.1e} (of max {scale:.1e}), variance = "
              f"mean_square - mean^2 rel {rel(var, sq - m * m):.1e}")
    # Independent estimates with other noise: their distance falls as 1/sqrt(samples).
    dist = {}
    for s in (16, 256):
        a = mr.smoothgrad(net, x, targets, mr.torch_noise(2, s, (3, 12, 12), 100), 0.15)
        b = mr.smoothgrad(net, x, targets, mr.torch_noise(2, s, (3, 12, 12), 200), 0.15)
        dist[s] = float(torch.linalg.norm(a - b) / torch.linalg.norm(b))
    ratio = dist[16] / dist[256] if dist[256] > 0 else math.inf
    check("smoothgrad 1/sqrt(samples)", 2.5 <= ratio <= 6.5,
          f"distance of two estimates, 16 samples {dist[16]:.3f}, 256 samples "
          f"{dist[256]:.3f}: ratio {ratio:.2f} (sqrt(16) = 4 expected)")


def check_ig(models):
    path, _ = models["chain"]
    net = mr.load_net(path, torch.float64)
    x = inputs(2, (3, 12, 12), 3)
    targets = [("fc1", 2), ("conv2_relu", 5)]
    for rule in mr.IG_RULES:
        for baseline in mr.BASELINES:
            worst = []
            for steps in (8, 32, 128):
                _, gap, fx, f0 = mr.integrated_gradients(net, x, targets, steps, rule,
                                                         baseline)
                worst.append(float((gap.abs() / (fx - f0).abs()).max()))
            ok = worst[0] > worst[1] > worst[2]
            check(f"IG gap shrinks, {rule}, {baseline}", ok, "max |gap| / |F(x) - F(x0)|"
                  " at 8, 32, 128 steps: " + ", ".join(f"{w:.2e}" for w in worst))
    path, _ = models["linear"]
    net = mr.load_net(path, torch.float64)
    targets = [("fc1", 0), ("avgpool", 3), ("conv1", 1)]
    gxi = mr.gradient_x_input(net, x, targets)
    van = mr.saliency(net, x, targets, "vanilla")
    for rule, steps in (("gausslegendre", 1), ("gausslegendre", 7), ("gausslegendre", 50),
                        ("riemann_trapezoid", 2), ("riemann_trapezoid", 50)):
        # Captum's trapezoid weights sum to 1 - 1/steps (ig_nodes).
        total = float(mr.ig_nodes(rule, steps)[1].sum())
        attr, gap, fx, f0 = mr.integrated_gradients(net, x, targets, steps, rule, "zero")
        attr_b, gap_b, fxb, f0b = mr.integrated_gradients(net, x, targets, steps, rule,
                                                          "black")
        x0 = mr.ig_baseline(net, x, "black")
        sums = attr.sum(dim=(2, 3, 4))
        compl = float(((sums - total * (fx - f0)).abs() / (fx - f0).abs()).max())
        sums_b = attr_b.sum(dim=(2, 3, 4))
        compl_b = float(((sums_b - total * (fxb - f0b)).abs() / (fxb - f0b).abs()).max())
        e1 = rel(attr, total * gxi)
        e2 = rel(attr_b, total * van * (x - x0)[:, None])
        ok = compl <= 1e-9 and compl_b <= 1e-9 and e1 <= 1e-12 and e2 <= 1e-12
        check(f"IG on a linear model, {rule} {steps}", ok,
              f"sum(attr) = {total:.4f} (F(x) - F(x0)) rel {compl:.1e} (zero), "
              f"{compl_b:.1e} (black); attr = {total:.4f} gradient_x_input rel {e1:.1e},"
              f" = {total:.4f} vanilla (x - black) rel {e2:.1e}")
    alphas, weights = mr.ig_nodes("gausslegendre", 5)
    poly = float((weights * alphas ** 9).sum())
    check("Gauss-Legendre nodes", abs(poly - 0.1) <= 1e-15 and alphas.min() > 0 and
          alphas.max() < 1, f"5 nodes integrate t^9 over [0, 1] to {poly!r} (exact 0.1)")


def check_precisions(models):
    """Every method in float32 near float64 (the same network and input)."""
    path, _ = models["graph"]
    targets = [("fc", 1), ("relu", 2)]
    x64 = inputs(2, (3, 12, 12), 4)
    p = dict(noise=0.1, base="guided", statistic="mean",
             z=mr.torch_noise(2, 4, (3, 12, 12), 9),
             steps=16, rule="gausslegendre", baseline="black", gradcam_layer="relu")
    out = {}
    for dt in (torch.float64, torch.float32):
        net = mr.load_net(path, dt)
        out[dt] = mr.run_methods(net, x64.to(dt), targets, mr.ALL_METHODS, p)
    saved = [m for m in mr.ALL_METHODS if m != "gradcam"]
    errs = [rel(out[torch.float32]["maps"][:, :, i], out[torch.float64]["maps"][:, :, i])
            for i in range(len(saved))]
    errs.append(rel(out[torch.float32]["gradcam"], out[torch.float64]["gradcam"]))
    check("float32 near float64", max(errs) <= 1e-4 and
          out[torch.float32]["maps"].dtype == np.float32,
          "max rel per method: " + ", ".join(f"{m} {e:.1e}" for m, e in
                                              zip(saved + ["gradcam"], errs)))


def check_cli(alex_path, workdir):
    """The command line on AlexNet (float64 and float32, few samples and steps, the
    128x128 inputs) and the layout of its file."""
    out = os.path.join(workdir, "alexnet_methods.h5")
    args = [alex_path, out, "--target", "fc3:539", "--samples", "2", "--steps", "3",
            "--gradcam-layer", "conv5_relu", "--statistic", "variance", "--threads", "1"]
    args += ["--inputs", os.path.join(workdir, "in.h5")]
    rc = mr.main(args)
    with h5py.File(out, "r") as f:
        a = f.attrs
        methods = list(a["methods"])
        ok = rc == 0 and methods == [m for m in mr.ALL_METHODS if m != "gradcam"]
        detail = []
        for p, dt in (("f64", np.float64), ("f32", np.float32)):
            maps, x = f[f"maps_{p}"][()], f[f"input_{p}"][()]
            ok = ok and maps.shape == (1, 1, 7, 3, 128, 128) and maps.dtype == dt
            ok = ok and f[f"gradcam_{p}"].shape == (1, 1, 128, 128)
            ok = ok and f[f"ig_gap_{p}"].shape == (1, 1)
            i = methods.index
            e1 = rel(maps[:, :, i("gradient_x_input")],
                     maps[:, :, i("vanilla")] * x[:, None])
            e2 = rel(maps[:, :, i("guided_gradcam")],
                     maps[:, :, i("guided")] * f[f"gradcam_{p}"][()][:, :, None])
            tol = 1e-15 if p == "f64" else 1e-7
            ok = ok and e1 <= tol and e2 <= tol and \
                float(maps[:, :, i("smoothgrad")].min()) >= 0  # a variance
            detail.append(f"{p}: gxi rel {e1:.1e}, guided_gradcam rel {e2:.1e}")
        gl3 = [0.5 - 0.5 * math.sqrt(0.6), 0.5, 0.5 + 0.5 * math.sqrt(0.6)]
        ok = ok and f["noise"].shape == (1, 2, 3, 128, 128) and \
            np.abs(f["ig_alphas"][()] - gl3).max() <= 1e-15
        ok = ok and a["builder"] == "torchvision" and \
            list(a["target_units_0based"]) == [539]
    check("command line, file layout", ok, f"exit {rc}; " + "; ".join(detail))


def run(fn, *args):
    """fn(*args); an exception fails the check group instead of ending the test."""
    try:
        return fn(*args)
    except Exception as e:
        check(fn.__name__, False, f"{type(e).__name__}: {e}")
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("alexnet")
    ap.add_argument("workdir")
    ap.add_argument("--image")
    args = ap.parse_args()
    torch.set_num_threads(1)  # small tensors: a second thread costs more than it gives
    os.makedirs(args.workdir, exist_ok=True)
    models = tiny_models(args.workdir)
    if args.image:
        root, _ = mr.read_model(args.alexnet)
        ns = argparse.Namespace(inputs=None, image=args.image, num_inputs=1)
        xs = mr.load_inputs(ns, root)
    else:
        x = inputs(1, (3, 224, 224), 5)
        xs = {"f64": x, "f32": x.float()}
    # The AlexNet checks take the image's central 128x128 (AlexNet runs on any size
    # from 63 up; a third of the cost of 224).
    crop = (xs["f64"].shape[2] - 128) // 2
    xs = {p: v[:, :, crop:crop + 128, crop:crop + 128].contiguous()
          for p, v in xs.items()}
    with h5py.File(os.path.join(args.workdir, "in.h5"), "w") as f:
        f["input_f64"], f["input_f32"] = xs["f64"].numpy(), xs["f32"].numpy()
    alex = (args.alexnet, xs["f64"])
    net = run(check_builders, models, alex)
    if net is not None:
        run(check_alexnet, net, alex[1])
    run(check_smoothgrad, models)
    run(check_ig, models)
    run(check_precisions, models)
    run(check_cli, args.alexnet, args.workdir)
    if FAILED:
        print(f"{len(FAILED)} check(s) failed: {', '.join(FAILED)}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
