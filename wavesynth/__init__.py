"""wavesynth: normalising flows and a Parallel WaveNet vocoder."""

__version__ = "0.1.0"
