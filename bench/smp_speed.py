"""Training images/s of segmentation-models-pytorch's Unet, for bench/train_speed.py.

Runs in a separate virtual environment (smp needs torchvision, which pixelseg never imports),
so it uses only torch, smp, numpy and PIL: no pixelseg. Prints one JSON object on stdout.

    /tmp/smp-venv/bin/python bench/smp_speed.py --data DIR/train --size 360x480

The loop is the plain one (zero_grad, forward, cross-entropy, backward, Adam step) over the
same PNGs pixelseg trains on, decoded with PIL and flipped at random, fp32 on the CPU. smp's
Unet needs sizes divisible by 32, so images are padded (image 0, mask ignored) up to the next
multiple: what a user of smp has to do, and the FLOPs are counted at the padded size.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

IGNORE_INDEX = 255


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


class Pngs(torch.utils.data.Dataset):
    def __init__(self, folder: Path, size: tuple[int, int]) -> None:
        self.images = sorted((folder / "images").glob("*.png"))
        self.masks = [folder / "masks" / p.name for p in self.images]
        self.size = size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = np.asarray(Image.open(self.images[i]).convert("RGB"))
        msk = np.asarray(Image.open(self.masks[i])).astype(np.int64)
        if np.random.rand() < 0.5:
            img, msk = img[:, ::-1], msk[:, ::-1]
        x = torch.from_numpy(img.copy()).permute(2, 0, 1).float() / 255
        y = torch.from_numpy(msk.copy())
        h, w = self.size
        ph, pw = h - y.shape[0], w - y.shape[1]
        return F.pad(x, (0, pw, 0, ph)), F.pad(y, (0, pw, 0, ph), value=IGNORE_INDEX)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a split folder with images/ and masks/")
    ap.add_argument("--size", default="360x480")
    ap.add_argument("--classes", type=int, default=7)
    ap.add_argument("--encoder", default="resnet18")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
    torch.manual_seed(0)
    np.random.seed(0)
    model = smp.Unet(args.encoder, encoder_weights=None, classes=args.classes)
    with FlopCounterMode(display=False) as fc:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, ph, pw))
    fwd_flops = fc.get_total_flops()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ce = torch.nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    loader = torch.utils.data.DataLoader(
        Pngs(Path(args.data), (ph, pw)),
        batch_size=args.batch,
        shuffle=True,
        num_workers=0,
        drop_last=True,
    )
    rates = []
    for _ in range(args.repeats):
        n, images, t0 = 0, 0, None
        while n < args.warmup + args.steps:
            for x, y in loader:
                if n == args.warmup:
                    t0 = time.perf_counter()
                opt.zero_grad()
                loss = ce(model(x), y)
                loss.backward()
                opt.step()
                n += 1
                images += x.shape[0] if n > args.warmup else 0
                if n >= args.warmup + args.steps:
                    break
        rates.append(images / (time.perf_counter() - t0))
    peak = matmul_gflops()
    best = max(rates)
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "smp": smp.__version__,
                "encoder": args.encoder,
                "python": platform.python_version(),
                "threads": torch.get_num_threads(),
                "size": [h, w],
                "padded_size": [ph, pw],
                "batch": args.batch,
                "steps": args.steps,
                "params": sum(p.numel() for p in model.parameters()),
                "forward_gflops_per_image": fwd_flops / 1e9,
                "images_per_s": best,
                "all_images_per_s": rates,
                "train_gflops_per_s": 3 * fwd_flops / 1e9 * best,
                "matmul_gflops": peak,
                "share_of_matmul": 3 * fwd_flops / 1e9 * best / peak,
            }
        )
    )


if __name__ == "__main__":
    main()
