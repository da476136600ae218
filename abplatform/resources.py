"""Where the package's own files are at run time: the metrics SQL and the dashboard app.

In the repository they are the top-level ``sql/`` and ``dashboards/`` folders; pyproject.toml
ships them inside the package as ``abplatform.sql`` and ``abplatform.dashboards`` (an editable
install maps the same names onto the repository's folders). They are found through
importlib.resources, so the answer is right for an installed wheel and an editable install alike;
a plain source checkout that was never installed (``abplatform`` imported from the repository's
root) falls back to the folders beside the package.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from abplatform.errors import InputError

_CHECKOUT = Path(__file__).resolve().parent.parent


def _folder(package: str, checkout_name: str, wanted: str) -> Path:
    """The real folder holding ``package``'s files (one that matches the glob ``wanted``)."""
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        root = None
    # a zipped install gives a Traversable that is no folder: Streamlit and duckdb need real files
    checkout = _CHECKOUT / checkout_name if (_CHECKOUT / "pyproject.toml").is_file() else None
    for folder in (root, checkout):
        if isinstance(folder, Path) and any(folder.glob(wanted)):
            return folder
    raise InputError(f"abplatform's {checkout_name} files are missing: no {wanted} in package {package} "
                     f"(the install is incomplete; reinstall abplatform)")


@functools.cache
def sql_dir() -> Path:
    """The folder of the metrics SQL (``01_session_values.sql`` ...)."""
    return _folder("abplatform.sql", "sql", "*.sql")


@functools.cache
def dashboard_app() -> Path:
    """The Streamlit script of the analyst dashboard (``streamlit run`` takes this path); its pages
    are the ``views/*.py`` beside it."""
    return _folder("abplatform.dashboards", "dashboards", "app.py") / "app.py"
