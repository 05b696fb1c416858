"""The audio tasks' shared plumbing (``wavesynth.audio_task``): model sizes from the preset, the preset
check and the crops' collate."""

import pytest

from wavesynth.parallel.task import DistillConfig
from wavesynth.pitch.task import PitchConfig
from wavesynth.train import load_config
from wavesynth.wavenet.task import TeacherConfig, TeacherTask


@pytest.mark.parametrize("config_class", [TeacherConfig, DistillConfig])
def test_model_takes_n_mels_and_hop_length_from_the_preset(tmp_path, config_class):
    """A recipe's [model] need not restate what data.preset fixes; a value it does state is checked."""
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[data]\npreset = "hifigan-22k"\n[model]\nkernel_size = 2\n')
    config = load_config(config_class, recipe)
    assert (config.model.n_mels, config.model.hop_length, config.model.kernel_size) == (80, 256, 2)
    with pytest.raises(ValueError, match=r"model.n_mels, model.hop_length = 64, 256 must match preset "
                                         r"'hifigan-22k' \(80, 256\)"):
        load_config(config_class, recipe, ["model.n_mels=64"])


def test_pitch_model_takes_n_mels_from_the_preset(tmp_path):
    recipe = tmp_path / "pitch.toml"
    recipe.write_text('[data]\npreset = "speechbrain-16k"\n')
    assert load_config(PitchConfig, recipe).model.n_mels == 80
    with pytest.raises(ValueError, match=r"model.n_mels = 64 must match preset 'speechbrain-16k' \(80\)"):
        load_config(PitchConfig, recipe, ["model.n_mels=64"])


def test_collate_works_before_train_data(cache):
    config = load_config(TeacherConfig, overrides=[f"data.caches=['{cache}']", "data.segment_frames=4",
                                                   "data.val_segment_frames=8"])
    task = TeacherTask(config)
    items = [task.val_data()[i] for i in range(2)]
    batch = task.collate(items)  # the training crops are read on first use
    assert batch["mel"].shape[:2] == (2, 80) and batch["wave"].shape[0] == 2
