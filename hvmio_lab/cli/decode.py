"""``hvmio-lab decode svm|vmx``: an exit record, field by field."""

from __future__ import annotations

import argparse

from ..exits import SvmIoExit, VmxIoExit
from .common import number, print_exit


def _decode_svm(args: argparse.Namespace) -> int:
    exit_ = SvmIoExit(args.exitinfo1, args.next_rip, args.rip)
    print_exit(exit_, "AMD SVM VMEXIT_IOIO: EXITINFO1 (APM Vol. 2 §15.10.2), EXITINFO2 = next RIP")
    return 0


def _decode_vmx(args: argparse.Namespace) -> int:
    exit_ = VmxIoExit(args.qualification, args.length, args.rip, args.info)
    print_exit(
        exit_,
        "Intel VMX I/O instruction exit: exit qualification (SDM Vol. 3C), "
        "VM-exit instruction length",
    )
    return 0


def add(commands: argparse._SubParsersAction) -> None:
    decode = commands.add_parser(
        "decode", help="decode an I/O exit record field by field",
        description="Decode an SVM or VMX I/O exit record, field by field.",
    )
    vendors = decode.add_subparsers(dest="vendor", metavar="{svm,vmx}", required=True)

    svm = vendors.add_parser("svm", help="AMD SVM: EXITINFO1 and EXITINFO2 (next RIP)")
    svm.add_argument("exitinfo1", type=number, help="EXITINFO1, e.g. 0x1f480241")
    svm.add_argument("--rip", type=number, default=0, help="RIP of the I/O instruction (0)")
    svm.add_argument(
        "--next-rip", "--exitinfo2", dest="next_rip", type=number, required=True,
        help="EXITINFO2: RIP of the next instruction (length = EXITINFO2 − RIP)",
    )
    svm.set_defaults(handler=_decode_svm)

    vmx = vendors.add_parser("vmx", help="Intel VMX: exit qualification and instruction length")
    vmx.add_argument("qualification", type=number, help="exit qualification, e.g. 0x1f480008")
    vmx.add_argument("--length", type=number, required=True, help="VM-exit instruction length")
    vmx.add_argument("--rip", type=number, default=0, help="RIP of the I/O instruction (0)")
    vmx.add_argument(
        "--info", type=number, default=None,
        help="VM-exit instruction-information (INS/OUTS: address size, segment)",
    )
    vmx.set_defaults(handler=_decode_vmx)
