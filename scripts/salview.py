#!/usr/bin/python3
"""salview: look at a salpipe output file as a figure like DNNBrain's dnn_saliency.

    salview.py FILE.h5 [-o FIG.png] [--mode rgb|gray] [--images A B ...]
               [--targets T ...] [--methods M ...] [--image-root DIR ...]

The first row shows the stimuli, then there is one row per (target, method) and one
column per image. Rows are labelled "fc3:540 guided", columns by image name. The
methods are those of /saliency and, when the file has /gradcam, "gradcam" last (its
one-channel maps, shown in gray in rgb mode, with --cmap in gray mode).

The preprocessed inputs are not in the file, so the stimuli are the original image
files, found from the names in /image: absolute paths as they are, relative ones
against the config file's directory (from the `config_path` and `config` attributes,
or worked out from where the output file lies) and any --image-root. They are
resized as salpipe resized them ("stretch", or Resize + CenterCrop for "crop"). An
image that cannot be found gets a blank tile with its name.

Tiles (as DNNBrain's ip.to_pil(np.abs(map), True)):
  rgb   |map|, then min-max over the whole map to 0..1, shown as an RGB image
        (a 1-channel map is shown in gray); an all-zero map is black
  gray  max of |map| over the channels, min-max to 0..1, shown with --cmap
An image whose /status is not 1 gets a tile saying "not done" (0) or "failed" (-1).

Selection: --images and --targets take names or 0-based indices (negative counts from
the end). An image name matches the whole name in /image, its file name, or its file
name without extension; a target is "layer:unit" or a layer name for all its units.
Without --images the first 8 images are shown, without --targets the first 8 targets.

Without -o the figure is shown in a window; with no display (no $DISPLAY or
$WAYLAND_DISPLAY on Linux) it is written to ./<FILE>_salview.png instead.

Needs h5py, numpy and matplotlib (and Pillow, which matplotlib itself needs).
Exit status: 0 figure made, 2 bad arguments or a file that is not a salpipe output.
"""
import argparse
import os
import sys

import numpy as np

DEFAULT_SHOWN = 8


class UsageError(Exception):
    """A problem with the arguments or the file; printed as one line, exit 2."""


# ---- reading the file -----------------------------------------------------------------

def open_h5(path):
    """h5py.File for reading; a file salpipe is still writing (HDF5's lock held) is
    opened without locking, so a running job can be looked at."""
    import h5py
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        if "lock" not in str(e).lower():
            raise UsageError(f"{path}: cannot open as HDF5: {e}") from e
        print(f"salview: {path} is being written by a running job; reading it unlocked",
              file=sys.stderr)
        return h5py.File(path, "r", locking=False)


def vlen_strings(ds):
    return [s for s in ds.asstr()[()]]


def root_attr(f, name, default=None):
    if name not in f.attrs:
        return default
    v = f.attrs[name]
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


def read_labels(f, path):
    for name in ("image", "target", "method", "status"):
        if name not in f:
            raise UsageError(f"{path}: no /{name} dataset: not a salpipe output file")
    if "saliency" not in f and "gradcam" not in f:
        raise UsageError(f"{path}: no /saliency dataset: not a salpipe output file")
    labels = {k: vlen_strings(f[k]) for k in ("image", "target", "method")}
    # /saliency's methods (not gradcam), then gradcam from /gradcam when present
    labels["nsaliency"] = len(labels["method"]) if "saliency" in f else 0
    if "gradcam" in f:
        labels["method"] = labels["method"] + ["gradcam"]
    labels["status"] = f["status"][()]
    labels["error"] = vlen_strings(f["error"]) if "error" in f else [""] * len(labels["image"])
    return labels


# ---- selection ------------------------------------------------------------------------

def strip_ext(name):
    return os.path.splitext(name)[0]


def select(names, wanted, what, default_count=None, matchers=()):
    """Indices into names for the tokens in wanted (None: all, or the first
    default_count). A token is an index or a name; matchers are extra functions
    (token, name) -> bool tried when no name is equal to the token."""
    if not wanted:
        n = len(names) if default_count is None else min(default_count, len(names))
        return list(range(n))
    out = []
    for tok in wanted:
        hits = [i for i, n in enumerate(names) if n == tok]
        for m in matchers:
            if hits:
                break
            hits = [i for i, n in enumerate(names) if m(tok, n)]
        if not hits:
            try:
                k = int(tok)
            except ValueError:
                shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
                raise UsageError(f"no {what} named '{tok}' (the file has: {shown})") from None
            if not -len(names) <= k < len(names):
                raise UsageError(f"{what} index {k} is out of range: the file has "
                                 f"{len(names)} ({-len(names)}..{len(names) - 1})")
            hits = [k % len(names)]
        out += [i for i in hits if i not in out]
    return out


