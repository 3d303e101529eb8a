"""ipywidgets UIs, thin and built on the public API (each widget's logic is testable in Python).

Usage in a chapter (the API notebooks rely on; stable)::

    from hvmio_lab.widgets import exercise, practice, predict
    exercise("02_1")                      # question, answer box(es), Check / Hint / Solution
    practice(practice_02(seed=1, n=5))    # per-question Check / Hint / Reveal
    predict("How many exits will uart_hello take?", reveal=lambda: f"{guest.run().exits}",
            options=None, answer=None, explain="")   # predict, then see what the code shows

    from hvmio_lab.widgets import FastPathExplorer, DefectExplorer   # chapters 05 and 07
    FastPathExplorer()        # pick instruction, vendor, path: both paths side by side
    DefectExplorer()          # pick a 2010 defect: seed2010 beside the modern handling

    BitFlipper(EXITINFO1, 0x1F480241), DecoderWidget("26 67 F3 6F", mode=32),
    ExitStepper(Guest("uart_hello")), TimingPanel("amd-k8-2010")

Storing a chapter (notebook authors): after ``jupyter nbconvert --execute --inplace NB``, run
``python -m hvmio_lab.widgets.save_hook NB`` — nbconvert stores widget state and views, which
show as an error or a blank where no kernel runs; the hook leaves the static views (nbval
ignores the widget-view key, so the check still passes). ``tests/test_save_hook.py`` checks it.

``exercise(key)`` takes any key of ``hvmio_lab.checks.EXERCISES`` ("00_1" … "07_4"); the
``check_NN_k`` functions stay callable from code and run the same judge. A ``predict`` reveal
given as a function runs only when the learner asks, so Run All prints no answer.

Nothing broken on open (the choice, and why): every widget's output also carries a static
view, ``text/html`` and ``text/plain`` that read on their own (the question, the table, the
decode), and notebooks are saved with the widget-view references removed, so every front end
shows that static view until the cell runs again. The Jupyter server that ``make lab`` /
``hvmio-lab lab`` start saves through ``hvmio_lab.widgets.save_hook.pre_save_hook``; the
shipped notebooks are stored the same way (``python -m hvmio_lab.widgets.save_hook
notebooks/*.ipynb``). Why not keep the references: without the kernel they show "Error
displaying widget: model not found" in JupyterLab 4 (jupyterlab/jupyterlab#15361); JupyterLab
stores no widget state by default and drops stored state on save (ipywidgets#3888); and even
stored state renders in nbconvert's HTML only with a widget manager fetched from unpkg.com, so
offline it is blank. Voilà always runs the notebook, so its widgets are live.

Names load on first use, so the server's save hook imports no ipywidgets or matplotlib.
"""

from __future__ import annotations

from ..lazy import exports

_WHERE = {
    "BitFlipper": "bitflipper",
    "DecoderWidget": "decoder",
    "ExitStepper": "stepper",
    "TimingPanel": "timing",
    "ExerciseWidget": "exercise",
    "PracticeWidget": "exercise",
    "PredictWidget": "exercise",
    "exercise": "exercise",
    "practice": "exercise",
    "predict": "exercise",
    "FastPathExplorer": "explorers",
    "DefectExplorer": "explorers",
}

__all__ = sorted(_WHERE)


__getattr__, __dir__ = exports(__name__, _WHERE, globals())
