#!/usr/bin/env python3
"""Config errors, output errors, bad images and the command line (SPEC §2-4).

    test_errors.py config CASE   one config error: exit 2, stderr names the config file,
                                 the key and its line; no output file is created
    test_errors.py mismatch      an output made by another config: exit 2 naming
                                 --overwrite, file untouched; --overwrite replaces it
    test_errors.py unwritable    output path under a regular file, or under /proc: exit 3
    test_errors.py disk-full     the output cannot grow mid-run (RLIMIT_FSIZE, as on a
                                 full disk): exit 3; the rerun completes, same bits
    test_errors.py bad-images    corrupt and missing images among good ones
    test_errors.py bad-weights   a model whose header is fine but whose weights hold a
                                 NaN or an Inf: exit 2 naming the file and dataset,
                                 alone and with 2 ranks; no output created, an
                                 existing one untouched
    test_errors.py cli           --check, --layers, --version, --help, unknown option
    (all take --salpipe, --model, --tiny, --data, --work)

mismatch, unwritable, disk-full and bad-images run the tiny 3x7x7 model (resize "crop"): what they
test does not depend on the network, and AlexNet's load and SHA-256 take most of a
second per run (a minute under the sanitizers).

Every config is written from BASE below, so each case knows the line of its key.
"""
import os
import re
import resource
import signal
import subprocess
import sys

import numpy as np

from common import (check, check_same_outputs, fresh_dir, main_guard, parser, q,
                    read_output, require, salpipe, write_config)

# Line numbers matter: each case edits one line of this template (1-based).
BASE = """\
# salpipe test config
[model]
path = {model}

[images]
files = [{img1}, {img2}]

[[targets]]
layer = "conv2"
units = [5, 23]

[saliency]
methods = ["vanilla", "guided"]

[output]
path = "out.h5"

[run]
batch = 2
"""


def base_lines(args):
    bad = os.path.join(args.data, "bad")
    text = BASE.format(model=q(args.model), img1=q(os.path.join(bad, "good_a.png")),
                       img2=q(os.path.join(bad, "good_b.jpg")))
    return text.splitlines()


def edit(lines, lineno, new):
    """lines with line `lineno` (1-based) replaced by `new` (None: removed)."""
    out = list(lines)
    if new is None:
        del out[lineno - 1]
    else:
        out[lineno - 1] = new
    return out


# case: (what, edit(lines, args) -> lines, line the message must name (or a tuple of
#        acceptable lines, or None), words the message must contain)
CASES = {
    "syntax": ("a syntax error (missing comma)",
               lambda L, a: edit(L, 10, "units = [5 23]"), 10, []),
    "unknown_key": ("an unknown key (typo 'bacth')",
                    lambda L, a: edit(L, 19, "bacth = 2"), 19, ["bacth"]),
    "wrong_type": ("a wrong type (batch = \"two\")",
                   lambda L, a: edit(L, 19, 'batch = "two"'), 19, ["batch"]),
    "missing_model": ("a model file that does not exist",
                      lambda L, a: edit(L, 3, 'path = "no_such_model.h5"'), 3,
                      ["no_such_model.h5"]),
    "unknown_layer": ("a layer the model does not have",
                      lambda L, a: edit(L, 9, 'layer = "conv9"'), (9, 10), ["conv9"]),
    "unit_zero": ("unit 0 (units are 1-based)",
                  lambda L, a: edit(L, 10, "units = [0, 23]"), 10, ["unit"]),
    "unit_beyond": ("unit 193 of conv2, which has 192 channels",
                    lambda L, a: edit(L, 10, "units = [5, 193]"), 10, ["193"]),
    "unit_range_beyond": ("a unit range reaching past the channels",
                          lambda L, a: edit(L, 10, 'units = "190-200"'), 10, ["conv2"]),
    "empty_images": ("an empty image list",
                     lambda L, a: edit(L, 6, "files = []"), 6, ["files"]),
    "two_sources": ("two image sources (files and dir)",
                    lambda L, a: L[:6] + ['dir = "."'] + L[6:], (6, 7), ["dir"]),
    "unknown_method": ("an unknown saliency method",
                       lambda L, a: edit(L, 13, 'methods = ["vanilla", "occlusion"]'), 13,
                       ["occlusion"]),
    "missing_output": ("no [output] path (a required key)",
                       lambda L, a: edit(L, 16, None), None, ["output"]),
    # issue 12: method parameters (line 20 onwards is appended after [run])
    "smoothgrad_samples_zero": ("[saliency.smoothgrad] samples = 0",
                                lambda L, a: L + ["[saliency.smoothgrad]", "samples = 0"], 21,
                                ["saliency.smoothgrad.samples"]),
    "gradcam_no_spatial": ("a Grad-CAM layer without a spatial output (fc2, 4096x1x1)",
                           lambda L, a: L + ["[saliency.gradcam]", 'layer = "fc2"'], 21,
                           ["fc2", "no spatial output"]),
    # issue 14: [output] channels takes "all" or "max_abs" (line 17, after path)
    "channels_unknown": ("[output] channels = \"max\" (not all or max_abs)",
                         lambda L, a: L[:16] + ['channels = "max"'] + L[16:], 17,
                         ["output.channels", "max_abs"]),
    "ig_trapezoid_one_step": ("integrated_gradients, riemann_trapezoid with steps = 1",
                              lambda L, a: edit(L, 13, 'methods = ["vanilla", '
                                                       '"integrated_gradients"]')
                              + ["[saliency.integrated_gradients]", "steps = 1",
                                 'rule = "riemann_trapezoid"'], 13,
                              ["integrated_gradients", "needs steps >= 2"]),
}


