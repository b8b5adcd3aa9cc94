#!/usr/bin/python3
"""scripts/read_saliency.m's index arithmetic, run in Python against h5py.

    test_matlab_mirror.py --data DIR      (tools_data fixture)

MATLAB and Octave are not installed where salpipe is tested, so this test does what
read_saliency.m does with h5py standing in for MATLAB's HDF5 functions:

  h5info(...).Dataspace.Size   the dataset's shape reversed (MATLAB's order)
  h5read(file, ds, start, count)
                               start (1-based) and count in MATLAB's reversed order;
                               the result has its axes reversed, as MATLAB's
                               column-major array does
  permute(A, order)            numpy.transpose with order - 1

The expressions for START, COUNT and the permutations are read out of
read_saliency.m itself (the lines `start = [...]`, `count = [...]`,
`act_start = ...`, `act_count = ...` and the `permute(...)` calls), so an edit to
the .m file is tested, not a copy. Its name/index selection (`pick`) is mirrored
by hand below. For every selection (all, an index, a name; per axis) the result must
equal the direct h5py slice in C order [image, target, method, channel, y, x].
Files: the salpipe output small.h5 (3 channels) and the synthetic 1-channel file.
"""
import argparse
import itertools
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toolcheck as tc  # noqa: E402

M_FILE = os.path.join(tc.SCRIPTS, "read_saliency.m")


# ---- MATLAB's functions, as h5py ------------------------------------------------------

def h5info_size(ds, reversed_order=True):
    """MATLAB's h5info(...).Dataspace.Size (reversed); reversed_order=False plays a
    MATLAB that would report the C order, which read_saliency.m must also handle."""
    return list(ds.shape[::-1]) if reversed_order else list(ds.shape)


def h5read(ds, start=None, count=None):
    """MATLAB's h5read: start (1-based) and count in reversed order; returns the data
    with its axes reversed, as MATLAB holds it."""
    n = ds.ndim
    if start is None:
        data = ds[()]
    else:
        start, count = list(np.atleast_1d(start)), list(np.atleast_1d(count))
        assert len(start) == n and len(count) == n, (start, count, ds.shape)
        sl = []
        for j in range(n):              # C axis j is MATLAB axis n-1-j
            s, c = int(start[n - 1 - j]), int(count[n - 1 - j])
            assert s >= 1 and c >= 1 and s - 1 + c <= ds.shape[j], (start, count, ds.shape)
            sl.append(slice(s - 1, s - 1 + c))
        data = ds[tuple(sl)]
    if data.dtype.kind == "O":
        data = np.array([x.decode() if isinstance(x, bytes) else x for x in data.ravel()],
                        dtype=object).reshape(data.shape)
    return np.transpose(data) if n > 1 else data


def permute(a, order):
    order = list(order)
    a = a.reshape(a.shape + (1,) * (len(order) - a.ndim))  # MATLAB's trailing 1s
    return np.transpose(a, [o - 1 for o in order])


# ---- read_saliency.m's expressions -----------------------------------------------------

def m_source():
    with open(M_FILE) as f:
        return f.read()


def m_assignment(src, lhs):
    """The right-hand side of the line `lhs = ...;` in read_saliency.m."""
    m = re.search(r"^\s*" + re.escape(lhs) + r"\s*=\s*(.+?);\s*$", src, re.M)
    if not m:
        raise tc.Fatal(f"read_saliency.m has no line '{lhs} = ...;'")
    return m.group(1)


def m_vector(expr, ns):
    """A MATLAB row vector like [1, 1, 1, m0, t0, i0] or [dims(1), nm] in ns."""
    expr = expr.strip()
    if not (expr.startswith("[") and expr.endswith("]")):
        raise tc.Fatal(f"not a row vector: {expr}")
    out = []
    for tok in re.split(r"[,\s]+", expr[1:-1].strip()):
        if re.fullmatch(r"\d+", tok):
            out.append(int(tok))
        elif re.fullmatch(r"[A-Za-z_]\w*", tok):
            out.append(ns[tok])
        elif (m := re.fullmatch(r"([A-Za-z_]\w*)\((\d+)\)", tok)):
            out.append(ns[m.group(1)][int(m.group(2)) - 1])
        else:
            raise tc.Fatal(f"cannot read the MATLAB token '{tok}' in {expr}")
    return out


def m_permute_order(src, var):
    m = re.search(r"permute\(" + re.escape(var) + r",\s*(\[[^\]]*\])\)", src)
    if not m:
        raise tc.Fatal(f"read_saliency.m has no permute({var}, [...])")
    return m_vector(m.group(1), {})


