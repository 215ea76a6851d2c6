"""The package as pip installs it: every subpackage listed, every data file shipped."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_subpackage_is_listed_for_installation():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(path.parent.relative_to(ROOT).parts)
             for path in (ROOT / "mvit_cli").rglob("*.py") if "__pycache__" not in path.parts}
    missing = sorted(found - listed)
    assert not missing, f"pyproject.toml [tool.setuptools] packages lacks {missing}"


def test_an_optional_part_is_named_in_words_pip_takes():
    """mvit is not on PyPI: a missing extra is named by its own requirements, read from the
    installed metadata, which are pyproject.toml's."""
    from mvit_cli.extras import install_hint, requirements_of

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for extra in ("ray", "plot", "parquet", "remote", "onnx", "openvino"):
        assert requirements_of(extra) == extras[extra], extra
        assert install_hint(extra) == "pip install " + " ".join(f"'{r}'" for r in extras[extra])
    assert install_hint("nothing") == "pip install -e \".[nothing]\" in mvit's folder"
