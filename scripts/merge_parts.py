#!/usr/bin/python3
"""Turns a salpipe output written by several writers ([output] writers = K > 1: OUT.h5
plus OUT.part-k-of-K.h5) into one plain HDF5 file for sharing, compressed as salpipe
compresses, without decompressing anything.

    scripts/merge_parts.py OUT.h5 PLAIN.h5 [--force]

PLAIN.h5 starts as a copy of OUT.h5 (labels, dimension scales, attributes); each
virtual dataset is then replaced by an ordinary dataset with the parts' chunk shape,
filters and fill value, into which every chunk the parts hold is copied as stored
(raw, still deflated), moved down by the part's first image. Chunks a part never wrote
(images not done) stay unwritten and read as the fill value, as through OUT.h5. The
attributes that name the parts (writers, part_files, part_first_image) are removed,
so PLAIN.h5 has the layout of a `writers = 1` file (docs/output-format.md). It is for
reading and sharing: to resume the job, keep the K + 1 original files.

Needs h5py >= 3 over HDF5 >= 1.10.5 (chunk queries). Exit 0 when done, 1 when the
input is not a finished part set or cannot be read, 2 on bad arguments.
"""
import argparse
import os
import shutil
import sys

import h5py

PART_ATTRS = ("writers", "part_files", "part_first_image")


def fail(msg):
    print(f"merge_parts: {msg}", file=sys.stderr)
    sys.exit(1)


def attached_scales(dset):
    """Per dimension, the names of the scales attached to dset."""
    return [[s.name for s in dim.values()] for dim in dset.dims]


def copy_chunks(src, dst, shift):
    """Copies every stored chunk of src into dst, dimension 0 moved by shift."""
    sid, did = src.id, dst.id
    for i in range(sid.get_num_chunks()):
        info = sid.get_chunk_info(i)
        mask, raw = sid.read_direct_chunk(info.chunk_offset)
        offset = (info.chunk_offset[0] + shift,) + tuple(info.chunk_offset[1:])
        did.write_direct_chunk(offset, raw, filter_mask=mask)
    return sid.get_num_chunks()


def merge(out, plain):
    here = os.path.dirname(os.path.abspath(out))
    with h5py.File(out, "r") as f:
        if "part_files" not in f.attrs or "part_first_image" not in f.attrs:
            fail(f"{out}: not a part set (no part_files attribute): it is already one "
                 "plain file, copy it as it is")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["part_files"]]
        bounds = [int(b) for b in f.attrs["part_first_image"]]
        virtual = [k for k, v in f.items() if isinstance(v, h5py.Dataset) and v.is_virtual]
    if len(bounds) != len(names) + 1:
        fail(f"{out}: part_first_image has {len(bounds)} bounds for {len(names)} parts")
    parts = []
    for k, name in enumerate(names):
        path = name if os.path.isabs(name) else os.path.join(here, name)
        try:
            parts.append(h5py.File(path, "r"))
        except OSError as e:
            fail(f"{path}: part {k + 1} of {len(names)} cannot be opened ({e})")
        first = int(parts[-1].attrs.get("first_image", -1))
        if first != bounds[k]:
            fail(f"{path}: starts at image {first}, {out} expects {bounds[k]} (another job's part?)")

    tmp = plain + ".merging"
    shutil.copyfile(out, tmp)
    try:
        total = replace_virtual(tmp, out, names, bounds, parts, virtual)
    except BaseException:
        os.unlink(tmp)  # never leave half a file behind
        raise
    finally:
        for p in parts:
            p.close()
    os.replace(tmp, plain)
    return virtual, total


def replace_virtual(tmp, out, names, bounds, parts, virtual):
    """In tmp (a copy of out), replaces each virtual dataset by a plain one."""
    total = 0
    with h5py.File(tmp, "r+") as g:
        for name in virtual:
            v = g[name]
            shape = v.shape
            attrs = {a: v.attrs[a] for a in v.attrs
                     if a not in ("DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME")}
            scales = attached_scales(v)
            for d, dim in enumerate(v.dims):
                for s in scales[d]:
                    dim.detach_scale(g[s])
            del g[name]
            model = parts[0][name]
            chunks = model.chunks
            # Raw chunks can move between files only when they hold plain numbers:
            # variable-length strings point into their own file's heap.
            # Stored chunks keep their meaning only where every part's chunk grid
            # is the new dataset's, moved by whole chunks (the small per-image
            # datasets' chunks follow each part's size: those are copied by value).
            raw = (chunks is not None and h5py.check_vlen_dtype(model.dtype) is None
                   and h5py.check_string_dtype(model.dtype) is None
                   and all(bounds[k] % chunks[0] == 0 and p[name].chunks == chunks and
                           p[name].compression == model.compression and
                           p[name].compression_opts == model.compression_opts and
                           p[name].shuffle == model.shuffle
                           for k, p in enumerate(parts)))
            # h5py 3.7 crashes asking a variable-length dataset for its fill value.
            plain_numbers = h5py.check_vlen_dtype(model.dtype) is None and \
                h5py.check_string_dtype(model.dtype) is None
            kw = {"fillvalue": model.fillvalue} if plain_numbers else {}
            if chunks is not None:
                kw.update(chunks=chunks, compression=model.compression,
                          compression_opts=model.compression_opts, shuffle=model.shuffle)
            new = g.create_dataset(name, shape=shape, dtype=model.dtype, **kw)
            for a, val in attrs.items():
                new.attrs[a] = val
            for d, dim in enumerate(new.dims):
                for s in scales[d]:
                    dim.attach_scale(g[s])
            for k, p in enumerate(parts):
                src = p[name]
                if src.shape[0] != bounds[k + 1] - bounds[k] or src.shape[1:] != shape[1:]:
                    fail(f"{names[k]}: '{name}' has shape {src.shape}, {out} expects "
                         f"{(bounds[k + 1] - bounds[k],) + tuple(shape[1:])}")
                if raw:
                    total += copy_chunks(src, new, bounds[k])
                else:
                    for i in range(0, src.shape[0], 64):
                        j = min(i + 64, src.shape[0])
                        new[bounds[k] + i:bounds[k] + j] = src[i:j]
        for a in PART_ATTRS:
            if a in g.attrs:
                del g.attrs[a]
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="the job's OUT.h5 (beside its part files)")
    ap.add_argument("plain", help="the single file to write")
    ap.add_argument("--force", action="store_true", help="replace PLAIN if it exists")
    a = ap.parse_args()
    if os.path.abspath(a.out) == os.path.abspath(a.plain):
        print("merge_parts: PLAIN must be another file than OUT", file=sys.stderr)
        return 2
    if os.path.exists(a.plain) and not a.force:
        print(f"merge_parts: {a.plain} exists (--force replaces it)", file=sys.stderr)
        return 2
    virtual, total = merge(a.out, a.plain)
    print(f"merge_parts: {a.plain}: {', '.join(virtual)} made plain, {total} chunks copied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
