"""ipywidgets UIs, thin and built on the public API (each widget's logic is testable in Python)."""

from .bitflipper import BitFlipper as BitFlipper
from .decoder import DecoderWidget as DecoderWidget
from .stepper import ExitStepper as ExitStepper
from .timing import TimingPanel as TimingPanel
