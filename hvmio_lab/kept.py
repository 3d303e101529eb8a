"""Immutable records kept between exits, so that a repeated exit builds nothing new: each table
is bounded, because hand-made records, a fuzzer or code that keeps writing new code can bring
new keys forever. A full table starts again empty (a miss only costs a rebuild)."""

from __future__ import annotations

from typing import TypeVar

LIMIT = 4096  # entries per table
T = TypeVar("T")


def keep(table: dict, key: object, value: T) -> T:
    """Store ``value`` under ``key`` (emptying a full table first) and return it."""
    if len(table) >= LIMIT:
        table.clear()
    table[key] = value
    return value
