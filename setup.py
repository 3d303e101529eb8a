"""Which files make the package; the metadata is in pyproject.toml.

The repo keeps data/, notebooks/ and docs/ at its top level. The wheel carries them inside the
package as hvmio_lab/data, hvmio_lab/notebooks and hvmio_lab/docs, so an install has the same
shape as a clone (the workbook's relative links hold in both) and ``hvmio_lab.resources`` finds
the data through importlib.resources in a wheel and in the editable install ``make`` uses.
pyproject.toml alone cannot say this: its package discovery cannot add mapped folders.
"""

from setuptools import find_namespace_packages, find_packages, setup

CODE = find_packages(include=["hvmio_lab", "hvmio_lab.*"])
# data/ and every folder under it (guests/, bench/, boot/, ...), found, not listed.
DATA = ["data", *(f"data.{name}" for name in find_namespace_packages("data", exclude=["*__*"]))]
FOLDERS = {f"hvmio_lab.{name}": name.replace(".", "/") for name in (*DATA, "notebooks", "docs")}

setup(
    packages=[*CODE, *FOLDERS],
    package_dir=FOLDERS,
    package_data={
        **{name: ["*"] for name in FOLDERS if name.startswith("hvmio_lab.data")},
        "hvmio_lab.notebooks": ["*.ipynb"],
        "hvmio_lab.docs": ["*.md"],
    },
    exclude_package_data={"": ["*.pyc"]},
)
