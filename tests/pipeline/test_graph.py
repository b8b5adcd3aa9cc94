#!/usr/bin/env python3
"""Graph networks (issue 11) through the whole program: export, config, mpirun, output.

    test_graph.py e2e --exporter scripts/export_torchvision.py --salpipe ... --data ...
    test_graph.py cli --exporter ... --salpipe ... --data ... --work ...

e2e: seeded resnet18 and googlenet (`--transform-input on`, so GoogLeNet's input
transform is a node of the file) exported with the exporter; a config per network
with DNNBrain's layer name (`layer3_basicblock1`, `inception4c`), the same node under
its inner name (`layer3.1.relu_2`, `inception4c.cat`: the output records the layer as
written) and `fc` unit 540; vanilla and guided, float64, `mpiexec -n 2`,
batch 1 (both ranks work). The reference is computed here by PyTorch float64 on the
torchvision model itself (torch.manual_seed(0) + the constructor, the exporter's
rule): forward hooks on the DNNBrain-named modules (model.layer3[1],
model.inception4c, model.fc) give the target scalar (the mean of the channel's map,
an fc unit's value), and the method's ReLU rule is applied at every ReLU call, module
or functional, by replacing torch.nn.functional.relu and nn.ReLU.forward while the
reference runs (the number of calls is checked: 17 in resnet18, 57 in googlenet).
Images go through salpipe's own loading; the reference reads the same files with
Pillow (convert('RGB'), Resize((224, 224))) and normalizes in float64, as
make_data.py does. Every map within 1e-9 of the reference's maximum, activations to
1e-9 relative, labels as written in the config. About 60 s of CPU (PyTorch's float64
convolutions are slow: the reference takes most of it), 1-2 min on 2 busy cores.

cli: on exported resnet18 and inception_v3 (no run): `--layers` lists every node with
its name, alias, kind, output shape and inputs, and the input size and resize rule;
`--check` prints 299x299 and `Resize((299, 299))` for Inception-v3; a layer the model
lacks (`layer3_bottleneck5` on ResNet-18) is refused with exit 2, the DNNBrain names,
a did-you-mean and a pointer to --layers, in a message of reasonable length; the same
unit under a node's alias and its name is refused (exit 2). About 20-40 s.
"""
import os
import re
import subprocess
import sys
import time

import numpy as np

from common import (check, fresh_dir, main_guard, parser, read_output, require, salpipe,
                    write_config)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))

METHODS = ["vanilla", "guided"]
SEED = 0
# arch: (exporter flags, [(layer as written, units, module path for the hook)],
#        ReLU calls in one forward)
NETS = {
    "resnet18": ([], [("layer3_basicblock1", [5], "layer3.1"),
                      ("layer3.1.relu_2", [77], "layer3.1"),
                      ("fc", [540], "fc")], 17),
    "googlenet": (["--transform-input", "on"], [("inception4c", [3], "inception4c"),
                                                ("inception4c.cat", [300], "inception4c"),
                                                ("fc", [540], "fc")], 57),
}


def export(args, arch, flags, path):
    """Runs the exporter; raises Fatal when it fails."""
    cmd = [sys.executable, args.exporter, arch, "-o", path, "--seed", str(SEED)] + flags
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    print(f"    $ {' '.join(cmd)}\n    exit {p.returncode} after "
          f"{time.perf_counter() - t0:.1f} s")
    if p.returncode != 0:
        print(p.stdout[-3000:], p.stderr[-3000:])
    require(p.returncode == 0 and os.path.exists(path), f"export {arch}", path)
    return path