def image_matchers():
    def by_file(tok, name):
        return os.path.basename(name) == tok

    def by_stem(tok, name):
        return strip_ext(os.path.basename(name)) == tok
    return (by_file, by_stem)


def target_matchers():
    return (lambda tok, name: name.split(":")[0] == tok,)


def check_unique_images(names, idx, wanted):
    """A file name that matches two images is ambiguous; say so."""
    if not wanted:
        return
    for tok in wanted:
        hits = [i for i in idx if os.path.basename(names[i]) == tok or
                strip_ext(os.path.basename(names[i])) == tok]
        if len(hits) > 1 and tok not in names:
            listed = ", ".join(names[i] for i in hits)
            raise UsageError(f"image name '{tok}' matches {len(hits)} images ({listed}); "
                             "give the whole name as in /image, or an index")


# ---- finding the stimuli --------------------------------------------------------------

def config_dirs(h5path, attrs):
    """Directories the relative image names may be relative to, best first.

    The file records the config path as given on salpipe's command line, relative to
    a working directory it does not record. That directory B is found from where the
    output file lies: B / dirname(config_path) / [output] path is this file. Failing
    that: B an ancestor of the file holding config_path, or the current directory."""
    h5 = os.path.abspath(h5path)
    cfg_path = attrs.get("config_path") or ""
    cfg_dir = os.path.dirname(cfg_path)
    cfg = parse_config(attrs.get("config"))
    out_rel = cfg.get("output", {}).get("path") if cfg else None
    dirs = []
    if os.path.isabs(cfg_dir):
        dirs.append(cfg_dir)
    else:
        ancestors, a = [], os.path.dirname(h5)
        while True:
            ancestors.append(a)
            if os.path.dirname(a) == a:
                break
            a = os.path.dirname(a)
        if isinstance(out_rel, str) and not os.path.isabs(out_rel):
            dirs += [os.path.join(b, cfg_dir) for b in ancestors
                     if os.path.normpath(os.path.join(b, cfg_dir, out_rel)) == h5]
        if cfg_path:
            dirs += [os.path.join(b, cfg_dir) for b in ancestors
                     if os.path.isfile(os.path.join(b, cfg_path))]
        dirs.append(os.path.abspath(cfg_dir))
    # Image names from a list or a stim.csv are relative to that file's directory.
    images = cfg.get("images", {}) if cfg else {}
    bases = []
    for d in dirs:
        if isinstance(images.get("list"), str):
            bases.append(os.path.join(d, os.path.dirname(images["list"])))
        if isinstance(images.get("stim_csv"), str):
            csv = os.path.join(d, images["stim_csv"])
            stim_dir = stim_csv_dir(csv)
            if stim_dir is not None:
                bases.append(os.path.join(os.path.dirname(csv), stim_dir))
    seen, out = set(), []
    for d in bases + dirs:
        d = os.path.normpath(d)
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def parse_config(text):
    if not text:
        return None
    try:
        import tomllib
        return tomllib.loads(text)
    except Exception:  # Python < 3.11, or a config this tool cannot parse: no hints
        return None


