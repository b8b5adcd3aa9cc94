#!/usr/bin/env python3
"""The output file of SPEC §4, read with h5py and with xarray (engine h5netcdf).

    test_format.py --salpipe ... --model ... --data ... --work ...

One run without mpirun: three images from a `list` file (with a comment and a blank
line), targets fc3 [540, 23] and conv2 "1-2" (a range), methods ["guided",
"vanilla"] (not the default order), compression 4. Then checks every dataset's
type, shape and content, the chunking and filters, the provenance attributes and the
dimension scales, and that xarray sees the dims image, target, method, channel, y, x
with string coordinate labels and the same numbers as h5py.
"""
import hashlib
import os

import h5py
import numpy as np

from common import (check, fresh_dir, main_guard, parser, require, salpipe,
                    strings, write_config)

TARGET_LABELS = ["fc3:540", "fc3:23", "conv2:1", "conv2:2"]
METHODS = ["guided", "vanilla"]
DIMS = ("image", "target", "method", "channel", "y", "x")


def attr_text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        return " ".join(attr_text(x) for x in v.ravel())
    return str(v)


def check_h5py(path, listed, cfg_text, model):
    print("\n== h5py")
    with h5py.File(path, "r") as f:
        for name in ("saliency", "activation", "image", "target", "target_layer",
                     "target_unit", "method", "status", "error"):
            require(name in f, f"/{name} exists")
        sal = f["saliency"]
        check(sal.shape == (3, 4, 2, 3, 224, 224), "/saliency shape (3, 4, 2, 3, 224, 224)",
              f"{sal.shape}")
        check(sal.dtype == np.float32, "/saliency float32", f"{sal.dtype}")
        check(sal.chunks == (1, 1, 1, 3, 224, 224), "/saliency chunk (1, 1, 1, 3, 224, 224)",
              f"{sal.chunks}")
        check(sal.compression == "gzip" and sal.compression_opts == 4 and sal.shuffle,
              "/saliency shuffle + deflate level 4",
              f"{sal.compression} {sal.compression_opts} shuffle={sal.shuffle}")
        data = sal[()]
        check(not np.isnan(data).any(), "no NaN in /saliency after a full run")
        check(np.all(np.abs(data).reshape(24, -1).max(axis=1) > 0), "no all-zero map")
        act = f["activation"]
        check(act.shape == (3, 4) and act.dtype == np.float32, "/activation float32 (3, 4)",
              f"{act.dtype}{act.shape}")
        check(not np.isnan(act[()]).any(), "no NaN in /activation")

        for name, n in (("image", 3), ("target", 4), ("target_layer", 4), ("method", 2),
                        ("error", 3)):
            ds = f[name]
            info = h5py.check_string_dtype(ds.dtype)
            check(info is not None and info.length is None and info.encoding == "utf-8",
                  f"/{name} is a variable-length UTF-8 string", f"{ds.dtype} {info}")
            check(ds.shape == (n,), f"/{name} shape ({n},)", f"{ds.shape}")
        check(strings(f["image"]) == listed, "/image as listed in images.txt",
              f"{strings(f['image'])}")
        check(strings(f["target"]) == TARGET_LABELS, "/target 'layer:unit'",
              f"{strings(f['target'])}")
        check(strings(f["target_layer"]) == ["fc3", "fc3", "conv2", "conv2"], "/target_layer",
              f"{strings(f['target_layer'])}")
        tu = f["target_unit"]
        check(tu.dtype == np.int32 and list(tu[()]) == [540, 23, 1, 2],
              "/target_unit int32 [540, 23, 1, 2] (1-based)", f"{tu.dtype} {tu[()]}")
        check(strings(f["method"]) == METHODS, "/method in config order",
              f"{strings(f['method'])}")
        st = f["status"]
        check(st.dtype == np.int8 and list(st[()]) == [1, 1, 1], "/status int8, all 1",
              f"{st.dtype} {st[()]}")
        check(strings(f["error"]) == ["", "", ""], "/error all empty",
              f"{strings(f['error'])}")

        print("  root attributes:", ", ".join(sorted(f.attrs)))
        texts = {k: attr_text(v) for k, v in f.attrs.items()}
        with open(model, "rb") as m:
            sha = hashlib.sha256(m.read()).hexdigest()

        def has(pred, what):
            keys = [k for k, v in texts.items() if pred(k.lower(), v)]
            check(keys, f"root attribute: {what}", f"{keys}")

        has(lambda k, v: "version" in k and v.strip(), "salpipe version")
        has(lambda k, v: v == cfg_text, "the config text, verbatim")
        has(lambda k, v: "model" in k and os.path.basename(model) in v, "model path")
        has(lambda k, v: v.strip().lower() == sha, "model SHA-256")
        has(lambda k, v: "alexnet" in v.lower() and "path" not in k, "model name")
        has(lambda k, v: "mean" in k and "0.485" in v, "preprocessing mean")
        has(lambda k, v: "std" in k and "0.229" in v, "preprocessing std")
        has(lambda k, v: "stretch" in v, "resize mode")
        has(lambda k, v: "224" in v and ("size" in k or "shape" in k), "input size")
        has(lambda k, v: "creat" in k or "time" in k or "date" in k, "creation time")

        print("  dimension scales of /saliency:")
        for i, dim in enumerate(DIMS):
            scales = [s.name for s in sal.dims[i].values()]
            print(f"    axis {i}: {scales}")
            check(len(scales) == 1 and scales[0].lstrip("/") == dim,
                  f"axis {i} has the dimension scale '{dim}'", f"{scales}")
        return data, act[()]


