"""ipywidgets UIs, thin and built on the public API (each widget's logic is testable in Python)."""

from .bitflipper import BitFlipper as BitFlipper
