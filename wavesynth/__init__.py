"""wavesynth: normalising flows and a Parallel WaveNet vocoder.

``wavesynth.Vocoder`` turns mel-spectrograms into audio with a trained model; ``wavesynth.list_pretrained()``
names the shipped ones.
"""

__version__ = "0.1.0"

from .vocoder import Vocoder, list_pretrained

__all__ = ["Vocoder", "list_pretrained"]
