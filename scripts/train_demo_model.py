#!/usr/bin/python3
"""Train salpipe's demo network on Fashion-MNIST and export it as a salpipe model.

    /usr/bin/python3 scripts/train_demo_model.py [--out models/fashion_mnist_cnn.h5]
        [--images data/demo] [--epochs 6] [--seed 0] [--data DIR]

There are no pretrained ImageNet weights on the machines salpipe is developed on, so
the demo ships its own small AlexNet-style network (conv/ReLU/max-pool blocks, then
linear/ReLU/linear), trained here on Fashion-MNIST from Debian's dataset-fashion-mnist
package with Debian's torch (python3-torch, python3-torchvision): three blocks of
3x3 convolution (16, 32, 64 channels), ReLU and 2x2 max-pool, then linear 576 -> 256,
ReLU, dropout, linear 256 -> 10; about 0.17 M parameters. Six epochs of Adam take about
2-3 minutes on 2 idle cores and reach about 91% test accuracy.

The script
  1. reads the IDX files (gzip) and trains with Adam, seeded: torch.manual_seed(seed)
     before the weights are built, a seeded generator for the data order, and
     torch.set_num_threads(2);
  2. prints per-epoch progress and the final test accuracy;
  3. exports the network with scripts/export_torchvision.py's export_sequential
     (layers conv1 conv1_relu conv1_maxpool conv2 ... conv3_maxpool flatten fc1
     fc1_relu dropout1 fc2; fc2 units 1..10 are the classes in Fashion-MNIST order);
  4. writes 2 test images per class (the first occurrences in the test split) as
     8-bit grayscale PNGs, e.g. data/demo/t10k-00000_ankle_boot.png;
  5. checks its outputs: the weights read back with h5py equal the trained ones (and
     give the same test accuracy), and each PNG read back as salpipe reads a 1-channel
     model's input (Pillow's convert('L'), ToTensor, Normalize) gives exactly the
     tensor the network was trained and tested on.

Preprocessing (stored in the model file; SPEC section 1 with one channel): ToTensor
(x / 255 in float32), then (x - MEAN) / STD with the decimal constants below (the
Fashion-MNIST training set's statistics, rounded), rounded to float32 as torchvision's
Normalize does; resize "stretch" to 28x28 (the identity for these images).
"""
import argparse
import gzip
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

DATA_DIR = "/usr/share/datasets/fashion-mnist"
MODEL_NAME = "fashion_mnist_cnn"
MEAN = 0.2860   # Fashion-MNIST train pixels / 255: mean 0.28604, std 0.35302
STD = 0.3530
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot")
# File-name forms of the class names.
SLUGS = ("tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
         "sneaker", "bag", "ankle_boot")
PER_CLASS = 2
BATCH = 128
LR = 2e-3
GAMMA = 0.7     # learning rate multiplied by this after each epoch

PREPROCESS = {
    "input_channels": 1,
    "input_size": (28, 28),
    "mean": (MEAN,),
    "std": (STD,),
    "resize": "stretch",
}


def read_idx(path):
    """A gzipped IDX file (big-endian header: 0, 0, type 0x08 = uint8, ndim; then the
    dimensions as uint32) as a uint8 numpy array."""
    import numpy as np
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    n = int(np.prod(dims))
    if len(data) != offset + n:
        raise ValueError(f"{path}: {len(data) - offset} data bytes, expected {n} "
                         f"for shape {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def load_split(data_dir, split):
    """(images uint8 (N, 28, 28), labels int64 (N,)) of 'train' or 't10k'."""
    import numpy as np
    x = read_idx(os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz"))
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"{data_dir}: {split} images {x.shape} and labels {y.shape} "
                         "do not match")
    return x, y.astype(np.int64)


def to_input(u8):
    """uint8 (N, H, W) to the normalized float32 network input (N, 1, H, W): exactly
    torchvision's ToTensor (float32 x / 255) then Normalize (sub, div by the float32
    constants)."""
    import torch
    x = torch.from_numpy(u8.copy()).unsqueeze(1).to(torch.float32).div(255)
    mean = torch.as_tensor([MEAN], dtype=torch.float32).view(-1, 1, 1)
    std = torch.as_tensor([STD], dtype=torch.float32).view(-1, 1, 1)
    return x.sub_(mean).div_(std)


def build_net():
    """The demo network: torchvision-style features / flatten / classifier."""
    import torch.nn as nn

    class FashionMnistCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, kernel_size=3, padding=1),    # conv1   16x28x28
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=2, stride=2),         #         16x14x14
                nn.Conv2d(16, 32, kernel_size=3, padding=1),   # conv2   32x14x14
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=2, stride=2),         #         32x7x7
                nn.Conv2d(32, 64, kernel_size=3, padding=1),   # conv3   64x7x7
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=2, stride=2),         #         64x3x3
            )
            self.flatten = nn.Flatten()                        #         576
            self.classifier = nn.Sequential(
                nn.Linear(64 * 3 * 3, 256),                    # fc1
                nn.ReLU(inplace=True),
                nn.Dropout(p=0.25),
                nn.Linear(256, 10),                            # fc2: the classes
            )

        def forward(self, x):
            return self.classifier(self.flatten(self.features(x)))

        def layers(self):
            """The forward pass as a list of modules, for export_sequential."""
            return [self.features, self.flatten, self.classifier]

    return FashionMnistCNN()