def pick(sel, names, by_file_name):
    """read_saliency.m's pick(): (first, n), 1-based."""
    if sel is None:
        return 1, len(names)
    if isinstance(sel, int):
        assert 1 <= sel <= len(names)
        return sel, 1
    hits = [k + 1 for k, n in enumerate(names) if n == sel]
    if not hits and by_file_name:
        for k, n in enumerate(names):
            base = os.path.basename(n)
            if base == sel or os.path.splitext(base)[0] == sel:
                hits.append(k + 1)
    assert len(hits) == 1, (sel, hits)
    return hits[0], 1


def read_saliency(f, src, image=None, target=None, method=None, reversed_order=True):
    """read_saliency.m, step by step."""
    strings = {k: list(h5read(f[k])) for k in ("image", "target", "method")}
    i0, ni = pick(image, strings["image"], True)
    t0, nt = pick(target, strings["target"], False)
    m0, nm = pick(method, strings["method"], False)
    ns = dict(i0=i0, ni=ni, t0=t0, nt=nt, m0=m0, nm=nm)
    S = {"saliency": None}
    if nm > 0:                                              # no /saliency: gradcam only
        dims = h5info_size(f["saliency"], reversed_order)
        if (len(dims) != 6 or dims[5] != len(strings["image"]) or
                dims[4] != len(strings["target"]) or dims[3] != len(strings["method"])):
            dims = dims[::-1]                               # fliplr(dims)
        ns["dims"] = dims
        start = m_vector(m_assignment(src, "start"), ns)
        count = m_vector(m_assignment(src, "count"), ns)
        raw = h5read(f["saliency"], start, count)
        S["saliency"] = permute(raw, m_permute_order(src, "raw"))
    if "gradcam" in f:
        cdims = h5info_size(f["gradcam"], reversed_order)
        if (len(cdims) != 4 or cdims[3] != len(strings["image"]) or
                cdims[2] != len(strings["target"])):
            cdims = cdims[::-1]
        ns["cdims"] = cdims
        cam = h5read(f["gradcam"], m_vector(m_assignment(src, "cam_start"), ns),
                     m_vector(m_assignment(src, "cam_count"), ns))
        S["gradcam"] = permute(cam, m_permute_order(src, "cam"))
    act_start = m_vector(m_assignment(src, "act_start"), ns)
    act_count = m_vector(m_assignment(src, "act_count"), ns)
    act = h5read(f["activation"], act_start, act_count)
    S["activation"] = permute(act, m_permute_order(src, "act"))
    if "integrated_gradients_gap" in f:
        gap = h5read(f["integrated_gradients_gap"], act_start, act_count)
        S["integrated_gradients_gap"] = permute(gap, m_permute_order(src, "gap"))
    S["image"] = strings["image"][i0 - 1:i0 - 1 + ni]
    S["target"] = strings["target"][t0 - 1:t0 - 1 + nt]
    S["target_layer"] = list(h5read(f["target_layer"], t0, nt))
    S["target_unit"] = h5read(f["target_unit"], t0, nt)
    S["method"] = strings["method"][m0 - 1:m0 - 1 + nm]
    S["status"] = h5read(f["status"], i0, ni)
    S["error"] = list(h5read(f["error"], i0, ni))
    return S


# ---- the checks -----------------------------------------------------------------------

