"""What to install for an optional part of mvit, in words pip takes anywhere.

mvit is installed from a clone, not from PyPI, so "pip install 'mvit-cli[ray]'" names a
package pip cannot find. The extra's own requirements, read from the installed package's
metadata, install the same thing wherever mvit came from.
"""

from __future__ import annotations

import re
from importlib import metadata

DISTRIBUTION = "mvit-cli"


def requirements_of(extra: str) -> list[str]:
    """The requirements of `extra` as pyproject.toml lists them ([] if unknown)."""
    marker = re.compile(r"""extra\s*==\s*["']""" + re.escape(extra) + r"""["']""")
    try:
        listed = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []
    return [line.split(";")[0].strip() for line in listed
            if ";" in line and marker.search(line.split(";", 1)[1])]


def install_hint(extra: str) -> str:
    """`pip install 'ray[data]>=2.51' ...` for the extra (or, when the metadata is not there,
    the extra from mvit's own folder)."""
    requirements = requirements_of(extra)
    if not requirements:
        return f"pip install -e \".[{extra}]\" in mvit's folder"
    return "pip install " + " ".join(f"'{r}'" for r in requirements)