def check_xarray(path, listed, data, act):
    print("\n== xarray.open_dataset(engine='h5netcdf')")
    import xarray as xr
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        print("  " + str(ds).replace("\n", "\n  "))
        sal = ds["saliency"]
        check(sal.dims == DIMS, f"saliency dims {DIMS}", f"{sal.dims}")
        check(dict(sal.sizes) == dict(zip(DIMS, (3, 4, 2, 3, 224, 224))), "saliency sizes",
              f"{dict(sal.sizes)}")
        check(ds["activation"].dims == ("image", "target"), "activation dims (image, target)",
              f"{ds['activation'].dims}")
        for name in ("status", "error"):
            check(ds[name].dims == ("image",), f"{name} dims (image,)", f"{ds[name].dims}")
        for name, want in (("image", listed), ("target", TARGET_LABELS),
                           ("method", METHODS)):
            vals = list(ds[name].values)
            check(all(isinstance(v, str) for v in vals) and vals == want,
                  f"coordinate {name} holds the str labels",
                  f"{[type(v).__name__ for v in vals]} {vals}")
        # a dict, since `method` is also a keyword of .sel (the fill method)
        picked = sal.sel({"target": "fc3:23", "method": "vanilla"}).values
        check(np.array_equal(picked, data[:, 1, 1]),
              "sel({'target': 'fc3:23', 'method': 'vanilla'}) equals h5py's [:, 1, 1]")
        check(np.array_equal(ds["activation"].values, act), "activation equals h5py's")


def main():
    args = parser(__doc__).parse_args()
    fresh_dir(args.work)
    e2e = os.path.join(args.data, "e2e")
    listed = [os.path.relpath(os.path.join(e2e, n), args.work)
              for n in ("crop_a.png", "crop_b.jpg", "crop_c_gray.png")]
    with open(os.path.join(args.work, "images.txt"), "w") as f:
        f.write("# three crops\n" + listed[0] + "\n\n" + listed[1] + "\n" + listed[2] + "\n")
    cfg = write_config(os.path.join(args.work, "format.toml"), args.model,
                       {"list": "images.txt"}, [("fc3", [540, 23]), ("conv2", "1-2")],
                       "out/format.h5", METHODS, run={"batch": 2},
                       output_extra={"compression": 4})
    os.makedirs(os.path.join(args.work, "out"))
    with open(cfg) as f:
        cfg_text = f.read()
    print("== run")
    r = salpipe(args, [cfg])
    require(r.rc == 0, "exit 0", f"exit {r.rc}")
    out = os.path.join(args.work, "out", "format.h5")
    require(os.path.exists(out), "output written relative to the config's directory", out)
    data, act = check_h5py(out, listed, cfg_text, args.model)
    check_xarray(out, listed, data, act)


if __name__ == "__main__":
    main_guard(main)