def run_config_case(args, case):
    what, make, line, words = CASES[case]
    print(f"== config error: {what}")
    lines = make(base_lines(args), args)
    cfg = os.path.join(args.work, f"{case}.toml")
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("    config:\n" + "\n".join(f"    {i + 1:3d}| {l}" for i, l in enumerate(lines)))
    r = salpipe(args, [cfg])
    check(r.rc == 2, "exit 2", f"exit {r.rc}")
    err = r.err
    check(os.path.basename(cfg) in err, "stderr names the config file", f"{case}.toml")
    if line is not None:
        lines_ok = line if isinstance(line, tuple) else (line,)
        found = [n for n in lines_ok
                 if re.search(rf"(:{n}(:\d+)?\b|line {n}\b)", err)]
        check(found, f"stderr names line {' or '.join(map(str, lines_ok))}",
              f"found {found}")
    for w in words:
        check(w in err, f"stderr names '{w}'")
    check(len(err.strip().splitlines()) <= 12, "the message is short (at most 12 lines)",
          f"{len(err.strip().splitlines())} lines")
    check(not os.path.exists(os.path.join(args.work, "out.h5")),
          "nothing computed: no output file")


def run_mismatch(args):
    print("== an output file made by another config")
    bad = os.path.join(args.data, "bad")
    one = {"files": [os.path.join(bad, "good_a.png")]}
    two = {"files": [os.path.join(bad, "good_a.png"), os.path.join(bad, "good_b.jpg")]}
    # another model: the tiny model with one weight changed (so another SHA-256)
    import h5py
    other_model = os.path.join(args.work, "tiny_changed.h5")
    with open(args.tiny, "rb") as f, open(other_model, "wb") as g:
        g.write(f.read())
    with h5py.File(other_model, "r+") as f:
        f["layers/009/bias"][0] += 0.5

    def cfg(name, model=args.tiny, images=one, targets=(("conv1", [1]),),
            methods=("vanilla", "guided"), run=None, preprocess=None, output=None):
        return write_config(os.path.join(args.work, f"{name}.toml"), model, images,
                            list(targets), "shared.h5", methods,
                            run=dict({"batch": 1}, **(run or {})), output_extra=output,
                            preprocess=preprocess)

    a = cfg("a")
    out = os.path.join(args.work, "shared.h5")
    r = salpipe(args, [a])
    require(r.rc == 0, "config A: exit 0", f"exit {r.rc}")
    first = read_output(out)
    r = salpipe(args, [a])
    check(r.rc == 0, "config A again: resumes, nothing to do, exit 0", f"exit {r.rc}")

    variants = [
        ("targets", cfg("b", targets=(("conv1", [2]),)), "target"),
        ("methods", cfg("m", methods=("vanilla",)), "method"),
        ("images", cfg("i", images=two), "image"),
        ("model", cfg("w", model=other_model), "model"),
        ("resize mode", cfg("p", preprocess={"resize": "stretch"}), "resize"),
        ("precision", cfg("f", run={"precision": "float64"}), "precision"),
        ("convolution", cfg("c", run={"convolution": "direct"}), "convolution"),
        ("channels", cfg("x", output={"channels": "max_abs"}), "channels"),
    ]
    for what, c, word in variants:
        print(f"\n== same output, other {what}")
        r = salpipe(args, [c])
        check(r.rc == 2, f"other {what}: exit 2", f"exit {r.rc}")
        check("--overwrite" in r.err and "shared.h5" in r.err,
              f"other {what}: the message names the output and --overwrite")
        check(word in r.err.lower(), f"other {what}: the message says what differs "
              f"('{word}')")
        check_same_outputs(first, read_output(out), f"other {what}: A's file untouched")

    print("\n== --overwrite")
    b = variants[0][1]
    r = salpipe(args, ["--overwrite", b])
    check(r.rc == 0, "config B (other targets) with --overwrite: exit 0", f"exit {r.rc}")
    d = read_output(out)
    check(d["target"] == ["conv1:2"] and np.all(d["status"] == 1),
          "the file now holds B's target, done", f"{d['target']} {d['status']}")
    check(not os.path.exists(out + ".partial"), "no leftover temporary file")
    r = salpipe(args, [a])
    check(r.rc == 2, "config A on B's file: exit 2", f"exit {r.rc}")


