"""QEMU's firmware configuration device (fw_cfg) at ports 0x510/0x511."""

from __future__ import annotations

from typing import NamedTuple

from ..errors import DeviceError
from .bus import Location

# Selector keys (QEMU docs/specs/fw_cfg.rst)
SIGNATURE, ID, UUID, RAM_SIZE, NB_CPUS, BOOT_MENU, MAX_CPUS, FILE_DIR = (
    0x00, 0x01, 0x02, 0x03, 0x05, 0x0E, 0x0F, 0x19,
)  # fmt: skip
FILE_FIRST = 0x20  # the first selector QEMU gives a named file
E820_RAM = 1


class FwCfgFile(NamedTuple):
    name: str
    data: bytes


class FwCfg:
    """QEMU fw_cfg, the traditional (port I/O) interface (QEMU docs/specs/fw_cfg.rst).

    A 16-bit write to 0x510 selects an item and rewinds it; each byte read from 0x511 returns
    the item's next byte (firmware reads them with ``rep insb``), and 00h past its end or for
    an item that does not exist. Item 0 is the signature "QEMU"; the ID item says
    "traditional interface only" (bit 1, DMA, clear), so no DMA port is offered. The items
    here: the UUID, RAM size, one CPU, the boot menu off (else SeaBIOS waits for a key with
    interrupts on, and no timer interrupt is delivered here), and a file directory holding
    ``etc/e820`` (one RAM range: the machine's memory). Writes to the data port are ignored
    (QEMU deprecated them); byte access to 0x510 and reads of it are refused.

    Location: the device model (QEMU). Xen's HVM guests have no fw_cfg: hvmloader hands the
    firmware its tables itself.
    """

    location: Location = "device-model"
    name = "fw_cfg"
    ports = range(0x510, 0x512)

    def __init__(self, memory_size: int, files: tuple[FwCfgFile, ...] = ()):
        e820 = (0).to_bytes(8, "little") + memory_size.to_bytes(8, "little")
        files = (FwCfgFile("etc/e820", e820 + E820_RAM.to_bytes(4, "little")), *files)
        self.items: dict[int, bytes] = {
            SIGNATURE: b"QEMU",
            ID: (1).to_bytes(4, "little"),
            UUID: bytes(16),
            RAM_SIZE: memory_size.to_bytes(8, "little"),
            NB_CPUS: (1).to_bytes(2, "little"),
            BOOT_MENU: (0).to_bytes(2, "little"),
            MAX_CPUS: (1).to_bytes(2, "little"),
        }
        directory = len(files).to_bytes(4, "big")  # the directory is big-endian
        for select, file in enumerate(files, FILE_FIRST):
            name = file.name.encode("ascii")
            if len(name) > 55:
                raise DeviceError(f"fw_cfg file name {file.name!r} is longer than 55 bytes")
            directory += len(file.data).to_bytes(4, "big") + select.to_bytes(2, "big")
            directory += bytes(2) + name.ljust(56, b"\0")
            self.items[select] = file.data
        self.items[FILE_DIR] = directory
        self.selector = SIGNATURE
        self.offset = 0

    def read(self, port: int, size: int) -> int:
        if port != 0x511 or size != 1:
            raise DeviceError(
                f"fw_cfg reads are single bytes from the data port 0x511; refused a {size}-byte "
                f"read of {port:#x}"
            )
        item = self.items.get(self.selector, b"")
        if self.offset >= len(item):
            return 0
        self.offset += 1
        return item[self.offset - 1]

    def write(self, port: int, size: int, value: int) -> None:
        if port == 0x511 and size == 1:
            return  # data-port writes: ignored, as QEMU has since 2.4
        if port != 0x510 or size != 2:
            raise DeviceError(
                f"the fw_cfg selector 0x510 takes a 16-bit write; refused a {size}-byte write "
                f"of {port:#x}"
            )
        self.selector, self.offset = value, 0
