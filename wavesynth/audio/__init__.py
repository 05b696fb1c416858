"""Audio I/O, log-mel features with named presets, corpus readers, preprocessing and training data.

Waveforms are float32 in [-1, 1], shape ``(T,)`` or ``(batch, T)``; a log-mel is ``(n_mels, frames)`` or
``(batch, n_mels, frames)`` with ``frames * hop_length == T`` after zero-padding T to a multiple of the hop.
"""

from .cache import FeatureCache
from .corpora import CORPORA, Utterance, assign_splits, read_corpus, select_speakers
from .dataset import SegmentDataset
from .features import (
    DEFAULT_PRESET,
    PRESETS,
    MelConfig,
    MelExtractor,
    get_preset,
    model_from_preset,
    pad_to_hop,
)
from .io import AUDIO_EXTENSIONS, load_audio, save_audio
from .loudness import integrated_loudness, normalize_loudness
from .preprocess import Summary, preprocess
from .stats import MelStats

__all__ = [
    "AUDIO_EXTENSIONS",
    "CORPORA",
    "PRESETS",
    "FeatureCache",
    "MelConfig",
    "MelExtractor",
    "MelStats",
    "SegmentDataset",
    "Summary",
    "Utterance",
    "assign_splits",
    "get_preset",
    "model_from_preset",
    "DEFAULT_PRESET",
    "integrated_loudness",
    "load_audio",
    "normalize_loudness",
    "pad_to_hop",
    "preprocess",
    "read_corpus",
    "select_speakers",
    "save_audio",
]
