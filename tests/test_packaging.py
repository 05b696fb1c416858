"""Wheels ship every model folder in pretrained/ (pyproject's data-files must list each one)."""

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_every_shipped_model_folder_is_in_the_wheel_data_files():
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pretrained").rglob("*") if p.is_dir()}
    listed = {target.removeprefix("share/wavesynth/") for target in data_files}
    assert shipped == listed
    for target, patterns in data_files.items():
        files = {f for pattern in patterns for f in ROOT.glob(pattern) if f.is_file()}
        present = {f for f in (ROOT / target.removeprefix("share/wavesynth/")).iterdir() if f.is_file()}
        assert files == present, target
