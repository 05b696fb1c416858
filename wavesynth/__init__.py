"""wavesynth: normalising flows and a Parallel WaveNet vocoder.

``wavesynth.Vocoder`` turns mel-spectrograms into audio with a trained model; ``wavesynth.list_pretrained()``
names the shipped ones. Both are imported on first use, so ``import wavesynth`` (and the command line's
start) stays light. ``wavesynth.WavesynthError`` (a ``ValueError``) reports a user mistake: bad input, a bad
setting, an unknown name, a missing or damaged file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import WavesynthError

__version__ = "0.1.0"
__all__ = ["Vocoder", "WavesynthError", "list_pretrained"]

if TYPE_CHECKING:
    from .pretrained import list_pretrained
    from .vocoder import Vocoder


def __getattr__(name: str) -> Any:
    if name == "Vocoder":
        from .vocoder import Vocoder

        return Vocoder
    if name == "list_pretrained":
        from .pretrained import list_pretrained

        return list_pretrained
    raise AttributeError(f"module 'wavesynth' has no attribute {name!r}")
