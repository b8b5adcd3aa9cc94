#!/usr/bin/env python3
"""Test images and Pillow/torchvision references for tests/image/test_image*.c.

    make_image_refs.py --photo PHOTO.JPEG --out DIR

Writes image files in every format and mode salpipe reads (JPEG baseline, 4:4:4,
4:2:2, progressive, gray, CMYK, YCCK, EXIF-rotated; PNG gray 1/2/4/8/16-bit, gray+alpha,
RGB, RGBA, 16-bit, palette 1/2/4/8-bit with and without tRNS, interlaced), at odd sizes
(1x1, 1x500, 3000x17, 223x225, 224x224, 4000x3000), with photographic content (crops
of PHOTO plus multi-scale noise, never flat colors), and the bad files of issue 3.
PNGs are written by the small encoder below (every filter type, Adam7 interlacing,
16-bit), so Pillow's decoder is the reference and not also the author.

References, for Debian's Pillow 9.4 and torchvision 0.14, as raw little-endian files:
  NAME.dec.u8    Image.open(f).convert('RGB' or 'L'), (H, W, C) bytes
  NAME.pix.u8    after Resize((H, W)) or Resize(S) + CenterCrop((H, W)), (H, W, C)
  NAME.t32.f32   ToTensor + Normalize(mean, std), float32 (C, H, W)
  NAME.t64.f64   (pixels / 255 - mean) / std in float64 (SPEC §1), (C, H, W)

DIR/manifest.txt, one case per line, fields separated by one space:
  image NAME FILE CH W H DEC
  fit NAME FILE CH MODE W H S M0 M1 M2 S0 S1 S2 PIX T32 T64    MODE stretch|crop|resize
  bad NAME FILE PILLOW EXPECTED MESSAGE TEXT...                PILLOW: what Pillow does
For MODE resize only PIX is checked (Image.resize((W, H), BILINEAR)); T32/T64 are "-".
"""
import argparse
import io
import os
import shutil
import struct
import sys
import time
import warnings
import zlib

import numpy as np
import torch
from PIL import Image, features
from torchvision import transforms as T

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
GRAY = ((0.449, 0.449, 0.449), (0.226, 0.226, 0.226))


# ---- photographic content ------------------------------------------------------------

