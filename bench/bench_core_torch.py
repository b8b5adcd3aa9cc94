"""PyTorch side of bench/bench_core: one forward of a batch, then 4 backward passes
(fc3 units 540 and 23, vanilla and guided) with retain_graph, median of reps.
    bench_core_torch.py ARCH [batch] [reps] [threads]
"""
import statistics
import sys
import time

import torch
import torchvision

from bench_torch import RuleReLU, prepare_batched


def main():
    arch = sys.argv[1]
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    torch.manual_seed(0)
    model = prepare_batched(getattr(torchvision.models, arch)().eval())
    x = torch.rand(batch, 3, 224, 224) * 4 - 2
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        xi = x.clone().requires_grad_(True)
        out = model(xi)
        for guided in (None, True):
            RuleReLU.guided = guided
            for unit in (539, 22):
                xi.grad = None
                out[:, unit].sum().backward(retain_graph=True)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"pytorch {torch.__version__}: batch {batch}, 1 forward + 4 backward per image: "
          f"median {med * 1e3:.1f} ms ({med * 1e3 / batch:.1f} ms per image)")


if __name__ == "__main__":
    main()
