#!/usr/bin/env python3
"""Reads salpipe output files the way users do (h5py, xarray + h5netcdf) and checks
them against the values tests/test_output.c wrote. Exits 1 with a message on the
first problem.

  check_output.py check FILE PREC LEVEL STATUS   STATUS like "1,-1,0" per image
  check_output.py readable FILE                 opens after a kill, done maps present
  check_output.py sha256 MANIFEST               lines "HEX PATH" to verify
  check_output.py realmap OUT.raw               a real AlexNet map for benchmarks
"""
import hashlib
import math
import sys

import numpy as np

FAIL_MESSAGE = "cannot decode 'b.jpg': not a JPEG file ?"  # \xff became '?'
IMAGES = ["a.jpg", "b.jpg", "dir/\u00fc.png"]
TARGETS = [("conv5", 3), ("fc3", 540)]
METHODS = ["vanilla", "guided"]


def fail(msg):
    print("check_output.py: FAIL: " + msg)
    sys.exit(1)


def expected_map(i, t, m, shape, dtype):
    """The formula of test_output.c's fill_map, in the same order of operations."""
    C, H, W = shape
    c = np.arange(C, dtype=np.float64)[:, None, None]
    y = np.arange(H, dtype=np.float64)[None, :, None]
    x = np.arange(W, dtype=np.float64)[None, None, :]
    base = i * 1000.0 + t * 100.0 + m * 10.0 + c + y / 8.0 + x / 64.0
    if dtype == np.float64:
        k = (y * W + x) + 1.0
        base = base + 1e-12 * k
    base = np.where(np.arange(C)[:, None, None] % 2 == 1, -base, base)
    return base.astype(dtype)


def expected_activation(i, t):
    return i * 10.0 + t + 0.25


def as_str(v):
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def check(path, prec, level, status):
    import h5py
    import xarray as xr

    dtype = np.float64 if prec == "f64" else np.float32
    status = [int(s) for s in status.split(",")]
    n, T, M = len(status), len(TARGETS), len(METHODS)
    with h5py.File(path, "r") as f:
        s = f["saliency"]
        if s.dtype != dtype:
            fail(f"/saliency dtype {s.dtype}, expected {np.dtype(dtype)}")
        if s.shape[:3] != (n, T, M):
            fail(f"/saliency shape {s.shape}")
        shape = s.shape[3:]
        if s.chunks != (1, 1, 1) + shape:
            fail(f"/saliency chunks {s.chunks}")
        if level == 0:
            if s.compression is not None or s.shuffle:
                fail("level 0 must have no filters")
        elif s.compression != "gzip" or s.compression_opts != level or not s.shuffle:
            fail(f"filters {s.compression} {s.compression_opts} shuffle={s.shuffle}")
        if not math.isnan(s.fillvalue):
            fail(f"fill value {s.fillvalue}")
        got_status = list(f["status"][...])
        if got_status != status or f["status"].dtype != np.int8:
            fail(f"/status {got_status} ({f['status'].dtype}), expected {status}")
        errors = [as_str(e) for e in f["error"][...]]
        data = s[...]
        act = f["activation"][...]
        for i in range(n):
            for t in range(T):
                for m in range(M):
                    want = expected_map(i, t, m, shape, dtype)
                    got = data[i, t, m]
                    if status[i] == 1:
                        if not np.array_equal(got, want):
                            fail(f"map ({i},{t},{m}) differs: max |d| = "
                                 f"{np.nanmax(np.abs(got - want))}")
                    elif not np.all(np.isnan(got)):
                        fail(f"map ({i},{t},{m}) of a not-done image is not NaN")
                a = act[i, t]
                if status[i] == 1 and a != expected_activation(i, t):
                    fail(f"activation ({i},{t}) = {a}")
                if status[i] != 1 and not math.isnan(a):
                    fail(f"activation ({i},{t}) of a not-done image = {a}")
            want_err = FAIL_MESSAGE if status[i] == -1 else ""
            if errors[i] != want_err:
                fail(f"/error[{i}] = {errors[i]!r}, expected {want_err!r}")
        labels = {
            "image": IMAGES[:n],
            "target": [f"{l}:{u}" for l, u in TARGETS],
            "target_layer": [l for l, _ in TARGETS],
            "method": METHODS,
        }
        for name, want in labels.items():
            got = [as_str(v) for v in f[name][...]]
            if got != want:
                fail(f"/{name} = {got}, expected {want}")
            if h5py.check_string_dtype(f[name].dtype).encoding != "utf-8":
                fail(f"/{name} is not UTF-8")
        if list(f["target_unit"][...]) != [u for _, u in TARGETS]:
            fail("/target_unit")
        for name, size in zip(["channel", "y", "x"], shape):
            if list(f[name][...]) != list(range(size)):
                fail(f"/{name} coordinates")
        want_dims = ["image", "target", "method", "channel", "y", "x"]
        names = [d[0].name.split("/")[-1] if len(d) == 1 else None for d in s.dims]
        keys = [list(d.keys()) for d in s.dims]
        if names != want_dims or keys != [[k] for k in want_dims]:
            fail(f"/saliency dimension scales {names} {keys}")
        a = f.attrs
        want_attrs = {
            "salpipe_format": "salpipe-saliency", "salpipe_version": "0.1.0-test",
            "config_path": "job.toml", "model_path": "models/alexnet.h5",
            "model_name": "alexnet", "resize": "stretch",
            "precision": "float64" if prec == "f64" else "float32",
        }
        for k, v in want_attrs.items():
            if as_str(a[k]) != v:
                fail(f"attribute {k} = {a[k]!r}, expected {v!r}")
        if len(as_str(a["model_sha256"])) != 64 or "[model]" not in as_str(a["config"]):
            fail("model_sha256/config attributes")
        if list(a["input_size"]) != [224, 224] or int(a["input_channels"]) != 3:
            fail("input_size / input_channels")
        if list(a["mean"]) != [0.485, 0.456, 0.406] or list(a["std"]) != [0.229, 0.224, 0.225]:
            fail(f"mean/std {a['mean']} {a['std']}")
        if int(a["resize_size"]) != 256 or not as_str(a["created"]).endswith("Z"):
            fail("resize_size / created")

    ds = xr.open_dataset(path, engine="h5netcdf")
    v = ds["saliency"]
    if v.dims != ("image", "target", "method", "channel", "y", "x"):
        fail(f"xarray dims {v.dims}")
    if ds["activation"].dims != ("image", "target") or ds["status"].dims != ("image",):
        fail("xarray dims of /activation or /status")
    if ds["error"].dims != ("image",) or ds["target_unit"].dims != ("target",):
        fail("xarray dims of /error or /target_unit")
    if [str(x) for x in ds["image"].values] != IMAGES[:n]:
        fail(f"xarray image labels {ds['image'].values}")
    if list(ds["method"].values) != METHODS:
        fail(f"xarray method labels {ds['method'].values}")
    if [str(x) for x in ds["target"].values] != labels["target"]:
        fail("xarray target labels")
    if n > 0 and status[0] == 1:
        # A dict, as `method` is also a keyword argument of sel().
        sel = v.sel({"image": "a.jpg", "target": "fc3:540", "method": "guided"}).values
        if not np.array_equal(sel, expected_map(0, 1, 1, shape, dtype)):
            fail("xarray label selection")
    ds.close()
    print(f"check_output.py: {path}: ok ({prec}, level {level}, status {status})")