class Maker:
    def __init__(self, photo):
        self.photo_path = photo
        self.photo = Image.open(photo).convert("RGB")
        self.rng = np.random.default_rng(20240513)

    def texture(self, w, h, octaves=5):
        """Multi-scale (roughly 1/f) noise in [-1, 1]: fine detail at every scale."""
        acc = np.zeros((h, w), np.float64)
        for o in range(octaves):
            s = 2 ** o
            sw, sh = max(2, w // (2 * s) + 2), max(2, h // (2 * s) + 2)
            small = self.rng.random((sh, sw)).astype(np.float32)
            big = Image.fromarray(small, "F").resize((w, h), Image.BICUBIC)
            acc += np.asarray(big, np.float64) * (1.0 / (o + 1))
        acc -= acc.mean()
        m = np.abs(acc).max()
        return acc / m if m > 0 else acc

    def rgb(self, w, h, noise=40.0):
        """A random crop of the photo resized to w x h, plus texture and grain."""
        pw, ph = self.photo.size
        cw = int(self.rng.integers(pw // 3, pw + 1))
        ch = int(self.rng.integers(ph // 3, ph + 1))
        x0 = int(self.rng.integers(0, pw - cw + 1))
        y0 = int(self.rng.integers(0, ph - ch + 1))
        base = self.photo.resize((w, h), Image.BICUBIC, box=(x0, y0, x0 + cw, y0 + ch))
        a = np.asarray(base, np.float64)
        a += noise * self.texture(w, h)[..., None] * np.array([1.0, 0.8, 1.2])
        a += self.rng.normal(0, 4.0, a.shape)
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)

    def gray(self, w, h):
        return np.asarray(Image.fromarray(self.rgb(w, h)).convert("L"))


# ---- a PNG encoder: all filters, Adam7, any bit depth ---------------------------------

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(tag, data, crc_xor=0):
    crc = (zlib.crc32(tag + data) & 0xFFFFFFFF) ^ crc_xor
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def pack_rows(a, depth):
    """(h, w, c) samples -> list of packed scanlines."""
    h = a.shape[0]
    flat = a.reshape(h, -1)
    if depth == 16:
        return [r.astype(">u2").tobytes() for r in flat]
    if depth == 8:
        return [r.astype(np.uint8).tobytes() for r in flat]
    per = 8 // depth
    out = []
    for r in flat:
        n = (len(r) + per - 1) // per
        pad = np.zeros(n * per, np.uint16)
        pad[:len(r)] = r
        pad = pad.reshape(n, per)
        byte = np.zeros(n, np.uint16)
        for i in range(per):
            byte |= pad[:, i] << (8 - depth * (i + 1))
        out.append(byte.astype(np.uint8).tobytes())
    return out


def filter_rows(rows, bpp, first_type):
    out, prior = [], None
    for i, row in enumerate(rows):
        cur = np.frombuffer(row, np.uint8).astype(np.int32)
        up = prior if prior is not None else np.zeros_like(cur)
        left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]]) if len(cur) > bpp \
            else np.zeros_like(cur)
        ul = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]]) if len(cur) > bpp \
            else np.zeros_like(cur)
        ft = (first_type + i) % 5
        if ft == 0:
            f = cur
        elif ft == 1:
            f = cur - left
        elif ft == 2:
            f = cur - up
        elif ft == 3:
            f = cur - (left + up) // 2
        else:
            p = left + up - ul
            pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - ul)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
            f = cur - pred
        out.append(bytes([ft]) + (f & 0xFF).astype(np.uint8).tobytes())
        prior = cur
    return b"".join(out)


