"""metrics.csv survives a resume that dies while rewriting it, and a damaged one does not stop a resume."""

import csv
from pathlib import Path

import pytest

from wavesynth.train import logger as logger_module
from wavesynth.train.logger import RunLogger


def rows_of(run: Path) -> list[list[str]]:
    with open(run / "metrics.csv", newline="") as file:
        return list(csv.reader(file))


def log_steps(run: Path, steps: range) -> None:
    logger = RunLogger(run)
    for step in steps:
        logger.scalars(step, {"train/loss": 1.0 / step})
    logger.close()


def test_resume_drops_later_rows_and_writes_atomically(tmp_path):
    log_steps(tmp_path, range(1, 6))
    logger = RunLogger(tmp_path, start_step=3)
    logger.scalars(4, {"train/loss": 0.5})
    logger.close()
    assert [row[0] for row in rows_of(tmp_path)] == ["step", "1", "2", "3", "4"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_rewrite_that_dies_leaves_metrics_csv_whole(tmp_path, monkeypatch):
    """As if killed while the resume rewrote metrics.csv: the file must still hold every row."""
    log_steps(tmp_path, range(1, 6))
    before = (tmp_path / "metrics.csv").read_text()

    class DyingWriter:
        def __init__(self, file) -> None:
            self.file = file

        def writerows(self, rows) -> None:
            self.file.write("step,na")
            raise OSError("killed")

    monkeypatch.setattr(logger_module.csv, "writer", DyingWriter)
    with pytest.raises(OSError, match="killed"):
        RunLogger(tmp_path, start_step=3)
    assert (tmp_path / "metrics.csv").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_resume_with_an_empty_metrics_csv_starts_a_fresh_one(tmp_path):
    (tmp_path / "metrics.csv").write_text("")
    logger = RunLogger(tmp_path, start_step=100)
    logger.scalars(101, {"train/loss": 0.25})
    logger.close()
    assert rows_of(tmp_path) == [["step", "name", "value"], ["101", "train/loss", "0.25"]]
    assert "metrics.csv was empty; starting a fresh one" in (tmp_path / "log.txt").read_text()


def test_resume_with_a_headerless_metrics_csv_keeps_the_original_and_its_rows(tmp_path):
    damaged = "1,train/loss,0.5\n2,train/loss,0.4\n\x00\x00junk\n9,train/loss,0.1\n"
    (tmp_path / "metrics.csv").write_text(damaged)
    logger = RunLogger(tmp_path, start_step=5)
    logger.close()
    assert rows_of(tmp_path) == [["step", "name", "value"], ["1", "train/loss", "0.5"],
                                 ["2", "train/loss", "0.4"]]
    assert (tmp_path / "metrics.csv.bad").read_text() == damaged
    log = (tmp_path / "log.txt").read_text()
    assert "metrics.csv had no header" in log and "metrics.csv.bad" in log
