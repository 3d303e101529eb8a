"""``hvmio-lab boot seabios``: real firmware on the unicorn vCPU, through our boot sector."""

from __future__ import annotations

import argparse
from pathlib import Path


def _boot(args: argparse.Namespace) -> int:
    from .. import firmware  # unicorn loads only for the commands that run a guest

    seabios = firmware.find_seabios(path=args.bios)
    result = firmware.boot(args.vendor, args.path, seabios)
    print("--- debug console (port 0x402) ---")
    print(result.console.rstrip("\n"))
    print("--- screen (int 10h teletype) ---")
    print(result.teletype.rstrip("\n").replace("\r", ""))
    print("--- exits ---")
    print(result.summary())
    return 0 if result.success else 1


def add(commands: argparse._SubParsersAction) -> None:
    from ..hypervisor import PATHS, VENDORS

    boot = commands.add_parser(
        "boot", help="boot SeaBIOS on unicorn to our boot sector, every I/O an exit",
        description="Boot SeaBIOS (found where distributions install it, or --bios) with "
        "the firmware PC's devices, through data/boot's boot sector on the ATA disk; print "
        "the console, the screen text and an exit summary. Status 0 = the boot sector "
        "reported success, 1 = it did not, 2 = SeaBIOS is missing or the boot failed.",
    )  # fmt: skip
    boot.add_argument("firmware", choices=("seabios",), help="the firmware to boot")
    boot.add_argument("--vendor", choices=VENDORS, default="svm", help="exit records (svm)")
    boot.add_argument("--path", choices=PATHS, default="fast", help="handler path (fast)")
    boot.add_argument(
        "--bios",
        type=Path,
        default=None,
        help="a SeaBIOS bios.bin (default: HVMIO_SEABIOS, then the usual places)",
    )
    boot.set_defaults(handler=_boot)
