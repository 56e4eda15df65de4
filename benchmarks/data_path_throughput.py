"""CPU training throughput of the default CNN: our in-memory data path versus the usual
`torchvision.datasets.ImageFolder` + PIL `DataLoader` pipeline, same model, same run.

Both paths apply the same 'standard' augmentation preset and the same normalisation; the only
difference is where the faces come from (decoded uint8 arrays vs JPEG files decoded by PIL per item).
It reports the data pipeline alone and a full training step (forward, backward, AdamW).

    python benchmarks/data_path_throughput.py PATH [--batches 40] [--workers 0] [--amp off|bf16]
"""
import argparse
import os
import platform
import time
from datetime import date

import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import v2

from fer.config import RunConfig
from fer.core.device import amp_dtype
from fer.data import load_fer2013
from fer.data.augment import build_augmentation
from fer.data.loaders import train_loader
from fer.data.preprocess import to_model_input
from fer.models import create_model
from fer.training.loops import autocast


def imagefolder_loader(root: str, batch_size: int, workers: int) -> DataLoader:
    """The common baseline: PIL decode per item, then the same augmentation, as uint8 tensors."""
    transform = v2.Compose([v2.Grayscale(1), v2.PILToTensor(), build_augmentation("standard", 48)])
    dataset = datasets.ImageFolder(os.path.join(root, "train"), transform=transform)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                      persistent_workers=workers > 0)


def measure(loader: DataLoader, batches: int, step=None) -> float:
    """Images per second over `batches` batches after 3 warm-up batches."""
    it = iter(loader)
    for _ in range(3):
        x, y = next(it)
        if step:
            step(x, y)
    seen, start = 0, time.perf_counter()
    for _ in range(batches):
        x, y = next(it)
        if step:
            step(x, y)
        seen += len(y)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="FER2013 image-folder root (train/<class>/...)")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--amp", default="off", choices=["off", "bf16"])
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = RunConfig()
    spec = cfg.preprocessing()
    device = torch.device("cpu")
    dtype = amp_dtype(args.amp, device)
    model = create_model(cfg.model.name).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss()

    def step(x, y):
        x = to_model_input(x, spec).contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            loss = criterion(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    data = load_fer2013(args.path)
    train = data.split_indices("Training")
    ours = train_loader(data.images[train], data.labels[train], build_augmentation("standard", 48),
                        args.batch_size, "none", 7, torch.Generator().manual_seed(0), args.workers)
    baseline = imagefolder_loader(args.path, args.batch_size, args.workers)
    rows = []
    for name, loader in (("fer in-memory arrays", ours), ("ImageFolder + PIL", baseline)):
        rows.append((name, measure(loader, args.batches * 4), measure(loader, args.batches, step)))
    print(f"# {date.today()} | {platform.processor() or platform.machine()} | {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} torch threads | torch {torch.__version__} | {cfg.model.name}, batch "
          f"{args.batch_size}, workers {args.workers}, amp {args.amp}, 'standard' augmentation")
    print("| data path | data only, images/s | training step, images/s |")
    print("|---|---|---|")
    for name, data_only, training in rows:
        print(f"| {name} | {data_only:,.0f} | {training:,.1f} |")


if __name__ == "__main__":
    main()