def run_unwritable(args):
    bad = os.path.join(args.data, "bad")
    imgs = {"files": [os.path.join(bad, "good_a.png")]}
    blocker = os.path.join(args.work, "somefile.txt")
    with open(blocker, "w") as f:
        f.write("a regular file, so somefile.txt/out.h5 cannot be created, even by root\n")
    # As root, permission bits do not stop writes; a path under a regular file (ENOTDIR)
    # or under /proc (no file creation there) fails for everyone.
    for label, path in (("under a regular file", "somefile.txt/out.h5"),
                        ("under /proc", "/proc/salpipe-test/out.h5")):
        print(f"== output directory {label}: {path}")
        cfg = write_config(os.path.join(args.work, "unwritable.toml"), args.tiny, imgs,
                           [("conv1", [1])], path, run={"batch": 1})
        r = salpipe(args, [cfg])
        check(r.rc == 3, f"{label}: exit 3 (output I/O error)", f"exit {r.rc}")
        check(os.path.basename(os.path.dirname(path)) in r.err,
              f"{label}: stderr names the output path")


FULL_LIMIT = 8_000_000  # bytes; Open MPI's singleton helper needs a few MB itself


def _file_size_limit():
    """In the child: files may not grow past FULL_LIMIT; writes past it fail with
    EFBIG, as on a full disk (SIGXFSZ ignored, so the write returns the error)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FULL_LIMIT, FULL_LIMIT))


def run_disk_full(args):
    """An output that cannot grow (as on a full disk) mid-run: exit 3 with a message,
    the file left resumable; a rerun completes it, identical to a run never stopped."""
    bad = os.path.join(args.data, "bad")
    imgs = [os.path.join(bad, n) for n in ("good_a.png", "good_b.jpg", "spare.png")] * 200
    # tiny model, float64, no compression: 600 x 21 maps of 1176 bytes, ~16 MB
    def cfg(name):
        return write_config(os.path.join(args.work, f"{name}.toml"), args.tiny,
                            {"files": imgs}, [("fc2", [1, 2, 3]), ("conv1", "1-4")],
                            f"{name}.h5", ["vanilla", "guided", "deconvnet"],
                            run={"batch": 4, "precision": "float64"},
                            output_extra={"compression": 0})

    print("== uninterrupted run")
    r = salpipe(args, [cfg("ref"), "--quiet"])
    require(r.rc == 0, "uninterrupted run: exit 0", f"exit {r.rc}")
    ref = read_output(os.path.join(args.work, "ref.h5"))
    size = os.path.getsize(os.path.join(args.work, "ref.h5"))
    require(size > FULL_LIMIT * 1.5, f"the output ({size} bytes) outgrows the limit "
            f"({FULL_LIMIT})")

    print(f"\n== the same job with files limited to {FULL_LIMIT} bytes (RLIMIT_FSIZE)")
    c = cfg("full")
    out = os.path.join(args.work, "full.h5")
    r = salpipe(args, [c, "--quiet"], preexec=_file_size_limit)
    check(r.rc == 3, "exit 3 (output I/O error), not a crash",
          f"exit {r.rc}" + (" = killed by SIGSEGV" if r.rc in (-11, 139) else ""))
    check("full.h5" in r.err and "too large" in r.err.lower(),
          "stderr names the output and the system's error")

    print("\n== rerun without the limit")
    r = salpipe(args, [c, "--quiet"])
    check(r.rc == 0, "the rerun completes, exit 0", f"exit {r.rc}")
    if r.rc == 0:
        d = read_output(out)
        check(np.all(d["status"] == 1), "/status all 1")
        check_same_outputs(ref, d, "resumed after the I/O error vs uninterrupted")


def run_bad_images(args):
    bad = os.path.join(args.data, "bad")
    work = args.work
    names = ["good_a.png", "truncated.jpg", "garbage.png", "missing.jpg", "good_b.jpg",
             "empty.jpg"]
    for n in names:
        src = os.path.join(bad, n)
        if os.path.exists(src):
            with open(src, "rb") as f, open(os.path.join(work, n), "wb") as g:
                g.write(f.read())
    good = [0, 4]
    failed = [1, 2, 3, 5]
    cfg = write_config(os.path.join(work, "bad.toml"), args.tiny, {"files": names},
                       [("fc2", [2]), ("conv1", [1])], "bad.h5", run={"batch": 2})
    out = os.path.join(work, "bad.h5")

    print("== corrupt and missing images among good ones")
    r = salpipe(args, [cfg])
    check(r.rc == 1, "exit 1 (the run finished, some images failed)", f"exit {r.rc}")
    require(os.path.exists(out), "the output file exists")
    d = read_output(out)
    st = d["status"]
    check(list(st[good]) == [1, 1], "good images: status 1", f"{st}")
    check(list(st[failed]) == [-1] * 4, "bad images: status -1", f"{st}")
    for i in good:
        check(d["error"][i] == "", f"/error[{i}] ({names[i]}) empty", repr(d["error"][i]))
        check(not np.isnan(d["saliency"][i]).any(), f"{names[i]}: maps computed")
    for i in failed:
        e = d["error"][i]
        check(names[i] in e and len(e) > len(names[i]) + 8,
              f"/error[{i}] names {names[i]} and a reason", repr(e))
        check(np.isnan(d["saliency"][i]).all() and np.isnan(d["activation"][i]).all(),
              f"{names[i]}: maps and activations NaN")
    for i in failed:
        check(names[i] in r.err, f"stderr mentions {names[i]}")

    print("\n== the same with threads = 3 and batch = 6: decoded in parallel, one batch")
    # Failed images sit between good ones in one batch, so the good ones are moved
    # down to consecutive engine rows: a wrong row would give another image's maps.
    cfg3 = write_config(os.path.join(work, "bad_t3.toml"), args.tiny, {"files": names},
                        [("fc2", [2]), ("conv1", [1])], "bad_t3.h5",
                        run={"batch": 6, "threads": 3})
    r3 = salpipe(args, [cfg3])
    check(r3.rc == 1, "threads 3: exit 1", f"exit {r3.rc}")
    require(os.path.exists(os.path.join(work, "bad_t3.h5")), "threads 3: output exists")
    d3 = read_output(os.path.join(work, "bad_t3.h5"))
    check(list(d3["status"]) == list(st), "threads 3: same /status", f"{d3['status']}")
    check(list(d3["error"]) == list(d["error"]), "threads 3: same /error",
          f"{d3['error']}")
    for k in ("saliency", "activation"):
        a, b = d[k][good], d3[k][good]
        scale = np.abs(a).max()
        check(scale > 0 and np.abs(a - b).max() <= 1e-5 * scale,
              f"threads 3: /{k} of the good images as with batch 2, threads 1",
              f"max |diff| {np.abs(a - b).max():.3g}, max |value| {scale:.3g}")
        check(np.isnan(d3[k][failed]).all(), f"threads 3: /{k} NaN for the failed images")

    print("\n== rerun: only the failed images are retried")
    # A good image is replaced by other content: a rerun that recomputed it would
    # change its maps. The missing image appears: it must now be computed.
    with open(os.path.join(bad, "spare.png"), "rb") as f:
        spare = f.read()
    with open(os.path.join(work, "good_a.png"), "wb") as g:
        g.write(spare)
    with open(os.path.join(work, "missing.jpg"), "wb") as g:
        g.write(spare)
    r = salpipe(args, [cfg])
    check(r.rc == 1, "rerun: exit 1 again (three images still bad)", f"exit {r.rc}")
    d2 = read_output(out)
    check(list(d2["status"]) == [1, -1, -1, 1, 1, -1], "status: the missing image is now "
          "done, the corrupt ones still failed", f"{d2['status']}")
    check(d2["error"][3] == "", "the recovered image's /error is cleared",
          repr(d2["error"][3]))
    check_same_outputs({k: d[k][good] for k in ("saliency", "activation")},
                       {k: d2[k][good] for k in ("saliency", "activation")},
                       "good images kept from the first run, not recomputed")
    check(not np.isnan(d2["saliency"][3]).any(), "the recovered image has maps")
    # (activations, not maps: a conv1 map does not depend on the input at all)
    check(not np.array_equal(d2["activation"][3], d2["activation"][0]),
          "good_a keeps the activations of its first content, not those of the new "
          "content (which missing.jpg now has)",
          f"{d2['activation'][0]} vs {d2['activation'][3]}")


def run_bad_weights(args):
    """Weights are read after the plan is shared (straight into the node's shared
    window), so these errors come from another place than the config's."""
    bad = os.path.join(args.data, "bad")
    imgs = {"files": [os.path.join(bad, "good_a.png")]}
    models = os.path.dirname(args.tiny)
    kept = os.path.join(args.work, "kept.h5")
    good = write_config(os.path.join(args.work, "good.toml"), args.tiny, imgs,
                        [("conv1", [1])], kept, run={"batch": 1})
    r = salpipe(args, [good])
    require(r.rc == 0, "the good tiny model: exit 0", f"exit {r.rc}")
    before = read_output(kept)
    for name, word in (("bad_nan.h5", "NaN"), ("bad_inf.h5", "Inf")):
        model = os.path.join(models, name)
        for ranks in (None, 2):
            how = "alone" if ranks is None else f"-n {ranks}"
            print(f"\n== {name}, {how}")
            for out, what in (("new.h5", "a new output"), (kept, "an existing output")):
                cfg = write_config(os.path.join(args.work, "bad.toml"), model, imgs,
                                   [("conv1", [1])], out, run={"batch": 1})
                r = salpipe(args, [cfg], ranks=ranks, timeout=120)
                check(r.rc == 2, f"{what}: exit 2", f"exit {r.rc}")
                check(name in r.err and word in r.err and "dataset" in r.err,
                      f"{what}: stderr names {name}, the dataset and '{word}'")
                # (mpiexec adds its own banner about the exit status)
                ours = [l for l in r.err.splitlines() if l.startswith("salpipe")]
                check(len(ours) == 1, "one message, from one rank", f"{len(ours)} lines")
            check(not os.path.exists(os.path.join(args.work, "new.h5")),
                  "no new output file created")
            check_same_outputs(before, read_output(kept), "the existing output untouched")


