"""PyTorch's side of `crates/ft-models/examples/resnet_step.rs`: torchvision resnet18 (10 classes)
at batch 16, inference, a full training step's forward + backward, and the same with the backbone
frozen (requires_grad False, BatchNorm in eval mode), on 2 threads.

    ~/.cache/ft-venv-models/bin/python benches/torch_resnet_step.py [SIZE...]
"""
import sys
import time

import torch
import torchvision

torch.set_num_threads(2)
sizes = [int(a) for a in sys.argv[1:]] or [64, 224]
model = torchvision.models.resnet18(num_classes=10)


def timed(size, name, f):
    f()
    start = time.perf_counter()
    for _ in range(3):
        f()
    ms = (time.perf_counter() - start) * 1000 / 3
    print(f"{size}px {name}: {ms:.1f} ms ({16000 / ms:.1f} images/s)")


for size in sizes:
    x = torch.randn(16, 3, size, size)

    def infer():
        model.eval()
        with torch.no_grad():
            model(x)

    def train():
        model.train()
        for p in model.parameters():
            p.requires_grad_(True)
        model.zero_grad()
        model(x).sum().backward()

    def frozen():
        model.eval()
        for n, p in model.named_parameters():
            p.requires_grad_(n.startswith("fc."))
        model.zero_grad()
        model(x).sum().backward()

    timed(size, "inference", infer)
    timed(size, "train fwd+bwd", train)
    timed(size, "frozen fwd+bwd", frozen)
