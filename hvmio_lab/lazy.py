"""Lazy exports for a package: each public name is imported from its module on first use, so
importing the package loads nothing heavy (unicorn, capstone, ipywidgets) until it is wanted."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def exports(package: str, where: Mapping[str, str], namespace: dict[str, Any]
            ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:  # fmt: skip
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose public name N lives in its
    submodule ``where[N]``. On first use every public name of that submodule is bound in
    ``namespace``: importing a submodule binds the submodule's own name in the package, which
    must not shadow a function of the same name (``widgets.exercise``)."""

    def getattr_(name: str) -> Any:
        module_name = where.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = import_module(f".{module_name}", package)
        namespace.update({n: getattr(module, n) for n, m in where.items() if m == module_name})
        return namespace[name]

    def dir_() -> list[str]:
        return sorted({*namespace, *where})

    return getattr_, dir_