# Kernel sets without AVX (pipeline/blas_note.c), and the set the CPU's features allow.
SSE_SETS = {"prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "katmai",
            "coppermine", "northwood", "banias", "opteron", "barcelona", "bobcat",
            "athlon", "opteron_sse3", "nano", "unknown"}


def openblas_own_choice():
    """The kernel set OpenBLAS picks by itself here (no OPENBLAS_CORETYPE), asked in a
    separate process through ctypes, and the set this CPU's flags allow."""
    e = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    p = subprocess.run([sys.executable, "-c",
                        "import ctypes; l = ctypes.CDLL('libopenblas.so.0'); "
                        "l.openblas_get_corename.restype = ctypes.c_char_p; "
                        "print(l.openblas_get_corename().decode())"],
                       env=e, capture_output=True, text=True, timeout=60)
    own = p.stdout.strip() or None
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"} <= flags:
        better = "SkylakeX"
    elif {"avx2", "fma"} <= flags:
        better = "Haswell"
    elif "avx" in flags:
        better = "Sandybridge"
    else:
        better = None
    return own, better


def check_blas_choice(args, cfg, r):
    """--check's account of OpenBLAS's kernel set (blas_note.h), against what OpenBLAS
    picks by itself in another process and the CPU's flags: salpipe replaces an
    SSE-era set with the one the CPU allows, unless OPENBLAS_CORETYPE is set (a site's
    choice: kept) or SALPIPE_BLAS_AUTO=0."""
    own, better = openblas_own_choice()
    user = os.environ.get("OPENBLAS_CORETYPE")
    line = re.search(r"^(blas|note) +(OpenBLAS .*)$", r.out, re.M)
    check(line is not None, "the plan names OpenBLAS's kernel set", r.out[-300:])
    if not line or not own:
        check(own is not None, "OpenBLAS's own choice is readable through ctypes")
        return
    text = line.group(2)
    print(f"    OpenBLAS's own choice here: {own}; this CPU allows {better}; "
          f"OPENBLAS_CORETYPE={user!r}")
    replace = user is None and better is not None and own.lower() in SSE_SETS
    if user is not None:
        check(text.endswith("(OPENBLAS_CORETYPE)"), "a set OPENBLAS_CORETYPE is kept", text)
    elif replace:
        check(text.startswith(f"OpenBLAS kernels {better}, chosen by salpipe: OpenBLAS's "
                              f"own choice for this CPU was {own}"),
              f"salpipe runs {better} instead of OpenBLAS's {own}, and says so", text)
    else:
        check(text == f"OpenBLAS kernels {own}", f"OpenBLAS's own choice {own} is kept",
              text)
    if user is None:
        r0 = salpipe(args, ["--check", cfg], extra_env={"SALPIPE_BLAS_AUTO": "0"},
                     show=False)
        m0 = re.search(r"^(blas|note) +(OpenBLAS .*)$", r0.out, re.M)
        want = (f"OpenBLAS runs its {own} kernels although" if replace
                else f"OpenBLAS kernels {own}")
        check(r0.rc == 0 and m0 is not None and m0.group(2).startswith(want),
              "SALPIPE_BLAS_AUTO=0 keeps OpenBLAS's own choice"
              + (" and names the better set" if replace else ""),
              m0.group(2)[:120] if m0 else r0.out[-300:])


