#!/usr/bin/env python3
"""Checks scripts/export_torchvision.py against PyTorch.

    /usr/bin/python3 tests/test_export.py MODELDIR

MODELDIR holds alexnet_seed0.h5 and vgg11_bn_seed0.h5, exported with --seed 0 (the
CTest fixtures). Each file must hold exactly the parameters of torch.manual_seed(0) +
torchvision.models.ARCH(), in module order, under DNNBrain names, with the format-1
attributes. Also checks export_sequential on odd modules (conv without bias, batch
norm without affine, unsupported modules) and --weights loading.
"""
import os
import sys
import tempfile

import h5py
import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import export_torchvision as ex  # noqa: E402

failures = 0


def check(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", msg)


ALEXNET_NAMES = ("conv1 conv1_relu conv1_maxpool conv2 conv2_relu conv2_maxpool conv3 "
                 "conv3_relu conv4 conv4_relu conv5 conv5_relu conv5_maxpool avgpool "
                 "flatten dropout1 fc1 fc1_relu dropout2 fc2 fc2_relu fc3").split()


def check_file(path, arch):
    model = ex.build_torchvision(arch, seed=0)
    mods = ex._flat_modules(ex.torchvision_layers(model))
    with h5py.File(path, "r") as f:
        check(f.attrs["format"] == "salpipe-model", "format")
        check(int(f.attrs["format_version"]) == 1, "format_version")
        check(f.attrs["name"] == arch, "name")
        check(list(f.attrs["input_size"]) == [224, 224], "input_size")
        check(f.attrs["mean"].dtype == np.float64 and
              list(f.attrs["mean"]) == [0.485, 0.456, 0.406], "mean float64 decimals")
        check(list(f.attrs["std"]) == [0.229, 0.224, 0.225], "std")
        check(f.attrs["resize"] == "stretch" and int(f.attrs["resize_size"]) == 256, "resize")
        layers = f["layers"]
        check(int(layers.attrs["count"]) == len(mods), "count")
        names = [layers[f"{i:03d}"].attrs["name"] for i in range(len(mods))]
        if arch == "alexnet":
            check(names == ALEXNET_NAMES, f"alexnet names {names}")
        maxdiff, nparams = 0.0, 0
        for i, m in enumerate(mods):
            g = layers[f"{i:03d}"]
            kind = g.attrs["kind"]
            if isinstance(m, nn.Conv2d):
                check(kind == "conv2d", f"{i}: kind {kind}")
                check(list(g.attrs["kernel_size"]) == list(m.kernel_size) and
                      list(g.attrs["stride"]) == list(m.stride) and
                      list(g.attrs["padding"]) == list(m.padding) and
                      int(g.attrs["groups"]) == m.groups, f"{i}: conv attributes")
            if isinstance(m, nn.MaxPool2d):
                check(kind == "maxpool2d" and g.attrs["name"].endswith("_maxpool"),
                      f"{i}: maxpool")
            if isinstance(m, nn.BatchNorm2d):
                check(float(g.attrs["eps"]) == m.eps, f"{i}: eps")
            tensors = dict(m.named_parameters())
            tensors.update({k: v for k, v in m.named_buffers() if k.startswith("running")})
            check(sorted(tensors) == sorted(g.keys()), f"{i}: datasets {sorted(g.keys())}")
            for key, t in tensors.items():
                a = t.detach().numpy()
                d = g[key]
                check(d.dtype == np.float32 and d.shape == a.shape, f"{i}/{key}: {d.dtype} {d.shape}")
                if d.shape == a.shape:
                    diff = np.abs(d[()] - a).max()
                    maxdiff = max(maxdiff, float(diff))
                    check(np.array_equal(d[()], a), f"{i}/{key} differs by {diff}")
                nparams += a.size if key in ("weight", "bias") else 0
        want = sum(p.numel() for p in model.parameters())
        check(nparams == want, f"{nparams} parameters, torch has {want}")
        print(f"{path}: {len(mods)} layers, {nparams} parameters, max difference {maxdiff}")


def check_sequential():
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "odd.h5")
    torch.manual_seed(3)
    net = [nn.Conv2d(1, 2, 3, bias=False), nn.BatchNorm2d(2, affine=False),
           nn.Identity(), nn.Sequential(nn.ReLU(), nn.MaxPool2d(2)), nn.ReLU(),
           nn.Flatten(), nn.Linear(2, 2)]
    pre = dict(ex.IMAGENET_PREPROCESS, input_channels=1, mean=(0.5,), std=(0.25,),
               input_size=(4, 4))
    names = ex.export_sequential(net, path, "odd", pre)
    check(names == ["conv1", "conv1_bn", "conv1_relu", "conv1_maxpool", "conv1_relu_2",
                    "flatten", "fc1"], f"odd names {names}")
    with h5py.File(path, "r") as f:
        check(np.all(f["layers/000/bias"][()] == 0), "conv without bias writes zeros")
        check(np.all(f["layers/001/weight"][()] == 1) and np.all(f["layers/001/bias"][()] == 0),
              "batch norm without affine writes ones and zeros")
    for bad, word in ((nn.Sigmoid(), "Sigmoid"), (nn.Conv2d(1, 1, 3, dilation=2), "dilation"),
                      (nn.Flatten(0), "Flatten"), (nn.AdaptiveAvgPool2d((None, 2)), "None")):
        try:
            ex.export_sequential([bad], os.path.join(tmp, "bad.h5"), "bad", pre)
            check(False, f"{bad} was exported")
        except ex.ExportError as e:
            check(word in str(e) and "layer 0" in str(e), f"message for {bad}: {e}")
    check(not os.path.exists(os.path.join(tmp, "bad.h5")), "no partial file left")

    # --weights: a state dict replaces the seeded weights.
    sd = ex.build_torchvision("alexnet", seed=5).state_dict()
    wpath = os.path.join(tmp, "a.pth")
    torch.save(sd, wpath)
    model = ex.build_torchvision("alexnet", weights=wpath, seed=0)
    check(all(torch.equal(sd[k], v) for k, v in model.state_dict().items()),
          "--weights loads the state dict")
    torch.save({"conv.weight": torch.zeros(1)}, wpath)
    try:
        ex.build_torchvision("alexnet", weights=wpath)
        check(False, "a foreign state dict was accepted")
    except ex.ExportError as e:
        check("does not fit" in str(e), f"foreign state dict message: {e}")
    os.remove(wpath)
    os.remove(path)
    os.rmdir(tmp)


def main():
    d = sys.argv[1]
    check_file(os.path.join(d, "alexnet_seed0.h5"), "alexnet")
    check_file(os.path.join(d, "vgg11_bn_seed0.h5"), "vgg11_bn")
    check_sequential()
    print(f"{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
