"""PyTorch's side of `crates/ft-models/examples/resnet_step.rs`: torchvision resnet18 (10 classes)
at batch 16, inference, a full training step's forward + backward, exercise 7's step (layer3,
layer4 and fc trainable in training mode, on layer2's output computed once beforehand, as ft
caches it), and the step with the backbone frozen (requires_grad False, BatchNorm in eval mode),
on 2 threads. Times are the mean of 3 runs after one warm-up, as resnet_step prints them
(RESNET_STEP_REPEAT=N for N runs, as there).

    ~/.cache/ft-venv-models/bin/python benches/torch_resnet_step.py [SIZE...] [inference|train|unfreeze|frozen...]
"""
import os
import sys
import time

import torch
import torchvision

MODES = ["inference", "train", "unfreeze", "frozen"]
torch.set_num_threads(2)
sizes = [int(a) for a in sys.argv[1:] if a.isdigit()] or [64, 224]
modes = [a for a in sys.argv[1:] if not a.isdigit()]
bad = [m for m in modes if m not in MODES]
if bad:
    sys.exit(f"torch_resnet_step: unknown argument '{bad[0]}' (sizes, or modes: {', '.join(MODES)})")
modes = modes or MODES
repeat = max(1, int(os.environ.get("RESNET_STEP_REPEAT", "3")))
model = torchvision.models.resnet18(num_classes=10)


def timed(size, name, f):
    f()
    start = time.perf_counter()
    for _ in range(repeat):
        f()
    ms = (time.perf_counter() - start) * 1000 / repeat
    print(f"{size}px {name}: {ms:.1f} ms ({16000 / ms:.1f} images/s)")


def trainable(prefixes):
    for n, p in model.named_parameters():
        p.requires_grad_(n.startswith(prefixes))


for size in sizes:
    x = torch.randn(16, 3, size, size)

    def infer():
        model.eval()
        with torch.no_grad():
            model(x)

    def train():
        model.train()
        trainable(("",))
        model.zero_grad()
        model(x).sum().backward()

    def frozen():
        model.eval()
        trainable(("fc.",))
        model.zero_grad()
        model(x).sum().backward()

    m = model
    with torch.no_grad():
        m.eval()
        stage2 = m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))))

    def unfreeze():
        m.train()
        trainable(("layer3.", "layer4.", "fc."))
        m.zero_grad()
        m.fc(torch.flatten(m.avgpool(m.layer4(m.layer3(stage2))), 1)).sum().backward()

    steps = {"inference": (infer, "inference"), "train": (train, "train fwd+bwd"),
             "unfreeze": (unfreeze, "unfreeze step"), "frozen": (frozen, "frozen fwd+bwd")}
    for mode in MODES:
        if mode in modes:
            f, name = steps[mode]
            timed(size, name, f)