def run_cli(args):
    bad = os.path.join(args.data, "bad")
    cfg = write_config(os.path.join(args.work, "check.toml"), args.model,
                       {"files": [os.path.join(bad, "good_a.png"),
                                  os.path.join(bad, "good_b.jpg"),
                                  os.path.join(bad, "missing.jpg")]},
                       [("fc3", [540, 23]), ("conv5", "1-16")], "out/check.h5",
                       ["vanilla", "guided", "deconvnet"])
    print("== --check")
    r = salpipe(args, ["--check", cfg])
    check(r.rc == 0, "--check: exit 0", f"exit {r.rc}")
    check("fc3:540" in r.out and "conv5:16" in r.out, "the plan lists the targets")
    check(re.search(r"\b3\b", r.out) and "missing.jpg" in r.out,
          "the plan counts 3 images and names the missing one")
    check("162" in r.out.replace(",", ""), "the plan counts 3 x 18 x 3 = 162 maps")
    check("1 forward + 54 backward per image, 3 + 162 for the job" in r.out,
          "the plan counts 1 forward and 18 x 3 backward passes per image")
    check("3x224x224" in r.out and "stretch: Resize((224, 224))" in r.out,
          "the plan states the input size and the model file's resize rule")
    check(r.seconds < 20, "--check computes nothing (fast)", f"{r.seconds:.1f} s")
    check_blas_choice(args, cfg, r)
    check(not os.path.exists(os.path.join(args.work, "out", "check.h5"))
          and not os.path.exists(os.path.join(args.work, "out")),
          "--check creates no output file")

    # Every method: passes per image = 1 (rule maps) + 1 (Grad-CAM) + 50 + 50 forward,
    # 18 targets x (3 rule maps + 1 Grad-CAM + 50 + 50) backward.
    every = ["vanilla", "guided", "deconvnet", "gradient_x_input", "smoothgrad",
             "integrated_gradients", "gradcam", "guided_gradcam"]
    cfg8 = write_config(os.path.join(args.work, "check8.toml"), args.model,
                        {"files": [os.path.join(bad, "good_a.png")]},
                        [("fc3", [540, 23]), ("conv5", "1-16")], "out/check8.h5", every)
    with open(cfg8, "a") as f:
        f.write('\n[saliency.gradcam]\nlayer = "conv4_relu"\n')
    r = salpipe(args, ["--check", cfg8])
    check(r.rc == 0, "--check, every method: exit 0", f"exit {r.rc}")
    check("102 forward + 1872 backward per image" in r.out,
          "--check counts each method's passes (SmoothGrad's and IG's 50 each)")
    check("smoothgrad (samples 50, noise 0.15, base vanilla, statistic mean, seed 0)" in r.out
          and "gradcam (layer conv4_relu)" in r.out, "--check names the methods' parameters")
    check("gradcam's: 200704 bytes, one channel" in r.out,
          "--check: Grad-CAM maps have one channel")

    print("\n== --layers")
    r = salpipe(args, ["--layers", args.model])
    check(r.rc == 0, "--layers: exit 0", f"exit {r.rc}")
    want = ("conv1 conv1_relu conv1_maxpool conv2 conv2_relu conv2_maxpool conv3 "
            "conv3_relu conv4 conv4_relu conv5 conv5_relu conv5_maxpool avgpool flatten "
            "dropout1 fc1 fc1_relu dropout2 fc2 fc2_relu fc3").split()
    # a row: index, name, alias ("-": none), kind, output shape, units, inputs
    rows = [line.split() for line in r.out.splitlines()
            if line.split() and line.split()[0].isdigit()]
    listed = [row[1] for row in rows if len(row) > 1]
    check(listed == want, "22 alexnet layers in order", f"{len(listed)}: {listed}")
    units = {row[1]: row for row in rows if len(row) == 7}
    check(units.get("fc3", [""] * 7)[5] == "1000" and units.get("conv2", [""] * 7)[5] == "192"
          and units.get("conv5", [""] * 7)[5] == "256",
          "unit counts: conv2 192, conv5 256, fc3 1000", f"{units}")
    check([row[6] for row in rows if len(row) == 7] == ["input"] + want[:-1],
          "each layer reads the one before (the first: the input)")
    check(re.search(r"input\s+3x224x224", r.out) and "stretch: Resize((224, 224))" in r.out,
          "--layers states the input size and the resize rule")

    r = salpipe(args, ["--layers", os.path.join(args.work, "nope.h5")])
    check(r.rc == 2 and "nope.h5" in r.err, "--layers on a missing file: exit 2, named",
          f"exit {r.rc}")

    print("\n== --version, --help, bad usage")
    r = salpipe(args, ["--version"])
    check(r.rc == 0 and args.version in r.out, f"--version: exit 0, prints {args.version}",
          f"exit {r.rc}")
    r = salpipe(args, ["--help"])
    check(r.rc == 0 and "usage" in r.out.lower() and "--check" in r.out,
          "--help: exit 0, prints the usage", f"exit {r.rc}")
    r = salpipe(args, ["--frobnicate", cfg])
    check(r.rc == 2 and "--frobnicate" in r.err, "unknown option: exit 2, named",
          f"exit {r.rc}")
    r = salpipe(args, [])
    check(r.rc == 2, "no arguments: exit 2", f"exit {r.rc}")
    r = salpipe(args, [os.path.join(args.work, "no_such.toml")])
    check(r.rc == 2 and "no_such.toml" in r.err, "a missing config file: exit 2, named",
          f"exit {r.rc}")


def main():
    ap = parser(__doc__)
    ap.add_argument("mode", choices=("config", "mismatch", "unwritable", "disk-full",
                                     "bad-images", "bad-weights", "cli"))
    ap.add_argument("case", nargs="?", choices=sorted(CASES))
    ap.add_argument("--version", default="", help="the project version --version prints")
    args = ap.parse_args()
    fresh_dir(args.work)
    if args.mode == "config":
        if not args.case:
            ap.error("config needs a CASE")
        run_config_case(args, args.case)
    else:
        {"mismatch": run_mismatch, "unwritable": run_unwritable,
         "disk-full": run_disk_full, "bad-images": run_bad_images,
         "bad-weights": run_bad_weights, "cli": run_cli}[args.mode](args)


if __name__ == "__main__":
    main_guard(main)
