"""Training throughput of CoReNet h7 at paper scale: examples/s and achieved TFLOP/s.

FLOPs are counted by torch's FlopCounterMode on one real training step (forward + backward of
the model, convolutions and matrix products), so the figure is the model's, not an estimate.
The yardstick ("peer") is measured in the same run on the same device: the throughput of a
large dense matrix product in the same precision (what the hardware delivers to a perfect
kernel), and on an NVIDIA H200 also the nominal dense bf16 peak (989 TFLOP/s).

On a GPU it runs the paper set-up (ResNet-50, 256 px input, 128^3 output, batch 4 per GPU,
bf16 autocast, Adam). On a CPU it runs the same network at a reduced size (128 px input, 64^3
output, batch 2, fp32), since a full step takes minutes there; --full forces the paper size.

    python benchmarks/train_throughput.py            # prints a table; last line: the ratio
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.camera import corenet_camera_transform  # noqa: E402
from stages.families.corenet.task import build_model  # noqa: E402
from stages.model_config import load_model_spec  # noqa: E402
from stages.models.losses import corenet_loss  # noqa: E402
from stages.torch_device import resolve_device  # noqa: E402

H200_BF16_DENSE_TFLOPS = 989.0


def matmul_tflops(device, dtype, size: int, seconds: float = 2.0) -> float:
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    _sync(device)
    return 2 * size**3 * n / (time.perf_counter() - start) / 1e12


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="h7")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--full", action="store_true", help="paper size even on a CPU")
    p.add_argument("--steps", type=int, default=0, help="timed steps (default: 20 on GPU, 3 on CPU)")
    p.add_argument("--batch", type=int, default=0, help="batch size (default: 4 on GPU, 2 on CPU)")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = device.type == "cuda"
    spec = load_model_spec(Path(__file__).resolve().parents[1] / "config" / "models" / f"{args.model}.yaml", "paper")
    if not (gpu or args.full):
        net = dict(spec.network, channels=spec.network["channels"][:-1])  # one stage less: 64^3
        spec = replace(spec, resolution=64, eval_resolution=64, input_size=128, network=net)
    batch = args.batch or (4 if gpu else 2)
    steps = args.steps or (20 if gpu else 3)
    model = build_model(spec).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.train.lr, eps=spec.train.adam_eps)
    image = torch.rand(batch, 3, spec.input_size, spec.input_size, device=device)
    camera = torch.from_numpy(corenet_camera_transform()).float().to(device)[None].expand(batch, 4, 4).contiguous()
    offset = torch.full((batch, 3), 0.5, device=device)
    labels = (torch.rand(batch, spec.resolution, spec.resolution, spec.resolution, device=device) < 0.05).long()
    dtype = torch.bfloat16 if gpu else torch.float32

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=gpu):
            loss = corenet_loss(spec.task, model(image, camera, offset), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    from torch.utils.flop_counter import FlopCounterMode

    step()  # warm-up (allocations, cuDNN autotuning)
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops_per_step = counter.get_total_flops()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = (time.perf_counter() - start) / steps
    achieved = flops_per_step / seconds / 1e12
    peer = matmul_tflops(device, dtype, 8192 if gpu else 2048)
    name = torch.cuda.get_device_name(device) if gpu else f"CPU ({torch.get_num_threads()} threads)"
    size = "paper" if (gpu or args.full) else "reduced (128 px, 64^3)"
    print(f"device                     {name}")
    print(f"model                      {spec.name}, {size}, batch {batch}, {'bf16 autocast' if gpu else 'fp32'}")
    print(f"GFLOP per training step    {flops_per_step / 1e9:.1f}  ({flops_per_step / batch / 1e9:.1f} per example)")
    print(f"seconds per step           {seconds:.3f}")
    print(f"examples/s                 {batch / seconds:.2f}")
    print(f"achieved TFLOP/s           {achieved:.3f}")
    print(f"dense matmul TFLOP/s       {peer:.3f}  (same device and precision, this run)")
    if gpu and "H200" in name:
        print(f"fraction of bf16 peak      {achieved / H200_BF16_DENSE_TFLOPS:.1%}  (nominal {H200_BF16_DENSE_TFLOPS:.0f} TFLOP/s dense)")
    print(f"training vs dense matmul: {achieved / peer:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