def evaluate(net, x, y, batch=1000):
    """Test accuracy (fraction) of net on normalized inputs x and labels y."""
    import torch
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += int((net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return correct / len(x)


def train(net, xtr, ytr, xte, yte, epochs, seed):
    import torch
    import torch.nn.functional as F
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=GAMMA)
    n = len(xtr)
    for epoch in range(1, epochs + 1):
        t0 = time.monotonic()
        net.train()
        order = torch.randperm(n, generator=gen)
        loss_sum, correct = 0.0, 0
        for i in range(0, n, BATCH):
            idx = order[i:i + BATCH]
            xb, yb = xtr[idx], ytr[idx]
            opt.zero_grad(set_to_none=True)
            out = net(xb)
            loss = F.cross_entropy(out, yb)
            loss.backward()
            opt.step()
            loss_sum += float(loss) * len(idx)
            correct += int((out.argmax(1) == yb).sum())
        lr = opt.param_groups[0]["lr"]
        sched.step()
        acc = evaluate(net, xte, yte)
        print(f"epoch {epoch}/{epochs}: lr {lr:g}  train loss {loss_sum / n:.4f}  "
              f"train acc {100 * correct / n:.2f}%  test acc {100 * acc:.2f}%  "
              f"({time.monotonic() - t0:.0f} s)", flush=True)
    net.eval()
    return acc


def demo_indices(yte):
    """The first PER_CLASS test images of each class, in test-split order."""
    seen, picked = {}, []
    for i, c in enumerate(yte.tolist()):
        if seen.get(c, 0) < PER_CLASS:
            seen[c] = seen.get(c, 0) + 1
            picked.append(i)
    return picked


def write_pngs(images_dir, xte, yte):
    """Writes the demo images as 8-bit grayscale PNGs; returns their paths."""
    from PIL import Image
    os.makedirs(images_dir, exist_ok=True)
    paths = []
    for i in demo_indices(yte):
        p = os.path.join(images_dir, f"t10k-{i:05d}_{SLUGS[int(yte[i])]}.png")
        Image.fromarray(xte[i], mode="L").save(p, format="PNG")
        paths.append(p)
    return paths


def check_model_file(path, net, xte, yte):
    """Reads the model file back with h5py: preprocessing attributes, layer names,
    and weights equal (bit for bit) to the trained ones; then the test accuracy of a
    fresh network built from the file's weights. Returns that accuracy."""
    import h5py
    import numpy as np
    import torch
    import torch.nn as nn
    mods = [m for m in net.modules() if not isinstance(m, (nn.Sequential, type(net)))]
    with h5py.File(path, "r") as f:
        assert f.attrs["name"] == MODEL_NAME
        assert int(f.attrs["input_channels"]) == 1
        assert list(f.attrs["input_size"]) == [28, 28]
        assert f.attrs["mean"].dtype == np.float64 and list(f.attrs["mean"]) == [MEAN]
        assert f.attrs["std"].dtype == np.float64 and list(f.attrs["std"]) == [STD]
        assert f.attrs["resize"] == "stretch"
        layers = f["layers"]
        count = int(layers.attrs["count"])
        assert count == len(mods), (count, len(mods))
        clone = build_net().eval()
        clone_mods = [m for m in clone.modules()
                      if not isinstance(m, (nn.Sequential, type(clone)))]
        for k, (m, c) in enumerate(zip(mods, clone_mods)):
            g = layers[f"{k:03d}"]
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                for key in ("weight", "bias"):
                    stored = g[key][()]
                    trained = getattr(m, key).detach().numpy()
                    assert stored.dtype == trained.dtype and stored.shape == trained.shape
                    assert np.array_equal(stored, trained), f"{g.name} {key} differs"
                    getattr(c, key).data.copy_(torch.from_numpy(stored))
        names = [layers[f"{k:03d}"].attrs["name"] for k in range(count)]
    return evaluate(clone, xte, yte), names


def check_pngs(paths, xte_norm):
    """Each PNG, read as salpipe reads a 1-channel model's input (Pillow's
    convert('L'), torchvision's ToTensor and Normalize), must give exactly the tensor
    the network saw for that test image."""
    import torch
    from PIL import Image
    from torchvision import transforms
    tf = transforms.Compose([transforms.ToTensor(),
                             transforms.Normalize((MEAN,), (STD,))])
    for p in paths:
        i = int(os.path.basename(p)[5:10])
        with Image.open(p) as im:
            assert im.mode == "L" and im.size == (28, 28), (p, im.mode, im.size)
            t = tf(im.convert("L"))
        if not torch.equal(t, xte_norm[i]):
            raise AssertionError(f"{p}: tensor differs from test image {i}")


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Train the demo CNN on Fashion-MNIST and export it for salpipe.")
    ap.add_argument("--out", default=os.path.join(ROOT, "models", f"{MODEL_NAME}.h5"),
                    metavar="PATH", help="model file to write "
                    "(default: models/fashion_mnist_cnn.h5 in the repository)")
    ap.add_argument("--images", default=os.path.join(ROOT, "data", "demo"),
                    metavar="DIR", help="where to write the demo PNGs "
                    "(default: data/demo in the repository)")
    ap.add_argument("--epochs", type=int, default=6, metavar="N",
                    help="training epochs (default 6)")
    ap.add_argument("--seed", type=int, default=0, metavar="N",
                    help="torch.manual_seed and data-order seed (default 0)")
    ap.add_argument("--data", default=DATA_DIR, metavar="DIR",
                    help=f"Fashion-MNIST IDX files (default {DATA_DIR})")
    args = ap.parse_args(argv)
    if args.epochs < 1:
        ap.error("--epochs must be at least 1")

    import numpy as np
    import torch
    import torchvision
    from export_torchvision import export_sequential

    t_start = time.monotonic()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)

    xtr_u8, ytr_np = load_split(args.data, "train")
    xte_u8, yte_np = load_split(args.data, "t10k")
    xtr, ytr = to_input(xtr_u8), torch.from_numpy(ytr_np)
    xte, yte = to_input(xte_u8), torch.from_numpy(yte_np)
    hist = np.bincount(xtr_u8.ravel(), minlength=256).astype(np.float64)
    values = np.arange(256) / 255
    pix_mean = (hist * values).sum() / hist.sum()
    pix_std = np.sqrt((hist * (values - pix_mean) ** 2).sum() / hist.sum())
    print(f"Fashion-MNIST from {args.data}: {len(xtr)} train, {len(xte)} test images; "
          f"normalize mean {MEAN} std {STD} (train set: mean {pix_mean:.5f} "
          f"std {pix_std:.5f})", flush=True)

    net = build_net()
    nparams = sum(p.numel() for p in net.parameters())
    print(f"network: {nparams} parameters; Adam lr {LR}, batch {BATCH}, "
          f"{args.epochs} epochs, seed {args.seed}, {torch.get_num_threads()} threads",
          flush=True)
    t0 = time.monotonic()
    acc = train(net, xtr, ytr, xte, yte, args.epochs, args.seed)
    train_s = time.monotonic() - t0
    print(f"training took {train_s:.0f} s; test accuracy {100 * acc:.2f}%", flush=True)

    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    names = export_sequential(
        net.layers(), args.out, MODEL_NAME, PREPROCESS,
        extra_attrs={
            "exporter": "salpipe scripts/train_demo_model.py",
            "source": f"Fashion-MNIST ({args.data}), seed {args.seed}, "
                      f"{args.epochs} epochs of Adam lr {LR} batch {BATCH}",
            "test_accuracy": float(acc),
            "classes": ", ".join(CLASSES),
            "torch_version": torch.__version__,
            "torchvision_version": torchvision.__version__,
        })
    print(f"{args.out}: {MODEL_NAME}, {len(names)} layers: {' '.join(names)}; "
          f"{os.path.getsize(args.out)} bytes")

    paths = write_pngs(args.images, xte_u8, yte_np)
    print(f"{args.images}: {len(paths)} test images as PNG "
          f"({PER_CLASS} per class, first in the test split)")

    file_acc, file_names = check_model_file(args.out, net, xte, yte)
    assert file_names == names, (file_names, names)
    if file_acc != acc:
        raise AssertionError(f"accuracy from the file's weights {file_acc} != {acc}")
    check_pngs(paths, xte)
    print(f"checked: weights read back equal the trained ones (test accuracy "
          f"{100 * file_acc:.2f}%), PNGs read back give the training tensors")
    print(f"fc2 units 1..10: {', '.join(CLASSES)}")
    print(f"test accuracy {100 * acc:.2f}%; total {time.monotonic() - t_start:.0f} s")
    if acc < 0.89:
        print("train_demo_model.py: error: test accuracy below 89%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