def readable(path):
    """A file a writer was killed in: opens in h5py and xarray, done maps are there."""
    import h5py
    import xarray as xr

    with h5py.File(path, "r") as f:
        status = f["status"][...]
        done = np.flatnonzero(status == 1)
        s = f["saliency"]
        for i in done:
            if np.isnan(s[i]).any():
                fail(f"image {i} has status 1 but NaN maps")
        f["error"][...]
        f["activation"][...]
    ds = xr.open_dataset(path, engine="h5netcdf")
    ds["status"].load()
    ds["error"].load()
    if len(done):
        ds["saliency"].isel(image=int(done[-1])).load()
    ds.close()
    print(f"check_output.py: {path}: readable, {len(done)} of {len(status)} images done")


def sha256(manifest):
    n = 0
    with open(manifest) as f:
        for line in f:
            hexd, path = line.rstrip("\n").split(" ", 1)
            with open(path, "rb") as g:
                want = hashlib.sha256(g.read()).hexdigest()
            if want != hexd:
                fail(f"{path}: sp_sha256_file {hexd}, hashlib {want}")
            n += 1
    print(f"check_output.py: {n} SHA-256 digests agree with hashlib")


def realmap(out):
    """Vanilla gradient of fc3 unit 540 of torchvision's AlexNet (seed 0) on the
    shared photo (or seeded noise), float32 (3,224,224): realistic data to time the
    compressor on."""
    import os
    import torch
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.alexnet().eval()
    photo = os.path.join(os.path.dirname(__file__), "../../shared/data/n03223299_27176.JPEG")
    if os.path.exists(photo):
        from PIL import Image
        import torchvision.transforms as T
        tf = T.Compose([T.Resize((224, 224)), T.ToTensor(),
                        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
        x = tf(Image.open(photo).convert("RGB"))[None]
    else:
        x = torch.randn(1, 3, 224, 224)
    x.requires_grad_(True)
    net(x)[0, 539].backward()
    x.grad[0].numpy().astype(np.float32).tofile(out)
    print(f"check_output.py: wrote {out} from {'the photo' if os.path.exists(photo) else 'noise'}")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif len(sys.argv) == 3 and sys.argv[1] == "readable":
        readable(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "sha256":
        sha256(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "realmap":
        realmap(sys.argv[2])
    else:
        fail(__doc__)
