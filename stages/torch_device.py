"""The torch device a stage runs on: `--device auto|cpu|cuda`."""

from __future__ import annotations

import torch

from .errors import StageError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """auto: CUDA when torch sees a GPU, else the CPU; cuda without a GPU is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise StageError("--device cuda requested but torch sees no CUDA device")
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def add_device_arguments(parser) -> None:
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def apply_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)
