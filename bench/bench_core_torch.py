"""PyTorch side of bench/bench_core: one forward of a batch, then 4 backward passes
(fc3 units 540 and 23, vanilla and guided) with retain_graph, median of reps.
    bench_core_torch.py ARCH [batch] [reps] [threads]
"""
import statistics
import sys
import time

import torch
import torchvision


class RuleReLU(torch.autograd.Function):
    mode = "vanilla"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        if RuleReLU.mode == "vanilla":
            return g * (x > 0)
        return g * (x > 0) * (g > 0)


class Wrap(torch.nn.Module):
    def forward(self, x):
        return RuleReLU.apply(x)


def main():
    arch = sys.argv[1]
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)().eval()
    for seq in (model.features, model.classifier):
        for i, mod in enumerate(seq):
            if isinstance(mod, torch.nn.ReLU):
                seq[i] = Wrap()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(batch, 3, 224, 224) * 4 - 2
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        xi = x.clone().requires_grad_(True)
        out = model(xi)
        for mode in ("vanilla", "guided"):
            RuleReLU.mode = mode
            for unit in (539, 22):
                xi.grad = None
                out[:, unit].sum().backward(retain_graph=True)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"pytorch {torch.__version__}: batch {batch}, 1 forward + 4 backward per image: "
          f"median {med * 1e3:.1f} ms ({med * 1e3 / batch:.1f} ms per image)")


if __name__ == "__main__":
    main()
