"""``hvmio-lab kvm-probe``: time an in-kernel and a userspace I/O exit on this /dev/kvm."""

from __future__ import annotations

import argparse


def _probe(args: argparse.Namespace) -> int:
    from ..kvm_probe import probe

    print(probe(budget_s=args.seconds, device=args.device))
    return 0


def _seconds(text: str) -> float:
    value = float(text)
    if not 0.05 <= value <= 10:
        raise argparse.ArgumentTypeError(f"must be 0.05..10 seconds, got {text}")
    return value


def add(commands: argparse._SubParsersAction) -> None:
    kvm = commands.add_parser(
        "kvm-probe", help="measure one I/O exit on this machine's KVM (kvm-unit-tests style)",
        description="Create a tiny real-mode VM on /dev/kvm (no QEMU) that reads an in-kernel "
        "port (ELCR 0x4d0) and an unclaimed port (0x1234, answered by this process) in a "
        "loop; print TSC cycles and ns per exit, the KVM backend, and what the figures mean "
        "on it. Status 2 when there is no usable KVM.",
    )  # fmt: skip
    kvm.add_argument("--seconds", type=_seconds, default=0.8, help="time budget (0.8)")
    kvm.add_argument("--device", default="/dev/kvm", help="the KVM device (/dev/kvm)")
    kvm.set_defaults(handler=_probe)
