"""The published registry and the label sets it names, held to what their sources say.

`weights/registry.toml` is data that no code checks as it is read: a wrong architecture,
label set, protocol or digest there would run without an error and give wrong answers. These
tests hold every entry to facts it cannot disagree with (its architecture's own config, the
publishers' naming conventions, torchvision's label lists); they also hold the user
registry's reader to refusing what it cannot use, and the choice of a head's class names to
the names stated. None touches the network or builds a model.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import tomllib
from dataclasses import fields
from importlib import resources
from pathlib import Path

import pytest

from mvit_cli.labels import LABEL_SETS, load_labels, read_label_file
from mvit_cli.media.protocol import check_recorded
from mvit_cli.models.architectures import get_config
from mvit_cli.pretrained.registry import (RegistryError, WeightsEntry, default_entry,
                                          find_entry, published_entries, save_user_entries,
                                          user_entries, user_registry_path)

from conftest import register_tiny_architectures

# The normalisation each data set's published models were trained with.
NORMALISATION = {
    "kinetics400": ([0.45, 0.45, 0.45], [0.225, 0.225, 0.225]),
    "imagenet1k": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MVIT_HOME", str(tmp_path / "mvit"))
    (tmp_path / "mvit").mkdir()
    return tmp_path / "mvit"


def _raw_tables() -> list[dict]:
    text = resources.files("mvit_cli.weights").joinpath("registry.toml").read_text("utf-8")
    return tomllib.loads(text)["weights"]


# ---- the published registry ------------------------------------------------------------

def test_every_published_field_is_one_the_registry_reads():
    """The reader skips keys it does not know (other mvit versions' user registries carry
    some), so a misspelt or renamed field in the shipped registry would vanish silently: a
    `bf16` record that is never consulted, a digest that is never checked."""
    known = {f.name for f in fields(WeightsEntry)}
    for table in _raw_tables():
        assert set(table) <= known, (table["name"], sorted(set(table) - known))
    by_name = {entry.name: entry for entry in published_entries()}
    for table in _raw_tables():
        entry = by_name[table["name"]]
        assert {key: getattr(entry, key) for key in table} == table


def test_names_are_unique_and_one_entry_is_the_default():
    names = [entry.name.lower() for entry in published_entries()]
    assert len(names) == len(set(names))
    defaults = [entry.name for entry in published_entries() if entry.default]
    assert defaults == ["b16x4-k400"] and default_entry().name == "b16x4-k400"


def test_each_entry_fits_its_architecture():
    """Labels, frames, sampling rate and crop of an entry are its architecture's own: weights
    registered under the wrong architecture or label set, or tested at other frames than the
    network's position tables hold, would load and classify wrongly without an error."""
    for entry in published_entries():
        cfg = get_config(entry.architecture)
        protocol = check_recorded(entry.protocol, entry.name)
        assert entry.labels == cfg.dataset, entry.name
        if entry.labels in LABEL_SETS:
            assert len(load_labels(entry.labels)) == cfg.num_classes, entry.name
        assert protocol["frames"] == cfg.frames, entry.name
        assert protocol.get("rate", cfg.sampling_rate) == cfg.sampling_rate, entry.name
        assert protocol["crop"] == cfg.size, entry.name
        if entry.labels in NORMALISATION:
            assert (protocol["mean"], protocol["std"]) == NORMALISATION[entry.labels], entry.name


def test_sources_are_pinned_and_checkable():
    """torchvision names its files after the first 8 digits of their sha256, so a prefix
    that is not in the URL is a typo; Hub revisions are a branch or a full commit id."""
    for entry in published_entries():
        if entry.url:
            assert entry.url.startswith("https://"), entry.name
            if entry.sha256_prefix:
                filename = entry.url.rsplit("/", 1)[1]
                assert filename.endswith(f"-{entry.sha256_prefix}.pth"), entry.name
        if entry.hub:
            revision = entry.hub.get("revision", "main")
            commit = len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)
            assert revision == "main" or commit, entry.name
        if entry.sha256:
            assert len(entry.sha256) == 64, entry.name


# ---- the label sets ----------------------------------------------------------------------

def _torchvision_categories(symbol: str) -> list[str]:
    """A label list as torchvision ships it, read from its source (SOURCES.md), not imported."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        pytest.skip("torchvision (a test extra) is not installed")
    source = Path(spec.origin).parent / "models" / "_meta.py"
    for node in ast.parse(source.read_text("utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == symbol
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{symbol} is not in {source}")


@pytest.mark.parametrize("name,symbol", [("kinetics400", "_KINETICS400_CATEGORIES"),
                                         ("imagenet1k", "_IMAGENET_CATEGORIES")])
def test_label_sets_are_torchvisions_index_for_index(name, symbol):
    """A name moved, dropped or misspelt shifts or mislabels the head's outputs."""
    assert list(load_labels(name)) == _torchvision_categories(symbol)