def png_bytes(a, depth, ctype, interlace=False, plte=None, trns=None, extra=b"",
              idat_parts=1, iend=True, ihdr_crc_xor=0, idat_crc_xor=0, size=None):
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[..., None]
    h, w = a.shape[:2]
    bpp = max(1, CHANNELS[ctype] * depth // 8)
    if interlace:
        raw, k = b"", 0
        for (x0, y0, dx, dy) in ADAM7:
            sub = a[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += filter_rows(pack_rows(sub, depth), bpp, k)
                k += 1
    else:
        raw = filter_rows(pack_rows(a, depth), bpp, 0)
    z = zlib.compress(raw, 9)
    W, H = size if size else (w, h)
    out = b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", W, H, depth, ctype, 0, 0, 1 if interlace else 0),
        ihdr_crc_xor)
    out += extra
    if plte is not None:
        out += chunk(b"PLTE", bytes(np.asarray(plte, np.uint8).ravel()))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    step = (len(z) + idat_parts - 1) // idat_parts
    for i in range(0, len(z), step):
        out += chunk(b"IDAT", z[i:i + step], idat_crc_xor if i == 0 else 0)
    if iend:
        out += chunk(b"IEND", b"")
    return out


# ---- references ----------------------------------------------------------------------

class Writer:
    def __init__(self, out):
        self.out = out
        self.lines = []
        self.names = set()

    def path(self, name):
        return os.path.join(self.out, name)

    def put(self, name, data):
        with open(self.path(name), "wb") as f:
            f.write(data)
        return name

    def image(self, name, fname, channels=3):
        assert name not in self.names, name
        self.names.add(name)
        with warnings.catch_warnings():  # "Palette images with Transparency expressed..."
            warnings.simplefilter("ignore")
            im = Image.open(self.path(fname)).convert("RGB" if channels == 3 else "L")
        a = np.asarray(im)
        self.put(name + ".dec.u8", a.tobytes())
        self.lines.append(f"image {name} {fname} {channels} {im.width} {im.height} "
                          f"{name}.dec.u8")

    def fit(self, name, fname, channels, mode, w, h, s=0, norm=IMAGENET):
        assert name not in self.names, name
        self.names.add(name)
        im = Image.open(self.path(fname)).convert("RGB" if channels == 3 else "L")
        mean, std = (list(v[:channels]) for v in norm)
        if mode == "resize":
            geo = lambda x: x.resize((w, h), Image.BILINEAR)
        elif mode == "stretch":
            geo = T.Resize((h, w))
        else:
            geo = T.Compose([T.Resize(s), T.CenterCrop((h, w))])
        pix = geo(im)
        assert pix.size == (w, h), (name, pix.size)
        a = np.asarray(pix)
        self.put(name + ".pix.u8", a.tobytes())
        t32 = t64 = "-"
        if mode != "resize":
            x = T.Compose([geo, T.ToTensor(), T.Normalize(mean, std)])(im)
            assert x.dtype == torch.float32 and tuple(x.shape) == (channels, h, w)
            self.put(name + ".t32.f32", x.numpy().astype("<f4").tobytes())
            chw = a.reshape(h, w, channels).transpose(2, 0, 1).astype(np.float64)
            m = np.array(mean, np.float64)[:, None, None]
            sd = np.array(std, np.float64)[:, None, None]
            self.put(name + ".t64.f64", ((chw / 255.0 - m) / sd).astype("<f8").tobytes())
            t32, t64 = name + ".t32.f32", name + ".t64.f64"
        ms = " ".join(repr(float(v)) for v in norm[0])
        ss = " ".join(repr(float(v)) for v in norm[1])
        self.lines.append(f"fit {name} {fname} {channels} {mode} {w} {h} {s} {ms} {ss} "
                          f"{name}.pix.u8 {t32} {t64}")

    def bad(self, name, fname, expected, pillow_decodes=True):
        """pillow_decodes=False: only Image.open (which runs the pixel-limit check)."""
        assert name not in self.names, name
        self.names.add(name)
        p = self.path(fname)
        try:
            with warnings.catch_warnings(record=True) as wl:
                warnings.simplefilter("always")
                im = Image.open(p)
                if pillow_decodes:
                    im.convert("RGB")
            pil = "accepts" + ("-with-warning" if wl else "")
        except Exception as e:  # noqa: BLE001 - any refusal counts
            pil = "refuses:" + type(e).__name__
        self.lines.append(f"bad {name} {fname} {pil} {expected}")

    def finish(self):
        with open(self.path("manifest.txt"), "w") as f:
            f.write("\n".join(self.lines) + "\n")


def jpeg(a, mode=None, **kw):
    b = io.BytesIO()
    Image.fromarray(a, mode).save(b, "JPEG", **kw)
    return b.getvalue()


def segment(data, marker):
    """Offset of the first JPEG marker segment `marker` (e.g. 0xEE) before the scan."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        m, n = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if m == marker:
            return i, n + 2
        if m == 0xDA:
            break
        i += 2 + n
    raise ValueError(f"no marker 0xFF{marker:02X}")


def make_good(mk, w):
    # JPEG: the photo itself and every encoder variant Pillow writes.
    shutil.copy(mk.photo_path, w.path("photo.jpg"))
    w.image("photo", "photo.jpg")
    w.image("photo_L", "photo.jpg", 1)
    w.put("q90_420.jpg", jpeg(mk.rgb(640, 480), quality=90))
    w.image("jpeg_420", "q90_420.jpg")
    w.put("q95_444.jpg", jpeg(mk.rgb(333, 251), quality=95, subsampling=0))
    w.image("jpeg_444", "q95_444.jpg")
    w.put("q85_422.jpg", jpeg(mk.rgb(301, 199), quality=85, subsampling=1))
    w.image("jpeg_422", "q85_422.jpg")
    w.put("progressive.jpg", jpeg(mk.rgb(500, 375), quality=90, progressive=True))
    w.image("jpeg_progressive", "progressive.jpg")
    w.put("optimized.jpg", jpeg(mk.rgb(257, 256), quality=75, optimize=True))
    w.image("jpeg_optimized", "optimized.jpg")
    w.put("gray.jpg", jpeg(mk.gray(259, 256), "L", quality=90))
    w.image("jpeg_gray", "gray.jpg")
    w.image("jpeg_gray_L", "gray.jpg", 1)
    w.put("gray_progressive.jpg", jpeg(mk.gray(97, 131), "L", progressive=True))
    w.image("jpeg_gray_progressive", "gray_progressive.jpg")
    rgb = mk.rgb(290, 210).astype(np.int32)
    k = np.clip(255 - rgb.max(axis=2) + (60 * mk.texture(290, 210)).astype(np.int32), 0, 255)
    cmyk = np.dstack([255 - rgb, k]).clip(0, 255).astype(np.uint8)
    cm = jpeg(cmyk, "CMYK", quality=92)
    pos, n = segment(cm, 0xEE)
    assert cm[pos + 4:pos + 9] == b"Adobe" and cm[pos + 15] == 0, "Pillow's CMYK: Adobe, 0"
    w.put("cmyk_adobe.jpg", cm)
    w.image("jpeg_cmyk", "cmyk_adobe.jpg")
    w.image("jpeg_cmyk_L", "cmyk_adobe.jpg", 1)
    w.put("ycck_adobe.jpg", cm[:pos + 15] + b"\x02" + cm[pos + 16:])  # transform 2: YCCK
    w.image("jpeg_ycck", "ycck_adobe.jpg")
    w.put("cmyk_no_adobe.jpg", cm[:pos] + cm[pos + n:])
    w.image("jpeg_cmyk_no_adobe", "cmyk_no_adobe.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW": Pillow's open/convert ignore it, so do we
    w.put("exif_rotate.jpg", jpeg(mk.rgb(320, 200), quality=90, exif=exif.tobytes()))
    w.image("jpeg_exif_orientation", "exif_rotate.jpg")
    base = jpeg(mk.rgb(120, 80), quality=90)
    w.put("trailing_garbage.jpg", base + b"trailing bytes after EOI " * 8)
    w.image("jpeg_trailing_garbage", "trailing_garbage.jpg")
    w.put("extraneous_before_eoi.jpg", base[:-2] + b"\x00\x01\x02" + base[-2:])
    w.image("jpeg_extraneous_bytes", "extraneous_before_eoi.jpg")

    # PNG, every color type and bit depth Pillow maps (PngImagePlugin._MODES).
    g = mk.gray(211, 157).astype(np.int32)
    dither = mk.rng.random(g.shape)
    for d in (1, 2, 4):
        q = np.floor(g / 255.0 * (2 ** d - 1) + dither).clip(0, 2 ** d - 1)
        w.put(f"gray{d}.png", png_bytes(q, d, 0))
        w.image(f"png_gray{d}", f"gray{d}.png")
    w.put("gray8.png", png_bytes(g, 8, 0))
    w.image("png_gray8", "gray8.png")
    w.image("png_gray8_L", "gray8.png", 1)
    w.put("gray16_low.png", png_bytes(g, 16, 0))  # 16-bit storage, values <= 255
    w.image("png_gray16_values_le_255", "gray16_low.png")
    w.put("gray8_trns.png", png_bytes(g, 8, 0, trns=struct.pack(">H", int(g[0, 0]))))
    w.image("png_gray8_trns", "gray8_trns.png")
    alpha = (mk.gray(211, 157).astype(np.int32))
    w.put("la8.png", png_bytes(np.dstack([g, alpha]), 8, 4))
    w.image("png_gray_alpha8", "la8.png")
    g16 = g * 257 + mk.rng.integers(0, 256, g.shape)
    w.put("la16.png", png_bytes(np.dstack([g16, alpha * 257]), 16, 4))
    w.image("png_gray_alpha16", "la16.png")
    w.image("png_gray_alpha16_L", "la16.png", 1)
    c = mk.rgb(223, 225).astype(np.int32)
    w.put("rgb8.png", png_bytes(c, 8, 2))
    w.image("png_rgb8", "rgb8.png")
    w.put("rgb8_trns.png", png_bytes(c, 8, 2, trns=struct.pack(">HHH", *map(int, c[0, 0]))))
    w.image("png_rgb8_trns", "rgb8_trns.png")
    a8 = mk.gray(223, 225).astype(np.int32)
    w.put("rgba8.png", png_bytes(np.dstack([c, a8]), 8, 6))
    w.image("png_rgba8", "rgba8.png")
    w.image("png_rgba8_L", "rgba8.png", 1)
    c16 = c * 257 + mk.rng.integers(0, 256, c.shape)
    w.put("rgb16.png", png_bytes(c16, 16, 2))
    w.image("png_rgb16", "rgb16.png")
    w.put("rgba16.png", png_bytes(np.dstack([c16, a8 * 257]), 16, 6))
    w.image("png_rgba16", "rgba16.png")
    pim = Image.fromarray(mk.rgb(199, 203)).quantize(256)
    b = io.BytesIO()
    pim.save(b, "PNG")
    w.put("pal8_pillow.png", b.getvalue())
    w.image("png_palette8_pillow", "pal8_pillow.png")
    w.image("png_palette8_pillow_L", "pal8_pillow.png", 1)
    idx = np.asarray(pim).astype(np.int32)
    plte = np.asarray(pim.getpalette(), np.uint8)[:768].reshape(-1, 3)
    for d in (1, 2, 4, 8):
        n = 2 ** d
        q = idx % n
        w.put(f"pal{d}.png", png_bytes(q, d, 3, plte=plte[:n]))
        w.image(f"png_palette{d}", f"pal{d}.png")
    w.put("pal8_trns_one.png", png_bytes(idx, 8, 3, plte=plte, trns=b"\xff" * 5 + b"\x00"))
    w.image("png_palette_trns_single", "pal8_trns_one.png")
    w.put("pal8_trns_table.png", png_bytes(idx, 8, 3, plte=plte,
                                           trns=bytes(mk.rng.integers(0, 256, 200, np.uint8))))
    w.image("png_palette_trns_table", "pal8_trns_table.png")
    w.put("pal_short_plte.png", png_bytes(idx, 8, 3, plte=plte[:40]))  # indices >= 40
    w.image("png_palette_index_beyond_plte", "pal_short_plte.png")
    # Interlaced (Adam7), including images smaller than the 8x8 pattern.
    w.put("rgb8_adam7.png", png_bytes(mk.rgb(301, 203), 8, 2, interlace=True))
    w.image("png_rgb8_interlaced", "rgb8_adam7.png")
    w.put("rgba16_adam7.png", png_bytes(np.dstack([c16, a8 * 257]), 16, 6, interlace=True))
    w.image("png_rgba16_interlaced", "rgba16_adam7.png")
    w.put("pal2_adam7.png", png_bytes(idx % 4, 2, 3, plte=plte[:4], interlace=True))
    w.image("png_palette2_interlaced", "pal2_adam7.png")
    q1 = np.floor(g / 255.0 + dither).clip(0, 1)
    w.put("gray1_adam7.png", png_bytes(q1, 1, 0, interlace=True))
    w.image("png_gray1_interlaced", "gray1_adam7.png")
    for (tw, th) in ((1, 1), (3, 2), (5, 9)):
        w.put(f"tiny{tw}x{th}_adam7.png", png_bytes(mk.rgb(tw, th), 8, 2, interlace=True))
        w.image(f"png_interlaced_{tw}x{th}", f"tiny{tw}x{th}_adam7.png")
    # Chunks Pillow ignores (gAMA, sBIT, tEXt), IDAT split in many chunks, no IEND.
    extra = (chunk(b"gAMA", struct.pack(">I", 45455)) + chunk(b"sBIT", b"\x05\x06\x05") +
             chunk(b"tEXt", b"Comment\x00salpipe test"))
    w.put("gamma_text_split.png", png_bytes(c, 8, 2, extra=extra, idat_parts=7))
    w.image("png_gamma_ignored_split_idat", "gamma_text_split.png")
    w.put("no_iend.png", png_bytes(c, 8, 2, iend=False))
    w.image("png_missing_iend", "no_iend.png")


def make_geometry(mk, w):
    """Odd sizes through both resize modes (and L), plus plain Resize cases."""
    sizes = [(1, 1), (1, 500), (3000, 17), (223, 225), (224, 224), (4000, 3000),
             (257, 256), (256, 259), (375, 375)]
    for (sw, sh) in sizes:
        name = f"{sw}x{sh}"
        fname = name + ".jpg"
        w.put(fname, jpeg(mk.rgb(sw, sh), quality=92))
        w.image("jpeg_" + name, fname)
        w.fit(f"stretch_{name}", fname, 3, "stretch", 224, 224)
        w.fit(f"crop_{name}", fname, 3, "crop", 224, 224, 256)
    w.put("rgb_330x250.png", png_bytes(mk.rgb(330, 250), 8, 2))
    w.fit("stretch_png_330x250", "rgb_330x250.png", 3, "stretch", 224, 224)
    w.fit("crop_png_330x250", "rgb_330x250.png", 3, "crop", 224, 224, 256)
    w.fit("stretch_photo", "photo.jpg", 3, "stretch", 224, 224)
    w.fit("crop_photo", "photo.jpg", 3, "crop", 224, 224, 256)
    w.fit("stretch_photo_L", "photo.jpg", 1, "stretch", 224, 224, 0, GRAY)
    w.fit("crop_photo_L", "photo.jpg", 1, "crop", 224, 224, 256, GRAY)
    w.fit("stretch_4000x3000_L", "4000x3000.jpg", 1, "stretch", 224, 224, 0, GRAY)
    w.fit("crop_cmyk", "cmyk_adobe.jpg", 3, "crop", 224, 224, 256)
    w.fit("stretch_palette", "pal8_pillow.png", 3, "stretch", 224, 224)
    w.fit("stretch_gray_jpeg", "gray.jpg", 3, "stretch", 224, 224)
    w.fit("stretch_nonsquare_227x199", "q90_420.jpg", 3, "stretch", 227, 199)
    w.fit("crop_nonsquare_160x224", "q90_420.jpg", 3, "crop", 160, 224, 256)
    w.fit("crop_pad_S200", "q90_420.jpg", 3, "crop", 224, 224, 200)  # zero padding
    w.fit("crop_pad_S100_on_1x500", "1x500.jpg", 3, "crop", 224, 224, 100)
    w.fit("stretch_half_half", "photo.jpg", 3, "stretch", 224, 224, 0,
          ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    w.fit("stretch_totensor_only", "photo.jpg", 3, "stretch", 224, 224, 0,
          ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
    for (rw, rh) in ((5, 7), (1000, 999), (1, 1), (375, 1), (374, 376), (2, 600)):
        w.fit(f"resize_photo_to_{rw}x{rh}", "photo.jpg", 3, "resize", rw, rh)
    w.fit("resize_1x1_to_31x17", "1x1.jpg", 3, "resize", 31, 17)
    w.fit("resize_3000x17_to_17x3000", "3000x17.jpg", 3, "resize", 17, 3000)
    w.fit("resize_gray_L_to_100x50", "gray.jpg", 1, "resize", 100, 50)


def make_bad(mk, w):
    base = jpeg(mk.rgb(200, 150), quality=90)
    prog = jpeg(mk.rgb(200, 150), quality=90, progressive=True)
    w.put("empty.jpg", b"")
    w.bad("empty", "empty.jpg", "empty file")
    w.put("soi_only.jpg", b"\xff\xd8")
    w.bad("jpeg_2_bytes", "soi_only.jpg", "truncated")
    w.put("trunc_header.jpg", base[:100])
    w.bad("jpeg_truncated_in_header", "trunc_header.jpg", "truncated JPEG")
    w.put("trunc_half.jpg", base[:len(base) // 2])
    w.bad("jpeg_truncated_half", "trunc_half.jpg", "truncated JPEG")
    w.put("trunc_no_eoi.jpg", base[:-2])
    w.bad("jpeg_truncated_no_eoi", "trunc_no_eoi.jpg", "truncated JPEG")
    w.put("trunc_prog.jpg", prog[:len(prog) * 2 // 3])
    w.bad("jpeg_progressive_truncated", "trunc_prog.jpg", "truncated JPEG")
    sos, n = segment(base, 0xDA)
    junk = np.random.default_rng(7).integers(0, 256, 6000, np.uint8).tobytes()
    w.put("garbage_after_header.jpg", base[:sos + n] + junk + b"\xff\xd9")
    w.bad("jpeg_garbage_after_header", "garbage_after_header.jpg", "JPEG")
    mid = sos + n + (len(base) - sos - n) // 2
    w.put("marker_in_scan.jpg", base[:mid] + b"\xff\xd3" + base[mid:])
    w.bad("jpeg_corrupt_scan_data", "marker_in_scan.jpg", "corrupt JPEG data")
    pos, _ = segment(base, 0xC0)
    w.put("bomb.jpg", base[:pos + 5] + struct.pack(">HH", 65000, 65000) + base[pos + 9:])
    w.bad("jpeg_decompression_bomb", "bomb.jpg", "above the limit")
    w.put("text.jpg", b"this is not an image, just text saved with a .jpg name\n")
    w.bad("text_named_jpg", "text.jpg", "looks like text")
    os.makedirs(w.path("a_directory.jpg"), exist_ok=True)
    w.bad("directory", "a_directory.jpg", "is a directory")
    w.bad("missing", "no_such_file.jpg", "No such file or directory")
    im = Image.fromarray(mk.rgb(40, 30))
    for fmt, ext, say in (("GIF", "gif", "GIF"), ("TIFF", "tif", "TIFF"), ("BMP", "bmp", "BMP")):
        b = io.BytesIO()
        im.save(b, fmt)
        w.put("image." + ext, b.getvalue())
        w.bad(f"unsupported_{ext}", "image." + ext, "it is a " + say)
    if features.check("webp"):
        b = io.BytesIO()
        im.save(b, "WEBP")
        webp = b.getvalue()
    else:
        webp = b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8 " + bytes(22)
    w.put("image.webp", webp)
    w.bad("unsupported_webp", "image.webp", "it is a WebP")
    w.put("webp_named.png", webp)
    w.bad("webp_named_png", "webp_named.png", "it is a WebP")

    c = mk.rgb(64, 48)
    good = png_bytes(c, 8, 2)
    w.put("png_sig_only.png", good[:8])
    w.bad("png_signature_only", "png_sig_only.png", "truncated PNG")
    w.put("png_trunc_ihdr.png", good[:20])
    w.bad("png_truncated_in_ihdr", "png_trunc_ihdr.png", "truncated PNG")
    w.put("png_trunc_half.png", good[:len(good) // 2])
    w.bad("png_truncated_half", "png_trunc_half.png", "truncated PNG")
    w.put("png_trunc_ilace.png", png_bytes(c, 8, 2, interlace=True)[:-200])
    w.bad("png_interlaced_truncated", "png_trunc_ilace.png", "truncated PNG")
    w.put("png_crc_ihdr.png", png_bytes(c, 8, 2, ihdr_crc_xor=1))
    w.bad("png_bad_crc_ihdr", "png_crc_ihdr.png", "CRC")
    w.put("png_cut_after_data.png", good[:-16])  # last IDAT's CRC and IEND missing
    w.bad("png_truncated_after_image_data", "png_cut_after_data.png", "truncated PNG")
    w.put("png_crc_idat.png", png_bytes(c, 8, 2, idat_crc_xor=0x100))
    w.bad("png_bad_crc_idat", "png_crc_idat.png", "CRC")
    text = chunk(b"tEXt", b"Comment\x00bad crc", 0x10000)
    w.put("png_crc_text.png", png_bytes(c, 8, 2, extra=text))
    w.bad("png_bad_crc_ancillary", "png_crc_text.png", "CRC")
    z = bytearray(good)
    at = good.index(b"IDAT") + 4 + 20
    z[at:at + 16] = bytes(16)
    pos = good.index(b"IDAT")
    ln = struct.unpack(">I", good[pos - 4:pos])[0]
    z[pos + 4 + ln:pos + 8 + ln] = struct.pack(">I", zlib.crc32(bytes(z[pos:pos + 4 + ln])))
    w.put("png_bad_zlib.png", bytes(z))
    w.bad("png_corrupt_deflate", "png_bad_zlib.png", "invalid PNG")
    w.put("png_bomb.png", png_bytes(np.zeros((1, 1), np.uint8), 8, 0, size=(100000, 100000)))
    w.bad("png_decompression_bomb", "png_bomb.png", "above the limit")
    # 9460 x 9460 = 89,491,600 pixels: just over the limit, where Pillow only warns.
    raw = zlib.compress(bytes(9461) * 9460, 9)
    w.put("png_just_over_limit.png", b"\x89PNG\r\n\x1a\n" +
          chunk(b"IHDR", struct.pack(">IIBBBBB", 9460, 9460, 8, 0, 0, 0, 0)) +
          chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    w.bad("png_just_over_pixel_limit", "png_just_over_limit.png", "above the limit", False)
    g16 = (mk.gray(50, 40).astype(np.int32) * 257)
    w.put("gray16_high.png", png_bytes(g16, 16, 0))
    w.bad("png_gray16_values_above_255", "gray16_high.png", "16-bit grayscale")
    w.put("png_critical.png", png_bytes(c, 8, 2, extra=chunk(b"ABCD", b"unknown")))
    w.bad("png_unknown_critical_chunk", "png_critical.png", "invalid PNG")
    w.put("png_no_plte.png", png_bytes(np.zeros((4, 4), np.uint8), 8, 3))
    w.bad("png_palette_without_plte", "png_no_plte.png", "invalid PNG")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photo", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    t0 = time.time()
    if not os.path.isfile(args.photo):
        print(f"make_image_refs: {args.photo}: shared test photo not found; point CMake's "
              "SALPIPE_SHARED_DIR at the shared/ directory", file=sys.stderr)
        return 1
    if os.path.isdir(args.out):
        for root, dirs, _ in os.walk(args.out):  # test_image_bad may leave mode 000
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    torch.set_num_threads(1)
    mk = Maker(args.photo)
    w = Writer(args.out)
    make_good(mk, w)
    make_geometry(mk, w)
    make_bad(mk, w)
    w.finish()
    kinds = [ln.split(" ", 1)[0] for ln in w.lines]
    print(f"make_image_refs: {kinds.count('image')} decode, {kinds.count('fit')} resize, "
          f"{kinds.count('bad')} bad-input cases in {args.out} ({time.time() - t0:.1f} s)")
    for ln in w.lines:
        if ln.startswith("bad "):
            print("  Pillow on", ln.split(" ")[1], "->", ln.split(" ")[3])
    return 0


if __name__ == "__main__":
    sys.exit(main())
