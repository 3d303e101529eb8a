"""The POST port 0x80."""

from __future__ import annotations

from .bus import Location, ones


class PostPort:
    """The POST/debug port 0x80: guests write progress and result codes here.

    Written bytes are kept in ``codes``; reads return all ones, as nothing latches the value.
    """

    location: Location = "hypervisor"
    name = "post"

    def __init__(self) -> None:
        self.codes: list[int] = []

    def read(self, port: int, size: int) -> int:
        return ones(size)

    def write(self, port: int, size: int, value: int) -> None:
        self.codes.append(value)
