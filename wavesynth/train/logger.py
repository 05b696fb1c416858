"""Metrics of a run: TensorBoard event files, ``metrics.csv`` (step,name,value), ``log.txt`` lines and
``samples/<step>_<name>.wav`` for audio samples."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from .task import Audio, Image

HEADER = ["step", "name", "value"]


def _step(row: list[str]) -> int | None:
    """The step of a metrics.csv row, or None for a row that is not (step, name, value)."""
    return int(row[0]) if len(row) == 3 and row[0].isascii() and row[0].isdigit() else None


class RunLogger:
    """Writes a run folder's metrics. On resume from step ``start_step``, rows and events logged after
    that step by the interrupted run are dropped, so the logs read as one uninterrupted run."""

    def __init__(self, run_dir: str | Path, start_step: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter  # slow import, only on the main process

        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.run_dir / "metrics.csv"
        note = self._truncate_csv(start_step)
        new = not self.csv_path.exists()
        self._csv_file = open(self.csv_path, "a", newline="")  # noqa: SIM115 (closed in close())
        self._csv = csv.writer(self._csv_file)
        if new:
            self._csv.writerow(HEADER)
        self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=start_step + 1)
        self._log_file = open(self.run_dir / "log.txt", "a")  # noqa: SIM115 (closed in close())
        if note:
            self.line(note)

    def _truncate_csv(self, start_step: int) -> str | None:
        """Keep the rows up to ``start_step``, rewriting metrics.csv atomically (a kill leaves the old or the
        new file, never a part). An empty file is started afresh; one without the header is kept as
        metrics.csv.bad and its readable rows carried over. -> a note for the log, if either happened."""
        for stale in self.run_dir.glob(f".{self.csv_path.name}.*.tmp"):  # left by a rewrite that was killed
            stale.unlink()
        if not self.csv_path.exists():
            return None
        with open(self.csv_path, newline="", encoding="utf-8", errors="replace") as file:
            rows = list(csv.reader(file))
        if not rows:
            self.csv_path.unlink()
            return f"{self.csv_path.name} was empty; starting a fresh one"
        has_header = rows[0] == HEADER
        kept = [r for r in rows[has_header:] if (step := _step(r)) is not None and step <= start_step]
        if has_header:
            self._rewrite([HEADER, *kept])
            return None
        bad = self.csv_path.with_name(f"{self.csv_path.name}.bad")
        number = 1
        while bad.exists():  # an earlier damaged file stays too
            number += 1
            bad = self.csv_path.with_name(f"{self.csv_path.name}.bad.{number}")
        os.replace(self.csv_path, bad)
        self._rewrite([HEADER, *kept])
        return (f"{self.csv_path.name} had no header (damaged?); kept its {len(kept)} readable rows up to "
                f"step {start_step}, the original is {bad.name}")

    def _rewrite(self, rows: list[list[str]]) -> None:
        """metrics.csv := ``rows``, through a temporary file in the same folder, fsync and a rename."""
        tmp = self.csv_path.with_name(f".{self.csv_path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", newline="") as file:
                csv.writer(file).writerows(rows)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.csv_path)
        finally:
            tmp.unlink(missing_ok=True)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Log named scalars (e.g. ``train/loss``) at ``step``."""
        for name, value in values.items():
            self._tb.add_scalar(name, value, step)
            self._csv.writerow([step, name, f"{value:.8g}"])
        self._csv_file.flush()

    def samples(self, step: int, samples: dict[str, Audio | Image]) -> None:
        for name, sample in samples.items():
            if isinstance(sample, Audio):
                wave = sample.wave.detach().float().cpu().clamp(-1, 1).reshape(1, -1)
                self._tb.add_audio(f"samples/{name}", wave, step, sample_rate=sample.sample_rate)
                self._write_wav(self.run_dir / "samples" / f"{step:08d}_{name}.wav", wave[0].numpy(),
                                sample.sample_rate)
            else:
                self._tb.add_image(f"samples/{name}", sample.pixels.detach().float().cpu().clamp(0, 1), step)

    @staticmethod
    def _write_wav(path: Path, wave, sample_rate: int) -> None:
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        sf.write(tmp, wave, sample_rate, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)

    def line(self, text: str) -> None:
        """Print a line (without breaking the progress bar) and append it to ``log.txt``."""
        tqdm.write(text)
        self._log_file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
        self._log_file.flush()

    def close(self) -> None:
        self._tb.close()
        self._csv_file.close()
        self._log_file.close()