def stim_csv_dir(csv):
    """The path= header of a DNNBrain .stim.csv, or None."""
    try:
        with open(csv, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, eq, val = line.partition("=")
                if eq and key.strip() == "path":
                    return val.strip()
                if key.strip() == "data":
                    break
    except OSError:
        pass
    return None


def find_stimulus(name, roots):
    if os.path.isabs(name):
        return name if os.path.isfile(name) else None
    for r in roots:
        p = os.path.join(r, name)
        if os.path.isfile(p):
            return p
    return None


def load_stimulus(path, channels, height, width, attrs):
    """The image as the model saw it before normalization: RGB (or L for a 1-channel
    model), resized like salpipe (stretch, or Resize(resize_size) + CenterCrop).
    An array in 0..1, (H, W, 3) or (H, W); None when Pillow cannot read it."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if attrs.get("resize") == "crop":
                im = resize_center_crop(im, int(attrs.get("resize_size", 256)), height, width)
            else:
                im = im.resize((width, height), Image.BILINEAR)
            return np.asarray(im, dtype=np.float32) / 255.0
    except Exception as e:
        print(f"salview: cannot read {path}: {e}", file=sys.stderr)
        return None


def resize_center_crop(im, size, height, width):
    """torchvision's Resize(size) (shorter side to size) then CenterCrop((h, w))."""
    from PIL import Image
    w, h = im.size
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    im = im.resize((nw, nh), Image.BILINEAR)
    top = int(round((nh - height) / 2.0))
    left = int(round((nw - width) / 2.0))
    return im.crop((left, top, left + width, top + height))


# ---- tiles ----------------------------------------------------------------------------

def minmax(a):
    """(a - min) / (max - min); all zeros for a constant map (black, never NaN)."""
    lo, hi = float(a.min()), float(a.max())
    if not hi > lo:
        return np.zeros_like(a, dtype=np.float32)
    return ((a - lo) / (hi - lo)).astype(np.float32)


def tile_rgb(m):
    """(C, H, W) map -> |map| min-maxed over the whole map: (H, W, 3) or (H, W)."""
    a = minmax(np.abs(m))
    if a.shape[0] == 3:
        return np.transpose(a, (1, 2, 0))
    if a.shape[0] == 1:
        return a[0]
    return minmax(np.abs(m).max(axis=0))   # neither gray nor RGB: as in gray mode


def tile_gray(m):
    """(C, H, W) map -> max over channels of |map|, min-maxed: (H, W)."""
    return minmax(np.abs(m).max(axis=0))


# ---- the figure -----------------------------------------------------------------------

def short(name, n=28):
    return name if len(name) <= n else name[:n // 2 - 1] + "…" + name[-(n // 2):]


def column_names(images, idx):
    """File names, unless two shown images share one: then the names as in /image."""
    base = [os.path.basename(images[i]) for i in idx]
    if len(set(base)) == len(base):
        return base
    return [images[i] for i in idx]


def layout(nrows, ncols, row_labels, tile, dpi):
    """Figure size in inches and the margins; the pixel size is round(size * dpi)."""
    left = 0.3 + 0.075 * max(len(s) for s in row_labels)
    top, bottom, right, gap = 0.55, 0.1, 0.1, 0.06
    width = left + ncols * tile + (ncols - 1) * gap + right
    height = top + nrows * tile + (nrows - 1) * gap + bottom
    return dict(width=width, height=height, left=left, top=top, gap=gap, tile=tile, dpi=dpi)


def make_figure(plt, L, nrows, ncols):
    fig = plt.figure(figsize=(L["width"], L["height"]), dpi=L["dpi"])
    axes = []
    for r in range(nrows):
        row = []
        for c in range(ncols):
            x = L["left"] + c * (L["tile"] + L["gap"])
            y = L["height"] - L["top"] - (r + 1) * L["tile"] - r * L["gap"]
            ax = fig.add_axes([x / L["width"], y / L["height"],
                               L["tile"] / L["width"], L["tile"] / L["height"]])
            ax.set_xticks([])
            ax.set_yticks([])
            row.append(ax)
        axes.append(row)
    return fig, axes


def blank(ax, text, color="0.85"):
    ax.set_facecolor(color)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=7, wrap=True,
            transform=ax.transAxes)


def status_text(status, error):
    if status == 0:
        return "not done"
    if status == -1:
        return "failed" + (":\n" + short(error, 40) if error else "")
    return f"status {status}"


def draw(args, f, labels, sel, plt):
    images, targets, methods = labels["image"], labels["target"], labels["method"]
    ii, tt, mm = sel
    ds, cams, nsal = f.get("saliency"), f.get("gradcam"), labels["nsaliency"]
    if ds is not None:
        _, _, _, C, H, W = ds.shape
    else:
        _, _, H, W = cams.shape
        C = 3
    # The stimulus has the input's channels (the maps may have one: Grad-CAM alone, or
    # [output] channels = "max_abs", shown in gray).
    C = int(root_attr(f, "input_channels", C))
    attrs = {k: root_attr(f, k) for k in ("config_path", "config", "resize", "resize_size")}
    roots = [os.path.abspath(d) for d in args.image_root] + config_dirs(args.file, attrs)

    rows = [(t, m) for t in tt for m in mm]
    row_labels = ["stimulus"] + [f"{targets[t]} {methods[m]}" for t, m in rows]
    L = layout(len(rows) + 1, len(ii), row_labels, args.tile, args.dpi)
    fig, axes = make_figure(plt, L, len(rows) + 1, len(ii))
    for r, text in enumerate(row_labels):
        axes[r][0].set_ylabel(text, rotation=0, ha="right", va="center", fontsize=9)
    found = 0
    for c, (i, name) in enumerate(zip(ii, column_names(images, ii))):
        axes[0][c].set_title(short(name), fontsize=8)
        path = find_stimulus(images[i], roots)
        stim = load_stimulus(path, C, H, W, attrs) if path else None
        if stim is None:
            blank(axes[0][c], short(os.path.basename(images[i]), 20) + "\n(not found)", "1.0")
        else:
            found += 1
            axes[0][c].imshow(stim, cmap="gray" if stim.ndim == 2 else None,
                              vmin=0, vmax=1, interpolation="nearest")
        status = int(labels["status"][i])
        for r, (t, m) in enumerate(rows, start=1):
            ax = axes[r][c]
            if status != 1:
                blank(ax, status_text(status, labels["error"][i]))
                continue
            mp = (ds[i, t, m] if m < nsal else cams[i, t][None]).astype(np.float64)
            if not np.all(np.isfinite(mp)):
                blank(ax, "no map (NaN)")
                continue
            if args.mode == "gray":
                ax.imshow(tile_gray(mp), cmap=args.cmap, vmin=0, vmax=1,
                          interpolation="nearest")
            else:
                tile = tile_rgb(mp)
                ax.imshow(tile, cmap="gray" if tile.ndim == 2 else None, vmin=0, vmax=1,
                          interpolation="nearest")
    title = os.path.basename(args.file)
    model = root_attr(f, "model_name")
    fig.suptitle(f"{title}" + (f" ({model})" if model else "") + f", {args.mode}",
                 x=L["left"] / L["width"], ha="left", y=1 - 0.08 / L["height"],
                 va="top", fontsize=9)
    return fig, L, found


def choose_backend(args):
    """Agg for files and when there is nowhere to show a window; else matplotlib's
    default (or $MPLBACKEND). Returns the output path, None to show a window."""
    import matplotlib
    if args.output:
        matplotlib.use("Agg")
        return args.output
    if os.environ.get("MPLBACKEND"):
        return None
    headless = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if headless:
        matplotlib.use("Agg")
        out = strip_ext(os.path.basename(args.file)) + "_salview.png"
        print(f"salview: no display; writing {out} instead (use -o FIG.png to choose)",
              file=sys.stderr)
        return out
    return None


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="salview.py", description=__doc__.split("\n")[0],
        usage="%(prog)s FILE.h5 [-o FIG.png] [--mode rgb|gray] [--images I ...] "
              "[--targets T ...] [--methods M ...] [--image-root DIR] [--cmap CMAP] "
              "[--tile INCHES] [--dpi DPI]  (FILE.h5 first: the lists take every "
              "word after them)",
        epilog="Names or 0-based indices; see the top of scripts/salview.py.")
    ap.add_argument("file", help="a salpipe output file (.h5)")
    ap.add_argument("-o", "--output", help="write the figure here (PNG, PDF, SVG, ...)")
    ap.add_argument("--mode", choices=("rgb", "gray"), default="rgb",
                    help="rgb: |map| as colour; gray: max |map| over channels, coloured")
    ap.add_argument("--images", nargs="+", help="image names or indices")
    ap.add_argument("--targets", nargs="+", help="'layer:unit', a layer, or indices")
    ap.add_argument("--methods", nargs="+", help="method names or indices")
    ap.add_argument("--image-root", action="append", default=[], metavar="DIR",
                    help="also look for the stimuli under DIR (repeatable)")
    ap.add_argument("--cmap", default="hot", help="colormap of gray mode (default hot)")
    ap.add_argument("--tile", type=float, default=1.8, help="tile size in inches (1.8)")
    ap.add_argument("--dpi", type=float, default=100, help="dots per inch (100)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        with open_h5(args.file) as f:
            labels = read_labels(f, args.file)
            ii = select(labels["image"], args.images, "image", DEFAULT_SHOWN, image_matchers())
            check_unique_images(labels["image"], ii, args.images)
            tt = select(labels["target"], args.targets, "target", DEFAULT_SHOWN,
                        target_matchers())
            mm = select(labels["method"], args.methods, "method")
            for what, sel, n in (("images", ii, len(labels["image"])),
                                 ("targets", tt, len(labels["target"]))):
                if len(sel) < n and not getattr(args, what):
                    print(f"salview: showing the first {len(sel)} of {n} {what}; "
                          f"choose others with --{what}", file=sys.stderr)
            out = choose_backend(args)
            import matplotlib.pyplot as plt
            fig, L, found = draw(args, f, labels, (ii, tt, mm), plt)
    except UsageError as e:
        print(f"salview: {e}", file=sys.stderr)
        return 2
    px = (round(L["width"] * L["dpi"]), round(L["height"] * L["dpi"]))
    summary = (f"{len(ii)} images x {len(tt) * len(mm)} maps ({len(tt)} targets x "
               f"{len(mm)} methods), {args.mode}; stimuli found {found}/{len(ii)}")
    if out:
        fig.savefig(out, dpi=L["dpi"])
        print(f"salview: wrote {out} ({px[0]}x{px[1]} px): {summary}")
    else:
        print(f"salview: {summary}")
        plt.show()
    return 0


if __name__ == "__main__":
    sys.exit(main())
