"""Hostile and unusual PyTorch files for ft's pickle guard (tests/hostile.rs, ft-hub).

Writes to --out (tests/fixtures/hostile):
- evil-resnet/: the tiny ResNet's config.json and a resnet.pth whose state dict is complete
  but also holds an entry that runs `os.system` when unpickled by Python (weights_only=False).
- evil-only.pth: a pickle whose only object is an `os.system` call.
- empty.pth: `torch.save({})`, and wrong-names.pth: tensors no ResNet has.
- legacy.pth (the pre-1.6 format), protocol4.pth (ZIP, pickle protocol 4, STACK_GLOBAL) and
  expected.json: benign files ft must read, with their values.

Nothing here is executed by this script except torch.save; the os.system payload only writes
a marker file under /tmp when someone unpickles the file in Python without weights_only.
"""
import argparse, json, os, shutil
from collections import OrderedDict
import torch

class Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/ft-hostile-pickle-ran",))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--resnet", required=True, help="tests/fixtures/models/tiny-resnet-pth")
    a = ap.parse_args()
    out = a.out
    os.makedirs(out, exist_ok=True)

    sd = torch.load(os.path.join(a.resnet, "resnet.pth"), weights_only=True)
    evil = os.path.join(out, "evil-resnet")
    os.makedirs(evil, exist_ok=True)
    shutil.copy(os.path.join(a.resnet, "config.json"), os.path.join(evil, "config.json"))
    bad = OrderedDict(sd)
    bad["_extra"] = Payload()
    torch.save(bad, os.path.join(evil, "resnet.pth"))
    torch.save(Payload(), os.path.join(out, "evil-only.pth"))
    torch.save({}, os.path.join(out, "empty.pth"))
    torch.save({"encoder.w": torch.ones(2, 2)}, os.path.join(out, "wrong-names.pth"))

    g = torch.Generator().manual_seed(0)
    small = OrderedDict([("a.weight", torch.randn(2, 3, generator=g)), ("b.bias", torch.randn(4, generator=g).half())])
    torch.save(small, os.path.join(out, "legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save(small, os.path.join(out, "protocol4.pth"), pickle_protocol=4)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({k: {"shape": list(v.shape), "values": v.float().flatten().tolist()} for k, v in small.items()}, f, indent=1)
    # The guard's claim, checked in Python: these load with weights_only=True, the evil ones do not.
    # (protocol4.pth is left out: torch's weights_only unpickler has no FRAME opcode, ft reads it.)
    for name in ["legacy.pth", "empty.pth", "wrong-names.pth"]:
        torch.load(os.path.join(out, name), weights_only=True)
    for name in ["evil-only.pth", "evil-resnet/resnet.pth"]:
        try:
            torch.load(os.path.join(out, name), weights_only=True)
            raise SystemExit(f"{name} loaded with weights_only=True")
        except Exception as e:
            assert "os.system" in str(e) or "posix.system" in str(e), e

if __name__ == "__main__":
    main()
