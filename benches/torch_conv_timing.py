"""PyTorch's side of `crates/ft-hub/examples/conv_timing.rs`: the 3×3 convolutions of ResNet18's
layer1 and layer2 and all those of layer3 and layer4 (exercise 7's unfrozen stages) at 224 px,
batch 16 — forward, input gradient and weight gradient apart (aten.convolution_backward with one output each), the fastest of 7 runs,
on 2 threads, with GFLOP/s.

    ~/.cache/ft-venv-models/bin/python benches/torch_conv_timing.py
"""
import time

import torch

torch.set_num_threads(2)
# (name, in, out, input side, kernel, stride, padding), as conv_timing.rs.
SHAPES = [("layer1 3x3", 64, 64, 56, 3, 1, 1), ("layer2 3x3", 128, 128, 28, 3, 1, 1),
          ("layer3.0.conv1", 128, 256, 28, 3, 2, 1), ("layer3 3x3", 256, 256, 14, 3, 1, 1),
          ("layer3.0.downsample", 128, 256, 28, 1, 2, 0), ("layer4.0.conv1", 256, 512, 14, 3, 2, 1),
          ("layer4 3x3", 512, 512, 7, 3, 1, 1), ("layer4.0.downsample", 256, 512, 14, 1, 2, 0)]
N = 16


def best(f):
    f()
    times = []
    for _ in range(7):
        start = time.perf_counter()
        f()
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


print("| conv | forward | input grad | weight grad |\n|---|---:|---:|---:|")
total = [0.0, 0.0, 0.0]
for name, c, oc, hw, k, s, p in SHAPES:
    x, w = torch.randn(N, c, hw, hw), torch.randn(oc, c, k, k) * 0.05
    o = (hw + 2 * p - k) // s + 1
    dy = torch.randn(N, oc, o, o)
    gflop = 2 * N * oc * o * o * c * k * k / 1e9

    def backward(mask):
        return torch.ops.aten.convolution_backward(dy, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], 1, mask)

    with torch.no_grad():
        fwd = best(lambda: torch.nn.functional.conv2d(x, w, None, s, p))
    dx = best(lambda: backward([True, False, False]))
    dw = best(lambda: backward([False, True, False]))
    print(f"| {name} | " + " | ".join(f"{t:.2f} ms ({gflop / t * 1000:.0f} GFLOP/s)" for t in (fwd, dx, dw)) + " |")
    if name.startswith(("layer1", "layer2")):
        continue
    times = 3 if name.endswith("3x3") else 1
    for i, t in enumerate((fwd, dx, dw)):
        total[i] += times * t
print("layer3+4 total (3x3 rows ×3): forward %.1f ms, input grad %.1f ms, weight grad %.1f ms" % tuple(total))