def build_torch(arch):
    """The exporter's seeded network (HELPERS contract): torch.manual_seed, then the
    constructor; GoogLeNet without aux heads, its own init, transform_input on."""
    import torch
    import torchvision
    torch.manual_seed(SEED)
    if arch == "googlenet":
        model = torchvision.models.googlenet(aux_logits=False, init_weights=True,
                                             transform_input=True)
    else:
        model = getattr(torchvision.models, arch)()
    model = model.eval().double()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class RuleReLUs:
    """While active, every ReLU call (F.relu, torch.nn.ReLU modules) applies the
    current method's backward rule (SPEC §1) and is counted."""

    def __init__(self):
        import torch
        self.torch = torch
        self.method = "vanilla"
        self.calls = 0
        rules = self

        class Rule(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x.clamp(min=0)

            @staticmethod
            def backward(ctx, g):
                (x,) = ctx.saved_tensors
                if rules.method == "vanilla":
                    return g * (x > 0)
                if rules.method == "guided":
                    return g * (x > 0) * (g > 0)
                raise ValueError(rules.method)

        self.rule = Rule

    def relu(self, x, inplace=False):
        self.calls += 1
        return self.rule.apply(x)

    def __enter__(self):
        nn, F = self.torch.nn, self.torch.nn.functional
        self.saved = (F.relu, nn.ReLU.forward)
        F.relu = self.relu
        nn.ReLU.forward = lambda mod, x: self.relu(x)
        return self

    def __exit__(self, *exc):
        nn, F = self.torch.nn, self.torch.nn.functional
        F.relu, nn.ReLU.forward = self.saved


def reference(arch, targets, relu_calls, images):
    """(activations (N, T), maps (N, T, M, 3, 224, 224)) of PyTorch float64."""
    import torch
    from PIL import Image
    import make_reference as mr
    torch.set_num_threads(2)
    model = build_torch(arch)
    pixels = [np.asarray(Image.open(p).convert("RGB").resize((224, 224), Image.BILINEAR),
                         dtype=np.uint8) for p in images]
    x64, _ = mr.normalize(pixels)
    x = x64.clone().requires_grad_(True)
    outs = {}
    handles = [model.get_submodule(path).register_forward_hook(
        lambda mod, inp, out, path=path: outs.__setitem__(path, out))
        for path in {t[2] for t in targets}]
    flat = [(layer, u, path) for layer, units, path in targets for u in units]
    acts = np.zeros((len(images), len(flat)))
    maps = np.zeros((len(images), len(flat), len(METHODS)) + tuple(x.shape[1:]))
    with RuleReLUs() as rules:
        model(x)
        check(rules.calls == relu_calls, f"{arch}: the reference's rule ran at every ReLU "
              f"call ({relu_calls})", f"{rules.calls} calls")
        for t, (layer, unit, path) in enumerate(flat):
            y = outs[path][:, unit - 1]
            per_image = y.mean(dim=(1, 2)) if y.dim() == 3 else y
            acts[:, t] = per_image.detach().numpy()
            for m, method in enumerate(METHODS):
                rules.method = method
                (g,) = torch.autograd.grad(per_image.sum(), x, retain_graph=True)
                maps[:, t, m] = g.numpy()
    for h in handles:
        h.remove()
    return acts, maps


def run_e2e(args):
    e2e = os.path.join(args.data, "e2e")
    images = [os.path.join(e2e, n) for n in ("crop_a.png", "crop_c_gray.png")]
    for arch, (flags, targets, relu_calls) in NETS.items():
        print(f"\n== {arch}")
        model = export(args, arch, flags, os.path.join(args.work, f"{arch}.h5"))
        out = os.path.join(args.work, f"{arch}_out.h5")
        cfg = write_config(os.path.join(args.work, f"{arch}.toml"), model,
                           {"files": images}, [(l, u) for l, u, _ in targets], out, METHODS,
                           run={"batch": 1, "precision": "float64"},
                           output_extra={"compression": 0})
        r = salpipe(args, [cfg], 2, timeout=600)
        if not check(r.rc == 0 and os.path.exists(out), f"{arch}: mpiexec -n 2: exit 0, "
                     "output written", f"exit {r.rc}"):
            continue
        d = read_output(out)
        labels = [f"{l}:{u}" for l, units, _ in targets for u in units]
        check(d["target"] == labels, f"{arch}: /target records the layers as written",
              f"{d['target']}")
        check(d["target_layer"] == [l for l, units, _ in targets for _ in units],
              f"{arch}: /target_layer as written", f"{d['target_layer']}")
        check(np.all(d["status"] == 1), f"{arch}: /status all 1", f"{d['status']}")
        t0 = time.perf_counter()
        acts, ref = reference(arch, targets, relu_calls, images)
        print(f"    PyTorch float64 reference: {time.perf_counter() - t0:.1f} s")
        s = d["saliency"]
        if not check(s.shape == ref.shape and s.dtype == np.float64,
                     f"{arch}: /saliency float64 {ref.shape}", f"{s.dtype}{s.shape}"):
            continue
        nt = ref.shape[1]
        flat_s, flat_r = s.reshape(len(images), nt, len(METHODS), -1), ref.reshape(
            len(images), nt, len(METHODS), -1)
        scale = np.abs(flat_r).max(axis=-1)
        check(np.all(scale > 0), f"{arch}: every reference map is non-zero")
        rel = np.abs(flat_s - flat_r).max(axis=-1) / scale
        check(np.all(rel <= 1e-9), f"{arch}: {rel.size} maps, max|diff| / max|torch64| "
              "<= 1e-9", f"worst {rel.max():.3g}")
        for t, label in enumerate(labels):
            print(f"    {label:22s} " + "  ".join(
                f"{m} {rel[:, t, i].max():.2g}" for i, m in enumerate(METHODS)))
        # guided differs from vanilla (a rule that was not applied would pass the
        # comparison above only if both sides skipped it)
        check(np.all(np.abs(ref[:, :, 0] - ref[:, :, 1]).max(axis=(-3, -2, -1)) > 0),
              f"{arch}: guided maps differ from vanilla ones")
        ascale = np.maximum(np.abs(acts).max(axis=0, keepdims=True), 1e-300)
        arel = np.abs(d["activation"] - acts) / ascale
        check(np.all(arel <= 1e-9), f"{arch}: /activation within 1e-9 of torch64 "
              "(relative to the target's largest)", f"worst {arel.max():.3g}")


# ---- cli -------------------------------------------------------------------------------

def layer_rows(text):
    """--layers rows: [index, name, alias, kind, shape, units, inputs]."""
    rows = []
    for line in text.splitlines():
        f = line.split()
        if len(f) == 7 and f[0].isdigit():
            rows.append(f)
    return rows


def dnnbrain_names(rows, want):
    """{DNNBrain name: row} for the names of `want` the rows carry, as an alias or,
    where the alias would equal the name (fc, avgpool), as the name itself."""
    out = {}
    for x in rows:
        for name in (x[2], x[1]):
            if name in want and name not in out:
                out[name] = x
    return out


def run_cli(args):
    e2e = os.path.join(args.data, "e2e")
    images = [os.path.join(e2e, "crop_a.png")]

    print("\n== resnet18: --layers")
    model = export(args, "resnet18", [], os.path.join(args.work, "resnet18.h5"))
    r = salpipe(args, ["--layers", model])
    check(r.rc == 0, "--layers: exit 0", f"exit {r.rc}")
    rows = layer_rows(r.out)
    check(len(rows) > 60 and [int(x[0]) for x in rows] == list(range(len(rows))),
          "one row per node, numbered from 0", f"{len(rows)} rows")
    want = (["conv", "bn", "relu", "maxpool"] +
            [f"layer{n}_basicblock{k}" for n in range(1, 5) for k in range(2)] +
            ["avgpool", "fc"])
    by_alias = dnnbrain_names(rows, want)
    check(sorted(by_alias) == sorted(want), "every DNNBrain ResNet-18 name is a node",
          f"missing {sorted(set(want) - set(by_alias))}")
    b = by_alias.get("layer3_basicblock1")
    check(b is not None and b[1] == "layer3.1.relu_2" and b[3] == "relu"
          and b[4] == "256x14x14" and b[5] == "256",
          "layer3_basicblock1 is layer3.1.relu_2, a relu of 256x14x14", f"{b}")
    add = [x for x in rows if x[1] == "layer3.1.add"]
    check(len(add) == 1 and add[0][3] == "add" and add[0][6] == "layer3.1.bn2,layer3.0.relu_2",
          "layer3.1.add reads layer3.1.bn2 and layer3.0.relu_2",
          f"{add[0] if add else None}")
    check(rows and rows[0][6] == "input", "the first node reads the network input",
          f"{rows[0] if rows else None}")
    fc = by_alias.get("fc")
    check(fc is not None and fc[5] == "1000", "fc has 1000 units", f"{fc}")
    check(re.search(r"input\s+3x224x224", r.out) and "Resize((224, 224))" in r.out and
          "0.485" in r.out and "0.229" in r.out,
          "--layers states the input size, resize rule, mean and std")

    print("\n== resnet18: a layer the model lacks")
    cfg = write_config(os.path.join(args.work, "bad_layer.toml"), model, {"files": images},
                       [("fc", [1]), ("layer3_bottleneck5", [1])], "out.h5", METHODS)
    r = salpipe(args, ["--check", cfg])
    err = r.err
    check(r.rc == 2, "exit 2", f"exit {r.rc}")
    check("bad_layer.toml:" in err and "layer3_bottleneck5" in err,
          "the message names the config (with the line) and the layer")
    check(all(n in err for n in ("layer3_basicblock1", "layer4_basicblock1", "maxpool",
                                 "avgpool", " fc")) and "--layers" in err,
          "it lists the DNNBrain names and points to --layers")
    check(len(err) < 800 and "layer2.0.downsample" not in err,
          "it does not list every inner node", f"{len(err)} characters")
    cfg = write_config(os.path.join(args.work, "typo.toml"), model, {"files": images},
                       [("layer3_basicblok1", [1])], "out.h5", METHODS)
    r = salpipe(args, ["--check", cfg])
    check(r.rc == 2 and "did you mean 'layer3_basicblock1'" in r.err,
          "a typo gets a did-you-mean", f"exit {r.rc}")

    print("\n== resnet18: one unit under the alias and the name")
    cfg = write_config(os.path.join(args.work, "twice.toml"), model, {"files": images},
                       [("layer3_basicblock1", [5, 6]), ("layer3.1.relu_2", [6])],
                       "out.h5", METHODS)
    r = salpipe(args, ["--check", cfg])
    check(r.rc == 2 and "layer3.1.relu_2" in r.err and "layer3_basicblock1" in r.err
          and "once" in r.err, "refused, both spellings named", f"exit {r.rc}")

    print("\n== inception_v3: --layers and --check")
    model = export(args, "inception_v3", ["--transform-input", "on"],
                   os.path.join(args.work, "inception_v3.h5"))
    r = salpipe(args, ["--layers", model])
    check(r.rc == 0, "--layers: exit 0", f"exit {r.rc}")
    check(re.search(r"input\s+3x299x299", r.out) and "stretch: Resize((299, 299))" in r.out,
          "--layers: input 3x299x299, stretch: Resize((299, 299))")
    rows = layer_rows(r.out)
    want = (["conv1", "conv2", "conv3", "maxpool1", "conv4", "conv5", "maxpool2"] +
            [f"inception{i}" for i in range(1, 12)] + ["avgpool", "fc"])
    names = dnnbrain_names(rows, want)
    order = sorted(names, key=lambda k: int(names[k][0]))
    check(order == want, "DNNBrain's Inception-v3 names are nodes, in order", f"{order}")
    check(names.get("inception5", [""] * 7)[1] == "Mixed_6b.cat",
          "inception5 is Mixed_6b's output", f"{names.get('inception5')}")
    check(rows and rows[0][1] == "transform_input" and rows[0][3] == "channel_affine",
          "the first node is transform_input", f"{rows[0] if rows else None}")
    cfg = write_config(os.path.join(args.work, "inception.toml"), model, {"files": images},
                       [("inception5", [1, 2]), ("fc", [540])], "out.h5", METHODS)
    r = salpipe(args, ["--check", cfg])
    check(r.rc == 0, "--check: exit 0", f"exit {r.rc}")
    check(re.search(r"input\s+3x299x299", r.out) and "stretch: Resize((299, 299))" in r.out,
          "--check prints the model file's 299x299 stretch")
    check("inception5:1" in r.out and "fc:540" in r.out, "--check lists the targets")
    cfg = write_config(os.path.join(args.work, "inception_bad.toml"), model,
                       {"files": images}, [("inception12", [1])], "out.h5", METHODS)
    r = salpipe(args, ["--check", cfg])
    check(r.rc == 2 and "inception1 .. inception11" in r.err and len(r.err) < 800,
          "an unknown layer: exit 2, the inception run shortened", f"exit {r.rc}, "
          f"{len(r.err)} characters")


def main():
    ap = parser(__doc__)
    ap.add_argument("mode", choices=("e2e", "cli"))
    ap.add_argument("--exporter", required=True, help="scripts/export_torchvision.py")
    args = ap.parse_args()
    args.exporter = os.path.abspath(args.exporter)
    fresh_dir(args.work)
    {"e2e": run_e2e, "cli": run_cli}[args.mode](args)


if __name__ == "__main__":
    main_guard(main)
