"""Training data: random aligned (waveform segment, mel frames) pairs from a feature cache.

Item ``i`` picks a start frame s uniformly in [0, max(frames - segment_frames, 0)] and returns samples
[s·hop, (s + segment_frames)·hop) with mel frames [s - context, s + segment_frames + context). Past an
utterance's edges the waveform is zeros and the mel frames are the mel of silence (the preset applied
to zeros), so a short utterance or the context around its ends is padded consistently. The start is
drawn from ``numpy.random.default_rng([seed, epoch, i])``: call ``set_epoch`` each epoch (as with a
``DistributedSampler``) for fresh crops that are still reproducible, with any number of workers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import WavesynthError
from .cache import FeatureCache
from .features import MelExtractor


class SegmentDataset(Dataset):
    """Map-style dataset over one split of one or more feature caches of one preset (speakers merged by
    name); works with any sampler, e.g. ``DistributedSampler``. ``rows`` holds (cache root, manifest row)
    pairs. Items are dicts: ``wave`` (segment_frames·hop,), ``mel``
    (n_mels, segment_frames + 2·context), ``speaker`` (index into ``speakers``), ``frames`` (how many
    of the segment's frames lie inside the utterance) and ``start`` (the segment's first frame).
    ``pitch=True`` adds the cache's pitch labels of the segment's frames (no context): ``f0`` in Hz (0
    where unvoiced) and ``voiced`` (segment_frames,), 0 past the utterance's end.
    ``segment_frames=None`` gives whole utterances (``collate`` pads them into a batch). Mels are
    normalised when the preset says so.
    """

    def __init__(
        self,
        cache: str | os.PathLike | FeatureCache | Sequence[str | os.PathLike | FeatureCache],
        split: str = "train",
        segment_frames: int | None = 32,
        context_frames: int = 0,
        seed: int = 0,
        pitch: bool = False,
    ) -> None:
        sources = [cache] if isinstance(cache, str | os.PathLike | FeatureCache) else list(cache)
        if not sources:
            raise WavesynthError("SegmentDataset needs at least one feature cache")
        caches = [c if isinstance(c, FeatureCache) else FeatureCache.open(c) for c in sources]
        unlabelled = [str(c.root) for c in caches if pitch and not all("pitch" in row for row in c.rows)]
        if unlabelled:
            raise WavesynthError(f"{', '.join(unlabelled)}: no pitch labels; run 'wavesynth preprocess' on "
                                 "it again with --pitch-tracker to add them (the mels are kept)")
        self.cache, self.config = caches[0], caches[0].config
        for other in caches[1:]:
            if other.config != self.config:
                raise WavesynthError(f"{other.root} was made with preset {other.config.name!r}, "
                                     f"{self.cache.root} with {self.config.name!r}: use caches of one preset")
        if self.config.normalize and len(caches) > 1:
            raise WavesynthError(f"preset {self.config.name!r} normalises with corpus statistics, so its "
                                 "caches cannot be mixed; preprocess the corpora into one cache")
        self.rows = [(c.root, row) for c in caches for row in c.split(split)]
        if not self.rows:
            raise WavesynthError(f"{', '.join(str(c.root) for c in caches)}: the {split!r} split is empty")
        if (segment_frames is not None and segment_frames <= 0) or context_frames < 0:
            raise WavesynthError("segment_frames must be positive (or None) and context_frames >= 0")
        self.segment_frames, self.context_frames, self.pitch = segment_frames, context_frames, pitch
        self.seed, self.epoch = seed, 0
        self.speakers = list(dict.fromkeys(name for c in caches for name in c.speakers))
        self._speaker_index = {name: i for i, name in enumerate(self.speakers)}
        zeros = torch.zeros(self.config.min_samples)
        with torch.no_grad():
            silence = MelExtractor(self.config).log_mel(zeros)[:, :1].numpy()
        self.silence = self._normalize(silence)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def _normalize(self, mel: np.ndarray) -> np.ndarray:
        return self.cache.stats.normalize(mel) if self.config.normalize else mel

    def __getitem__(self, index: int) -> dict:
        (root, row), hop, context = self.rows[index], self.config.hop_length, self.context_frames
        mel = np.load(root / row["mel"], mmap_mode="r")
        wave = np.load(root / row["wave"], mmap_mode="r")
        total = mel.shape[1]
        length = self.segment_frames or total
        rng = np.random.default_rng([self.seed, self.epoch, index])
        start = int(rng.integers(max(total - length, 0) + 1))

        segment = np.zeros(length * hop, np.float32)
        inside = min(length, total - start)
        segment[: inside * hop] = wave[start * hop : (start + inside) * hop]

        lo, hi = start - context, start + length + context
        frames = np.repeat(self.silence, hi - lo, axis=1)
        frames[:, max(-lo, 0) : min(total, hi) - lo] = self._normalize(np.asarray(mel[:, max(lo, 0) : hi]))
        item = {
            "wave": torch.from_numpy(segment),
            "mel": torch.from_numpy(frames),
            "speaker": self._speaker_index[row["speaker"]],
            "frames": inside,
            "start": start,
        }
        if self.pitch:
            labels = np.zeros((2, length), np.float32)
            labels[:, :inside] = np.load(root / row["pitch"], mmap_mode="r")[:2, start : start + inside]
            item["f0"], item["voiced"] = torch.from_numpy(labels[0]), torch.from_numpy(labels[1])
        return item

    def collate(self, items: list[dict]) -> dict:
        """Stack items into ``wave`` (B, T), ``mel`` (B, n_mels, F), ``speaker``, ``frames`` and ``start``
        (B,), and ``f0`` and ``voiced`` (B, T / hop) with pitch, padding shorter items at the end with
        zeros (wave, pitch) and silence frames (mel)."""
        hop = self.config.hop_length
        width = max(item["mel"].shape[1] for item in items)
        wave = torch.zeros(len(items), (width - 2 * self.context_frames) * hop)
        mel = torch.from_numpy(np.repeat(self.silence[None], len(items), axis=0).repeat(width, axis=2))
        for i, item in enumerate(items):
            wave[i, : item["wave"].shape[0]] = item["wave"]
            mel[i, :, : item["mel"].shape[1]] = item["mel"]
        batch = {
            "wave": wave,
            "mel": mel,
            "speaker": torch.tensor([item["speaker"] for item in items]),
            "frames": torch.tensor([item["frames"] for item in items]),
            "start": torch.tensor([item["start"] for item in items]),
        }
        for key in ("f0", "voiced") if self.pitch else ():
            batch[key] = torch.zeros(len(items), wave.shape[1] // hop)
            for i, item in enumerate(items):
                batch[key][i, : item[key].shape[0]] = item[key]
        return batch