def test_kinetics600_is_its_sorted_class_list():
    """Kinetics-600 checkpoints index the sorted class names of the annotation CSV."""
    names = list(load_labels("kinetics600"))
    assert len(names) == 600 == len(set(names)) and names == sorted(names)
    assert names[0] == "abseiling" and names[-1] == "zumba"


def test_a_labels_file_is_utf8_one_trimmed_name_per_line(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes("  café au lait \n\nnaïve\tclass\t\r\nZürich\r\n".encode("utf-8"))
    assert read_label_file(path) == ["café au lait", "naïve\tclass", "Zürich"]
    path.write_bytes("caf\xe9\n".encode("latin-1"))
    from mvit_cli import UsageError

    with pytest.raises(UsageError, match="must be UTF-8"):
        read_label_file(path)


# ---- the user registry -------------------------------------------------------------------

@pytest.mark.parametrize("field,value,words", [
    ("sha256_prefix", "abc", "not a sha256"),  # too short to check anything
    ("sha256", "g" * 64, "not a sha256"),
    ("top1", True, "wrong kind"),  # JSON true is a bool, not an accuracy
    ("default", "yes", "wrong kind"),
    ("hub", "timm/x", "wrong kind"),
])
def test_a_hand_edited_entry_with_a_bad_field_is_refused(home, field, value, words):
    entry = {"name": "mine", "architecture": "B-16x4", "labels": "kinetics400", field: value}
    user_registry_path().write_text(json.dumps({"weights": [entry]}))
    with pytest.raises(RegistryError, match=words):
        user_entries()


def test_fields_of_other_mvit_versions_are_ignored(home):
    """Older registries name a `layout` (now read from the file itself)."""
    user_registry_path().write_text(json.dumps({"weights": [
        {"name": "mine", "architecture": "B-16x4", "labels": "kinetics400",
         "layout": "torchvision", "file": "/nowhere/mine.safetensors"}]}))
    [entry] = user_entries()
    assert entry.name == "mine" and entry.file == "/nowhere/mine.safetensors"


def test_names_are_found_whatever_their_case(home):
    assert find_entry("  B16X4-K400 ").name == "b16x4-k400"
    save_user_entries([WeightsEntry(name="My-Clips", architecture="B-16x4", labels="custom")])
    assert find_entry("my-clips").name == "My-Clips"


def test_an_architectures_default_weights_come_before_other_entries_for_it(home):
    """`build_model(arch)` without weights loads the entry marked default for that
    architecture, even when the user registry (read first) has others for it."""
    register_tiny_architectures()
    save_user_entries([
        WeightsEntry(name="tiny-mine", architecture="tiny-v1", labels="custom"),
        WeightsEntry(name="tiny-chosen", architecture="tiny-v1", labels="custom", default=True),
        WeightsEntry(name="tiny-other", architecture="tiny-v1", labels="custom"),
    ])
    assert default_entry("tiny-v1").name == "tiny-chosen"
    assert default_entry("B-16x4").name == "b16x4-k400"


# ---- choosing a head's names ---------------------------------------------------------------

def test_stated_names_must_fit_the_head_exactly():
    from mvit_cli.labels import LabelsError, choose_labels

    eleven = [f"n{i}" for i in range(11)]
    with pytest.raises(LabelsError, match="11 labels for a head of 10 classes"):
        choose_labels(10, given=eleven)
    with pytest.raises(LabelsError, match="11 labels for a head of 10 classes"):
        choose_labels(10, in_file=eleven)


@pytest.mark.parametrize("size,name", [(400, "kinetics400"), (600, "kinetics600"),
                                       (1000, "imagenet1k")])
def test_a_standard_head_gets_its_sets_names_and_says_why(size, name):
    from mvit_cli.labels import choose_labels

    names, how = choose_labels(size)
    assert names == list(load_labels(name)) and how == f"{name}, by the head's size"
    names, how = choose_labels(size, label_set=name)
    assert names == list(load_labels(name)) and how == f"{name}, as the registry says"


def test_a_label_sets_name_is_that_set_not_a_file(tmp_path, monkeypatch):
    from mvit_cli.resolve import given_labels

    monkeypatch.chdir(tmp_path)
    assert given_labels("kinetics600") == (list(load_labels("kinetics600")), "kinetics600")
    (tmp_path / "mine.txt").write_text("a\nb\n")
    assert given_labels("mine.txt") == (["a", "b"], "mine.txt")
