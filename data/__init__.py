"""The package's data (guest programs, disk image, cost models, bench snapshots).

This file makes data/ the package ``hvmio_lab.data`` (setup.py maps it), so
``importlib.resources`` finds these files in an editable install as in a wheel. Read them
through ``hvmio_lab.resources.data(...)``.
"""
