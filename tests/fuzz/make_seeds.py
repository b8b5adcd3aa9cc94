#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses into tests/fuzz/corpus/ (committed;
rerun only to change them). Each seed is a valid input or a near miss, small, so
the fuzzer starts from every branch a real input takes.

    /usr/bin/python3 tests/fuzz/make_seeds.py
"""
import io
import os
import struct

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def out(harness, name, data):
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- config: the scratch directory holds m.h5, imgs/, list.txt, s.stim.csv ----
BASE = """[model]
path = "m.h5"

[images]
{images}

[[targets]]
layer = "fc1"
units = [1, 10]

[[targets]]
layer = "conv1"
units = "1-2"
"""
FULL_TAIL = """
[saliency]
methods = ["vanilla", "guided", "deconvnet"]

[preprocess]
resize = "crop"

[output]
path = "out/saliency.h5"
compression = 9
previews = "out/previews"
preview_mode = "gray"

[run]
batch = 4
threads = 2
precision = "float64"
"""
out("config", "files.toml", BASE.format(images='files = ["imgs/a.png", "/abs/b.jpg"]')
    + '[output]\npath = "o.h5"\n')
out("config", "list.toml", BASE.format(images='list = "list.txt"') + FULL_TAIL)
out("config", "dir.toml", BASE.format(images='dir = "imgs"\npattern = "*.png"')
    + '[output]\npath = "o.h5"\ncompression = 0\n[run]\nprecision = "float32"\n')
out("config", "stim.toml", BASE.format(images='stim_csv = "s.stim.csv"')
    + '[saliency]\nmethods = ["deconvnet"]\n[preprocess]\nresize = "stretch"\n'
      '[output]\npath = "o.h5"\npreview_mode = "rgb"\n')
out("config", "bad_unit.toml", BASE.format(images='files = ["a.png"]').replace("[1, 10]", "[11]")
    + '[output]\npath = "o.h5"\n')
out("config", "bad_layer.toml", BASE.format(images='files = ["a.png"]').replace('"fc1"', '"fc9"')
    + '[output]\npath = "o.h5"\n')
out("config", "methods.toml", BASE.format(images='files = ["a.png"]')
    + '[saliency]\nmethods = ["vanilla"]\n[saliency.smoothgrad]\nsamples = 5\nnoise = 0.2\n'
      'base = "guided"\nstatistic = "variance"\nseed = 7\n[saliency.integrated_gradients]\n'
      'steps = 8\nrule = "riemann_trapezoid"\nbaseline = "black"\n[saliency.gradcam]\n'
      'layer = "conv1"\n[output]\npath = "o.h5"\n')
out("config", "typo.toml", '[model]\npaht = "m.h5"\n')
out("config", "inline.toml",
    'model = { path = "m.h5" }\nimages.files = [\'a.png\']\ntargets = [{layer = "fc1", '
    'units = [2]}]\noutput.path = """o.h5"""\nrun = {batch = 1}\n')

# ---- sources: byte 0 even = list file, odd = .stim.csv ----
out("sources", "list", b"\x00" + b"imgs/a.png\n# comment\n\n  b.jpg  \r\n/abs/c.png")
out("sources", "list_crlf", b"\x00" + b"a.png\r\nb.png\r\n")
out("sources", "list_empty", b"\x00" + b"# nothing\n\n")
out("sources", "csv", b"\x01" + b"type=image\npath=stim\ntitle=demo\n"
    b"data=stimID,label,onset\na.png,1,0.5\n\nsub/b.JPEG,2,1.0\n")
out("sources", "csv_col", b"\x01" + b"type = image\npath = /data\ndata = onset, stimID\n"
    b"0.5, a.png\n1.0 ,  b.png , extra\n")
out("sources", "csv_video", b"\x01" + b"type=video\npath=v\ndata=stimID\nx.mp4\n")

# ---- image: JPEG and PNG; the last byte picks the preprocessing ----
def save(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


grad = Image.new("RGB", (9, 7))
grad.putdata([(x * 28, y * 36, (x + y) * 16) for y in range(7) for x in range(9)])
seeds = {
    "rgb.jpg": save(grad, "JPEG", quality=90),
    "gray.jpg": save(grad.convert("L"), "JPEG"),
    "cmyk.jpg": save(grad.convert("CMYK"), "JPEG"),
    "progressive.jpg": save(grad, "JPEG", progressive=True, subsampling=2),
    "rgb.png": save(grad, "PNG"),
    "gray.png": save(grad.convert("L"), "PNG"),
    "palette.png": save(grad.convert("P"), "PNG"),
    "rgba.png": save(grad.convert("RGBA"), "PNG"),
    "la.png": save(grad.convert("LA"), "PNG"),
    "bilevel.png": save(grad.convert("1"), "PNG"),
    "gray16.png": save(grad.convert("L").convert("I").point(lambda v: v * 200).convert("I;16"), "PNG"),
    "optimized.png": save(grad, "PNG", optimize=True),
    "tall.png": save(grad.resize((2, 40)), "PNG"),
}
for i, (name, data) in enumerate(sorted(seeds.items())):
    out("image", name, data + bytes([i * 37 % 256]))
with open(os.path.join(HERE, "..", "..", "data", "demo", "t10k-00000_ankle_boot.png"), "rb") as f:
    out("image", "demo.png", f.read() + b"\x11")

# ---- model: byte 0 template (and precision), then 4-byte operations ----
for t in range(6):
    out("model", f"template{t}", bytes([t]))
out("model", "insert_bn", bytes([0, 0x01, 1, 1, 3]))
# file operations are 0x40 + k (model_gen.c file_op): 1 type, 7 one element
out("model", "float_attrs", bytes([1, 0x41, 0, 1, 5, 0x41, 2, 2, 5]))
out("model", "fixed_strings", bytes([2, 0x41, 2, 0, 7, 0x41, 0, 0, 8]))
out("model", "bad_weight", bytes([0, 0x47, 0, 0, 0]))
# graphs (format 2): byte 0 from 0x80, even the residual network, odd the inception
# one (model_spec.c); (byte 0 / 3) odd = float64. Graph operations are 0x30 + k.
for name, t in [("residual_f32", 0x80), ("residual_f64", 0x82), ("inception_f64", 0x81),
                ("inception_f32", 0x85)]:
    out("model", "graph_" + name, bytes([t]))
# residual nodes: 2 relu, 3 layer1.0.conv1, 5 layer1.0.relu, 7 layer1.0.bn2,
# 8 layer1.0.add, 14 layer2.0.bn2, 17 layer2.0.add; inception: 4 branch1.conv,
# 5 branch1.relu, 6 branch2.0.conv, 14 branch4.avgpool, 17 inception3a.cat
GRAPH_SEEDS = {
    "missing_input": [0x80, 0x02, 2, 0, 0],       # relu removed: the add reads no node
    "cycle": [0x80, 0x30, 3, 8, 0],               # conv1 of the block reads its add
    "self": [0x80, 0x30, 5, 5, 0],
    "later": [0x81, 0x30, 4, 6, 0],               # a node stored after it, no cycle
    "reads_input": [0x80, 0x31, 3, 1, 0],         # 'input': valid
    "reads_alias": [0x80, 0x31, 3, 0, 0],
    "empty_input": [0x81, 0x31, 17, 3, 0],
    "too_many": [0x80, 0x32, 8, 0, 17],
    "too_few": [0x80, 0x32, 8, 0, 1],
    "concat_one": [0x81, 0x32, 17, 0, 1],         # valid
    "alias_dup": [0x80, 0x33, 5, 0, 1],
    "alias_reserved": [0x80, 0x33, 5, 0, 2],
    "alias_bad": [0x80, 0x33, 5, 8, 2],
    "add_mismatch": [0x80, 0x34, 17, 14, 7],
    "concat_mismatch": [0x81, 0x34, 17, 5, 2],
    "swap": [0x80, 0x03, 8, 3, 0],
    "move": [0x81, 0x38, 17, 4, 0],
    "kind_concat": [0x80, 0x39, 8, 9, 0],         # the add becomes a concat: valid
    "cip": [0x81, 0x3A, 14, 0, 9],
    "insert_add": [0x80, 0x01, 5, 8, 0],          # x + x: valid
    "inputs_int": [0x80, 0x41, 34, 2, 0],         # 'inputs' of the add as int64
    "inputs_fixed": [0x81, 0x41, 17 * 4 + 2, 3, 7],  # as fixed-length strings
}
for name, ops in GRAPH_SEEDS.items():
    out("model", "graph_" + name, bytes(ops))

# ---- messages: byte 0 even = plan, odd = batch (5 shape bytes, then the message) ----
def s32(v):
    return struct.pack("<i", v)


def pstr(s):
    if s is None:
        return s32(-1)
    b = s.encode()
    return s32(len(b)) + b


def name64(s):
    return s.encode().ljust(64, b"\0")


# As pipeline/plan.c sp_plan_pack writes it (method parameters: issue 12).
def plan(images, labels=False, previews=None, methods=(0, 1), targets=((4, 0),),
         prec=0, crop=0, smoothgrad=(50, 0.15, 0, 0, 0), ig=(50, 0, 0), gradcam=None):
    pre = struct.pack("<iii4x3d3dii", 3, 224, 224, 0.485, 0.456, 0.406, 0.229, 0.224,
                      0.225, crop, 256)
    b = pstr("/models/alexnet.h5") + pre + s32(prec) + s32(8) + s32(1) + s32(4)
    b += s32(len(targets)) + b"".join(s32(l) + s32(u) for l, u in targets)
    b += b"".join(name64(f"layer{l}") for l, u in targets)
    b += s32(len(methods)) + b"".join(s32(m) for m in methods)
    samples, noise, base, statistic, seed = smoothgrad
    b += s32(samples) + struct.pack("<d", noise) + s32(base) + s32(statistic)
    b += struct.pack("<Q", seed) + b"".join(s32(v) for v in ig)
    b += s32(gradcam[0]) + name64(gradcam[1]) if gradcam else s32(-1) + name64("")
    b += pstr(previews) + s32(0) + s32(len(images)) + b"".join(pstr(p) for p in images)
    b += s32(1 if labels else 0)
    if labels:
        b += b"".join(pstr(os.path.basename(p)) for p in images)
    return b


out("messages", "plan", b"\x00" + plan(["/d/a.png", "/d/b.jpg"]))
out("messages", "plan_previews", b"\x00" + plan(["/d/a.png"], True, "/out/prev", (2,),
                                               ((0, 1), (7, 3)), 1, 1))
out("messages", "plan_methods", b"\x00" + plan(["/d/a.png"], methods=(4, 5, 6, 7, 3, 0),
                                              smoothgrad=(20, 0.25, 1, 2, 2**63 - 1),
                                              ig=(64, 1, 1), gradcam=(11, "conv5_relu")))


def batch(k, first, statuses, nt, nm, rs, chunk):
    b = s32(k) + s32(len(statuses))
    for i, st in enumerate(statuses):
        msg = b"" if st == 1 else b"a.png: not a JPEG or PNG file"
        b += s32(first + i) + s32(st) + s32(len(msg)) + msg
        if st == 1:
            b += bytes(nt * rs)
            for _ in range(nt * nm):
                b += struct.pack("<q", chunk) + bytes(range(chunk))
    return b


# shape bytes: nimages-1, batch-1, ntargets-1, nmethods-1, (max_chunk-1)<<1 | f64
out("messages", "batch", b"\x01" + bytes([4, 1, 1, 1, (15 << 1) | 0])
    + batch(1, 2, [1, -1], 2, 2, 4, 16))
out("messages", "batch_last", b"\x01" + bytes([6, 2, 0, 2, (3 << 1) | 1])
    + batch(2, 6, [1], 1, 3, 8, 4))


def batch_methods(k, first, statuses, nt, nm, rs, chunk, cam_chunk, gaps):
    """A message of issue 12's layout: gaps after the activations (when gaps),
    nt Grad-CAM chunks after the nt * nm maps."""
    b = s32(k) + s32(len(statuses))
    for i, st in enumerate(statuses):
        msg = b"" if st == 1 else b"a.png: not a JPEG or PNG file"
        b += s32(first + i) + s32(st) + s32(len(msg)) + msg
        if st == 1:
            b += bytes(nt * rs)
            if gaps:
                b += b"".join(struct.pack("<d", 0.5 - t) for t in range(nt))
            for _ in range(nt * nm):
                b += struct.pack("<q", chunk) + bytes(range(chunk))
            for _ in range(nt):
                b += struct.pack("<q", cam_chunk) + bytes(range(cam_chunk))
    return b


# nmethods byte: bit 6 Grad-CAM maps (nmaps = low bits % 4), bit 7 IG's gaps;
# max_cam_chunk = 1 + ((max_chunk - 1) % 64) // 3
out("messages", "batch_cams_gaps", b"\x01" + bytes([2, 1, 1, 0xC0 | 1, (15 << 1) | 1])
    + batch_methods(1, 2, [1], 2, 1, 8, 16, 6, True))
out("messages", "batch_cams_only", b"\x01" + bytes([1, 1, 0, 0x40, (8 << 1) | 0])
    + batch_methods(0, 0, [1, -1], 1, 0, 4, 9, 3, False))
