"""Helpers of the user-tool tests (tests/tools.cmake): checks that print what they
compare and count failures, running commands with their output shown, and reading
salpipe output files.

A test script calls check() for each assertion and ends with finish() (exit 1 if any
check failed); run_main() turns an unexpected exception or a Fatal into a failure.
"""
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
SCRIPTS = os.path.join(REPO, "scripts")

# Open MPI refuses to start as root without these; given to the tests' children only.
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}

_failed = []
_count = 0


class Fatal(Exception):
    """A failure that makes the remaining checks meaningless."""


def check(cond, what, detail=""):
    global _count
    _count += 1
    print(f"  {'ok  ' if cond else 'FAIL'} {what}" + (f"  [{detail}]" if detail else ""),
          flush=True)
    if not cond:
        _failed.append(what + (f" [{detail}]" if detail else ""))
    return bool(cond)


def require(cond, what, detail=""):
    if not check(cond, what, detail):
        raise Fatal(what)


def run_main(fn):
    try:
        fn()
    except Fatal as e:
        print(f"\nFATAL: {e}")
        if not _failed:           # raised without a failed check (run()'s timeout)
            _failed.append(f"fatal: {e}")
    except Exception:
        import traceback
        traceback.print_exc()
        _failed.append("uncaught exception (traceback above)")
    print()
    if _failed or not _count:
        print(f"FAILED: {len(_failed)} of {_count} checks" +
              "".join(f"\n  - {f}" for f in _failed))
        sys.exit(1)
    print(f"PASSED: all {_count} checks")
    sys.exit(0)


def fresh_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def child_env(extra=None, drop=()):
    e = dict(os.environ)
    e.update(MPI_ENV)
    for k in list(e):
        if k.startswith("SLURM_") or k in drop:
            del e[k]
    e.update(extra or {})
    return e


class Result:
    def __init__(self, cmd, rc, out, err, seconds):
        self.cmd, self.rc, self.out, self.err, self.seconds = cmd, rc, out, err, seconds

    def show(self):
        print(f"    $ {' '.join(self.cmd)}\n    exit {self.rc} after {self.seconds:.1f} s")
        for name, text in (("stdout", self.out), ("stderr", self.err)):
            lines = text.strip().splitlines()
            if len(lines) > 30:
                lines = lines[:12] + ["..."] + lines[-15:]
            if lines:
                print(f"    --- {name}:\n" + "\n".join("      " + s for s in lines))
        return self


def run(cmd, env=None, cwd=None, timeout=300):
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=env or child_env(), cwd=cwd, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise Fatal(f"{' '.join(cmd)}: still running after {timeout} s") from e
    return Result(cmd, p.returncode, p.stdout, p.stderr, time.perf_counter() - t0).show()


def read_output(path):
    """The datasets of a salpipe output, strings as lists of str."""
    import h5py
    with h5py.File(path, "r") as f:
        d = {k: f[k][()] for k in ("saliency", "activation", "status", "target_unit",
                                   "gradcam", "integrated_gradients_gap") if k in f}
        for k in ("image", "target", "target_layer", "method", "error"):
            d[k] = list(f[k].asstr()[()])
        d["attrs"] = dict(f.attrs)
    return d


def peek_status(path, scratch=None):
    """/status of a file another process is writing, or None when it cannot be read
    now (the writer is mid-flush). Read in place, not from a copy: copying a file of
    hundreds of MB took seconds, so the status seen was that old, and a test that
    signals "once some images are done" signalled a job that was nearly finished.
    `scratch` is unused (kept for callers)."""
    import h5py
    try:
        with h5py.File(path, "r", locking=False) as f:
            st = f["status"][()]
    except Exception:
        return None
    return st if np.isin(st, (-1, 0, 1)).all() else None


def q(s):
    """A TOML basic string."""
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path, model, images, targets, methods, output, batch=2, extra=""):
    """images: list of paths, or ("dir", DIR, PATTERN); targets: [(layer, [units])];
    extra: TOML appended (e.g. a [saliency.gradcam] table)."""
    lines = ["[model]", f"path = {q(model)}", "", "[images]"]
    if isinstance(images, tuple):
        lines += [f"dir = {q(images[1])}", f"pattern = {q(images[2])}"]
    else:
        lines += ["files = [" + ", ".join(q(i) for i in images) + "]"]
    for layer, units in targets:
        lines += ["", "[[targets]]", f"layer = {q(layer)}",
                  "units = [" + ", ".join(str(u) for u in units) + "]"]
    lines += ["", "[saliency]", "methods = [" + ", ".join(q(m) for m in methods) + "]",
              "", "[output]", f"path = {q(output)}", "", "[run]", f"batch = {batch}", extra]
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def png_pixels(path):
    """(H, W, C) uint8 array of a PNG, and Pillow's mode."""
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")), im.mode, im.format