def direct(d, i, t, m):
    """The expected result from the C-order arrays: None selects all."""
    ii = list(range(len(d["image"]))) if i is None else [i]
    tt = list(range(len(d["target"]))) if t is None else [t]
    mm = list(range(len(d["method"]))) if m is None else [m]
    sal = d["saliency"][np.ix_(ii, tt, mm)] if "saliency" in d else None
    extra = {k: d[k][np.ix_(ii, tt)] for k in ("gradcam", "integrated_gradients_gap")
             if k in d}
    return {**extra, "saliency": sal, "activation": d["activation"][np.ix_(ii, tt)],
            "image": [d["image"][k] for k in ii], "target": [d["target"][k] for k in tt],
            "target_layer": [d["target_layer"][k] for k in tt],
            "target_unit": d["target_unit"][tt], "method": [d["method"][k] for k in mm],
            "status": d["status"][ii], "error": [d["error"][k] for k in ii]}


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, list):
        return a == b
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def check_file(path, src, image_sels, target_sels, method_sels):
    import h5py
    d = tc.read_output(path)
    name = os.path.basename(path)
    bad, n = [], 0
    with h5py.File(path, "r") as f:
        for (isel, iexp), (tsel, texp), (msel, mexp) in itertools.product(
                image_sels, target_sels, method_sels):
            for rev in (True, False):
                S = read_saliency(f, src, isel, tsel, msel, reversed_order=rev)
                E = direct(d, iexp, texp, mexp)
                n += 1
                for k in E:
                    if not same(S[k], E[k]):
                        bad.append(f"image={isel!r} target={tsel!r} method={msel!r} "
                                   f"reversed={rev}: {k} {np.shape(S[k])} vs {np.shape(E[k])}")
        full = read_saliency(f, src)
        raw = (h5read(f["saliency"], [1] * 6, h5info_size(f["saliency"]))
               if "saliency" in f else None)
    tc.check(not bad, f"{name}: {n} selections equal h5py's direct slices",
             "; ".join(bad[:3]) + (f" (+{len(bad) - 3})" if len(bad) > 3 else ""))
    for k in ("gradcam", "integrated_gradients_gap"):
        if k in d:
            tc.check(k in full and full[k].shape == d[k].shape,
                     f"{name}: S.{k} is {'[image, target, y, x]' if k == 'gradcam' else '[image, target]'}",
                     str(np.shape(full.get(k))))
    if raw is None:
        tc.check(full["saliency"] is None and full["method"] == [],
                 f"{name}: no /saliency (Grad-CAM only): S.saliency empty, no methods")
        return
    I, T, M, C, H, W = d["saliency"].shape
    tc.check(raw.shape == (W, H, C, M, T, I),
             f"{name}: h5read's array is [x y channel method target image]", str(raw.shape))
    ok = all(raw[x, y, c, m, t, i] == d["saliency"][i, t, m, c, y, x] or
             np.isnan(d["saliency"][i, t, m, c, y, x])
             for i, t, m, c, y, x in [(I - 1, T - 1, M - 1, C - 1, 5, 17), (0, 0, 0, 0, 0, 1),
                                      (I - 1, 0, M - 1, 0, H - 1, 3)])
    tc.check(ok, f"{name}: raw(x+1, y+1, c+1, m+1, t+1, i+1) is C's [i, t, m, c, y, x]")
    tc.check(full["saliency"].shape == (I, T, M, C, H, W),
             f"{name}: S.saliency is [image, target, method, channel, y, x]",
             str(full["saliency"].shape))
    tc.check(full["activation"].shape == (I, T), f"{name}: S.activation is [image, target]")
    names = list(d["attrs"])
    tc.check(all(re.fullmatch(r"[A-Za-z]\w{0,62}", a) for a in names),
             f"{name}: root attribute names are MATLAB field names as they are",
             ", ".join(names))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    args = ap.parse_args()

    def body():
        src = m_source()
        print("== read_saliency.m, mirrored")
        print("    start     = " + m_assignment(src, "start"))
        print("    count     = " + m_assignment(src, "count"))
        print("    act_start = " + m_assignment(src, "act_start"))
        print("    act_count = " + m_assignment(src, "act_count"))
        tc.check(m_permute_order(src, "raw") == [6, 5, 4, 3, 2, 1],
                 "the map array is turned around with permute(raw, [6 5 4 3 2 1])")
        tc.check("[x, y, channel, method, target, image]" in src,
                 "the help text explains h5read's reversed order")
        small = os.path.join(args.data, "out", "small", "small.h5")
        check_file(small, src,
                   [(None, None), (2, 1), ("img_00", 0), ("img_01.png", 1),
                    ("../img/img_00.jpg", 0)],
                   [(None, None), (1, 0), ("conv5:3", 1)],
                   [(None, None), (2, 1), ("vanilla", 0)])
        tc.check(m_permute_order(src, "cam") == [4, 3, 2, 1] and
                 m_permute_order(src, "gap") == [2, 1],
                 "/gradcam and the gaps are turned around likewise")
        # Issue 12's datasets; the method axis of methods.h5 is guided and
        # integrated_gradients (gradcam's maps are /gradcam).
        for name, msels in (("methods", [(None, None), (2, 1), ("guided", 0)]),
                            ("camonly", [(None, None)])):
            check_file(os.path.join(args.data, "out", "small", name + ".h5"), src,
                       [(None, None), (2, 1), ("img_00", 0)],
                       [(None, None), ("conv5:3", 1)], msels)
        syn = os.path.join(args.data, "synthetic", "gray1.h5")
        check_file(syn, src, [(None, None), (3, 2), ("g0", 0), ("nothere.png", 1)],
                   [(None, None), ("fc2:2", 1)], [(None, None), (1, 0)])

    tc.run_main(body)


if __name__ == "__main__":
    main()
