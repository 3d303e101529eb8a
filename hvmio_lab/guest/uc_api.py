"""unicorn's C API, called directly: register reads and writes (plain ones and the descriptor
tables' registers), and the IN/OUT hooks.

The Python binding (unicorn 2.1) wraps both in Python that costs more than the C call: its
``reg_read`` works out a ctypes class for the register at every call (about five times the C
call: 3.2 against 0.6 µs, ``bench/bench_guest.py`` rows ``reg_read``), and its hook wrapper
adds two Python frames to every I/O instruction (a loop of 10,000 INs measured once here:
1.2 µs a hook through the binding, 0.55 µs through the C API). The functions are unicorn's
public C API; only the loaded library and the engine's handle are taken from the binding, and
where those are not to be had (another binding) the binding's own methods are used, slower
and the same.
The C functions are called untyped, with every pointer already a ctypes object, so that
ctypes converts no argument.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from functools import cache

from unicorn import UC_HOOK_INSN, Uc, UcError
from unicorn import x86_const as ux

Batch = Callable[[tuple[int, ...]], Callable[[], tuple[int, ...]]]
_IN_HOOK = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                            ctypes.c_void_p)  # fmt: skip
# what an IN hook returns for all ones: unicorn keeps the instruction's own width of it
# (measured on 2.1.4: IN AL takes 0xFF, IN AX 0xFFFF, and the rest of RAX stays)
_ALL_ONES = 0xFFFF_FFFF
_OUT_HOOK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                             ctypes.c_uint32, ctypes.c_void_p)  # fmt: skip


@cache
def _functions() -> tuple | None:
    """unicorn's uc_reg_read, uc_reg_write, uc_reg_read_batch and uc_hook_add, untyped, from
    the library the binding loaded (once a process: loading costs 0.1 ms), or None."""
    try:
        from unicorn.unicorn_py3.unicorn import uclib

        library = ctypes.CDLL(uclib._name)
    except (ImportError, AttributeError, OSError):
        return None
    return (library.uc_reg_read, library.uc_reg_write, library.uc_reg_read_batch,
            library.uc_hook_add)  # fmt: skip


def _c_api(uc: Uc) -> tuple | None:
    """(engine handle, the functions) or None."""
    functions, handle = _functions(), getattr(uc, "_uch", None)
    if functions is None or handle is None:
        return None
    return ctypes.c_void_p(handle.value), functions


@cache
def _array(kind, n: int):
    return kind * n


def registers(uc: Uc) -> tuple[Callable[[int], int], Callable[[int, int], None], Batch]:
    """(read, write, batch) of plain registers, up to 64 bits each: ``batch(ids)`` gives a
    function that reads those registers in one C call (about 1.4 times the price of one),
    its C arrays made once, when it is asked for."""
    found = _c_api(uc)
    if found is None:
        return uc.reg_read, uc.reg_write, lambda ids: lambda: tuple(uc.reg_read_batch(ids))
    handle, (c_read, c_write, c_batch, _) = found
    cell = ctypes.c_uint64()
    ref = ctypes.byref(cell)

    def batch(ids: tuple[int, ...]) -> Callable[[], tuple[int, ...]]:
        n = len(ids)
        values = _array(ctypes.c_uint64, n)()  # a slot only ever holds its one register, so
        pointers = _array(ctypes.c_void_p, n)(*(ctypes.addressof(values) + 8 * i  # a selector's
                                                for i in range(n)))  # 6 unwritten bytes stay 0
        id_array = _array(ctypes.c_int, n)(*ids)
        unpack = struct.Struct(f"={n}Q").unpack_from  # all values in one C call, not one
        # ctypes conversion per element

        def read_batch() -> tuple[int, ...]:
            status = c_batch(handle, id_array, pointers, n)
            if status:
                raise UcError(status)
            return unpack(values)

        return read_batch

    def read(reg_id: int) -> int:
        cell.value = 0  # unicorn writes only the register's own width (2 bytes for a selector)
        status = c_read(handle, reg_id, ref)
        if status:
            raise UcError(status, reg_id)
        return cell.value

    def write(reg_id: int, value: int) -> None:
        cell.value = value
        status = c_write(handle, reg_id, ref)
        if status:
            raise UcError(status, reg_id)

    return read, write, batch


class _TableRegister(ctypes.Structure):
    """unicorn's ``uc_x86_mmr``: GDTR, IDTR, LDTR or TR (selector and flags unused by the first
    two)."""

    _fields_ = (("selector", ctypes.c_uint16), ("base", ctypes.c_uint64),
                ("limit", ctypes.c_uint32), ("flags", ctypes.c_uint32))  # fmt: skip


def table_register(uc: Uc) -> Callable[[int], tuple[int, int]]:
    """``read(UC_X86_REG_GDTR)`` → (base, limit): a descriptor table's register, by the C call
    (a protected-mode exit with a non-null selector reads one; through the binding that was
    about 8 µs, the most of an exit's descriptor lookup in a SeaBIOS boot)."""
    found = _c_api(uc)
    if found is None:
        def binding_read(reg_id: int) -> tuple[int, int]:
            _, base, limit, _ = uc.reg_read(reg_id)
            return base, limit

        return binding_read
    handle, (c_read, *_) = found
    cell = _TableRegister()
    ref = ctypes.byref(cell)

    def read(reg_id: int) -> tuple[int, int]:
        status = c_read(handle, reg_id, ref)
        if status:
            raise UcError(status, reg_id)
        return cell.base, cell.limit

    return read


def hook_io(uc: Uc, on_in: Callable[[int, int], int | None],
            on_out: Callable[[int, int, int], None],
            on_error: Callable[[BaseException], None]) -> object:  # fmt: skip
    """Hook every IN (and INS) and OUT (and OUTS): ``on_in(port, size)`` returns the value
    (None: all ones), ``on_out(port, size, value)``. An exception cannot cross unicorn's C
    frames: it goes to ``on_error``, the CPU is stopped, and an IN reads 0. Returns what must
    be kept alive as long as ``uc`` runs."""
    found = _c_api(uc)
    if found is None:
        def binding_in(_uc, port, size, _data):
            value = on_in(port, size)
            return _ALL_ONES if value is None else value

        def binding_out(_uc, port, size, value, _data):
            on_out(port, size, value)

        uc.hook_add(UC_HOOK_INSN, binding_in, None, 1, 0, ux.UC_X86_INS_IN)
        uc.hook_add(UC_HOOK_INSN, binding_out, None, 1, 0, ux.UC_X86_INS_OUT)
        return None
    handle, (*_, c_hook_add) = found

    def c_in(_uc, port, size, _data):
        try:
            value = on_in(port, size)
            return _ALL_ONES if value is None else value
        except BaseException as error:
            on_error(error)
            uc.emu_stop()
            return 0

    def c_out(_uc, port, size, value, _data):
        try:
            on_out(port, size, value)
        except BaseException as error:
            on_error(error)
            uc.emu_stop()

    kept = (_IN_HOOK(c_in), _OUT_HOOK(c_out))
    for callback, insn in zip(kept, (ux.UC_X86_INS_IN, ux.UC_X86_INS_OUT), strict=True):
        hook = ctypes.c_size_t()
        status = c_hook_add(handle, ctypes.byref(hook), UC_HOOK_INSN, callback, None,
                            ctypes.c_uint64(1), ctypes.c_uint64(0), ctypes.c_int(insn))
        if status:
            raise UcError(status)
    return kept
