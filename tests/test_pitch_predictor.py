"""The mel -> F0 predictor: targets, decoding, config, model folders, learning known tones, the task."""

import csv
import doctest
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import wavesynth.pitch.predictor as predictor_module
from wavesynth.audio import MelExtractor, get_preset
from wavesynth.eval import f0_rmse_cents, gross_pitch_error, vuv_error
from wavesynth.pitch import PitchPredictor, PitchPredictorConfig
from wavesynth.pitch.task import PitchConfig, PitchTask, load_pitch_predictor
from wavesynth.train import load_config

ROOT = Path(__file__).resolve().parent.parent
PRESET = get_preset("hifigan-22k")
SMALL = PitchPredictorConfig(channels=16, layers=2, bins=64)


def cents(a: float, b: float) -> float:
    return abs(1200 * math.log2(a / b))


def test_doctests():
    assert doctest.testmod(predictor_module).failed == 0


def test_bins_are_evenly_spaced_in_log_f0():
    model = PitchPredictor(PitchPredictorConfig())
    f0 = model.bin_f0.double()
    assert f0[0].item() == pytest.approx(55.0, rel=1e-6) and f0[-1].item() == pytest.approx(550.0, rel=1e-6)
    steps = 1200 * torch.log2(f0[1:] / f0[:-1])
    assert torch.allclose(steps, torch.full_like(steps, model.config.bin_cents), atol=1e-3)
    assert model.config.bin_cents == pytest.approx(1200 * math.log2(10) / 127)


def test_blurred_target_peaks_at_the_right_bin_and_sums_to_one():
    model = PitchPredictor(PitchPredictorConfig())
    for k in (0, 1, 40, 77, 126, 127):
        target = model.target(model.bin_f0[k : k + 1])[0]
        assert target.sum().item() == pytest.approx(1.0, abs=1e-6)
        assert target.argmax().item() == k
        if 0 < k < 127:  # symmetric around the centre: σ = 25 cents, a bin ≈ 31 cents
            assert target[k - 1].item() == pytest.approx(target[k + 1].item(), rel=1e-3)
            sigma_bins = 25.0 / model.config.bin_cents
            assert target[k + 1].item() / target[k].item() == pytest.approx(
                math.exp(-0.5 / sigma_bins**2), rel=1e-3)
    # between bins: the nearer one wins; beyond the range: the edge bin
    between = model.bin_f0[10] * 2 ** (10 / 1200)  # 10 cents above bin 10, ~21 below bin 11
    assert model.target(between.view(1))[0].argmax().item() == 10
    edges = model.target(torch.tensor([20.0, 2000.0]))
    assert edges.argmax(-1).tolist() == [0, 127]


def test_decoding_one_hot_and_blurred_logits_returns_the_bins_f0():
    model = PitchPredictor(PitchPredictorConfig())
    voiced = torch.full((1, 1), 5.0)
    for k in (0, 3, 64, 100, 127):
        onehot = torch.full((1, 128, 1), -20.0)
        onehot[0, k] = 20.0
        f0, prob = model.decode(onehot, voiced)
        assert cents(f0.item(), model.bin_f0[k].item()) < 1.0
        assert prob.item() == pytest.approx(torch.sigmoid(torch.tensor(5.0)).item())
    for k in (5, 64, 122):  # a blurred target as logits: the weighted average lands on the centre
        logits = model.target(model.bin_f0[k : k + 1]).log().T.unsqueeze(0)
        assert cents(model.decode(logits, voiced)[0].item(), model.bin_f0[k].item()) < 1.0
    # off-grid F0s are resolved far below the 31-cent bin width
    for hz in (101.3, 187.7, 333.3):
        logits = model.target(torch.tensor([hz])).log().T.unsqueeze(0)
        assert cents(model.decode(logits, voiced)[0].item(), hz) < 2.0


def test_unvoiced_frames_decode_to_zero():
    model = PitchPredictor(PitchPredictorConfig(voicing_threshold=0.7))
    logits = torch.zeros(1, 128, 3)
    f0, prob = model.decode(logits, torch.tensor([[-3.0, 0.5, 3.0]]))  # p = 0.05, 0.62, 0.95
    assert f0[0, 0].item() == 0 and f0[0, 1].item() == 0 and f0[0, 2].item() > 0
    assert prob[0].tolist() == pytest.approx(torch.sigmoid(torch.tensor([-3.0, 0.5, 3.0])).tolist())


def test_loss_is_the_cross_entropy_on_voiced_frames_plus_the_voicing_bce():
    model = PitchPredictor(SMALL)
    bin_logits, voicing_logit = torch.randn(2, 64, 5), torch.randn(2, 5)
    f0 = torch.tensor([[100.0, 0.0, 200.0, 0.0, 300.0], [0.0, 0.0, 0.0, 150.0, 150.0]])
    voiced = (f0 > 0).float()
    terms = model.loss_terms(bin_logits, voicing_logit, f0, voiced)
    log_p = torch.log_softmax(bin_logits, 1).transpose(1, 2)[voiced.bool()]
    expected = -(model.target(f0[voiced.bool()]) * log_p).sum(-1).mean()
    assert terms["pitch"].item() == pytest.approx(expected.item(), rel=1e-5)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(voicing_logit, voiced)
    assert terms["voicing"].item() == pytest.approx(bce.item(), rel=1e-5)
    assert terms["loss"].item() == pytest.approx(terms["pitch"].item() + terms["voicing"].item(), rel=1e-6)
    # a mask drops frames from both terms
    mask = torch.tensor([[1.0, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    masked = model.loss_terms(bin_logits, voicing_logit, f0, voiced, mask)
    keep = mask.bool()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(voicing_logit[keep], voiced[keep])
    assert masked["voicing"].item() == pytest.approx(bce.item(), rel=1e-5)
    # the network's outputs keep the frame count
    out = model(torch.randn(2, 80, 7))
    assert out[0].shape == (2, 64, 7) and out[1].shape == (2, 7)
    model.loss(torch.randn(2, 80, 5), f0, voiced)["loss"].backward()


def test_config_round_trip_and_errors():
    config = PitchPredictorConfig(channels=64, layers=3, dilations=(1, 3, 9), bins=100, blur_cents=20.0)
    assert PitchPredictorConfig.from_dict(config.to_dict()) == config
    assert PitchPredictorConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert PitchPredictorConfig(layers=6).layer_dilations == (1, 2, 4, 8, 1, 2)
    assert PitchPredictorConfig().receptive_field == 1 + 2 * (1 + 2 + 4 + 8 + 1 + 2 + 4)
    with pytest.raises(ValueError, match=r"unknown PitchPredictorConfig keys: \['chanels'\]") as error:
        PitchPredictorConfig.from_dict({"chanels": 8})
    assert "\n" not in str(error.value)
    for bad, message in [({"layers": 2, "dilations": (1, 2, 4)}, "dilations must be 2"),
                         ({"f0_min": 600.0}, "f0_min < f0_max"), ({"kernel_size": 4}, "odd"),
                         ({"bins": 1}, "bins"), ({"voicing_threshold": 1.0}, "voicing_threshold"),
                         ({"blur_cents": 0.0}, "blur_cents")]:
        with pytest.raises(ValueError, match=message):
            PitchPredictorConfig(**bad)


@pytest.mark.parametrize("recipe", ["recipes/ljspeech/pitch.toml", "recipes/allison/pitch.toml"])
def test_recipes_load(recipe):
    config = load_config(PitchConfig, ROOT / recipe, ["train.steps=200"])
    assert config.model == PitchPredictorConfig()  # the recipes keep the defaults
    assert config.train.steps == 200 and config.data.segment_frames == 96
    with pytest.raises(ValueError, match="model.n_mels = 40 must match preset"):
        load_config(PitchConfig, ROOT / recipe, ["model.n_mels=40"])
    with pytest.raises(ValueError, match="unknown key 'model.chanels'"):
        load_config(PitchConfig, ROOT / recipe, ["model.chanels=8"])


def test_save_load_round_trip(tmp_path):
    model = PitchPredictor(SMALL, PRESET)
    torch.nn.init.normal_(model.output.weight)  # something other than the initial weights
    mel = torch.randn(2, 80, 40)
    model.train()
    folder = model.save(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["pitch.json", "pitch.pt"]
    assert model.training  # saving does not change the mode
    loaded = PitchPredictor.load(folder)
    assert not loaded.training and loaded.config == SMALL and loaded.mel_config == PRESET
    for a, b in zip(model.predict(mel), loaded.predict(mel), strict=True):
        assert torch.equal(a, b)
    assert model.training  # predict restores the mode
    state = torch.load(folder / "pitch.pt", weights_only=True)
    assert set(state) == set(model.state_dict()) and "log_f0" not in state  # the bins are not weights

    PitchPredictor(SMALL).save(tmp_path / "bare")
    assert PitchPredictor.load(tmp_path / "bare").mel_config is None
    (folder / "pitch.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable weights file"):
        PitchPredictor.load(folder)
    PitchPredictor(PitchPredictorConfig(channels=8, layers=2, bins=64)).save(tmp_path / "other")
    (tmp_path / "other" / "pitch.json").write_text((folder / "pitch.json").read_text())
    with pytest.raises(ValueError, match="weights do not fit"):
        PitchPredictor.load(tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="pitch.json"):
        PitchPredictor.load(tmp_path / "nothing")


# ------------------------------------------------------------------------------------- synthetic tones

TONES = (110.0, 165.0, 247.0, 370.0)


def tones(rng: np.random.Generator, segments: int, frames: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic tones of the F0s in TONES and unvoiced noise, ``frames`` mel frames each, in random order:
    (wave, frame F0 in Hz with 0 where unvoiced). Frame t is centred on sample t·hop + hop/2."""
    hop, rate = PRESET.hop_length, PRESET.sample_rate
    choice = rng.integers(len(TONES) + 1, size=segments)
    f0 = np.repeat(np.array([*TONES, 0.0])[choice], frames * hop)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = sum(np.where(k * f0 < 4000, np.sin(k * phase) / k, 0.0) for k in range(1, 30))
    noise = rng.standard_normal(len(f0))
    wave = 0.1 * wave + np.where(f0 > 0, 0.003, 0.03) * noise
    return wave.astype(np.float32), f0[hop // 2 :: hop].astype(np.float32)


def test_a_tiny_predictor_learns_known_tones():
    rng = np.random.default_rng(0)
    extract = MelExtractor(PRESET)
    wave, f0 = tones(rng, 200)
    mel = extract(torch.from_numpy(wave))
    f0 = torch.from_numpy(f0)
    model = PitchPredictor(PitchPredictorConfig(channels=32, layers=3, bins=64))
    optimiser = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(300):
        starts = rng.integers(0, mel.shape[1] - 64, 8)
        batch_f0 = torch.stack([f0[s : s + 64] for s in starts])
        batch_mel = torch.stack([mel[:, s : s + 64] for s in starts])
        terms = model.loss(batch_mel, batch_f0, (batch_f0 > 0).float())
        optimiser.zero_grad()
        terms["loss"].backward()
        optimiser.step()
    wave, reference = tones(np.random.default_rng(1), 40)  # tones it has not heard in this order
    estimate = model.predict(extract(torch.from_numpy(wave)))[0].numpy()
    assert gross_pitch_error(reference, estimate) < 0.02
    assert f0_rmse_cents(reference, estimate) < 20.0
    assert vuv_error(reference, estimate) < 0.05


# ------------------------------------------------------------------------------- the task, through the CLI



@pytest.fixture(scope="module")
def labelled_cache(tmp_path_factory) -> Path:
    """A hifigan-22k cache of six tone-and-noise utterances (two in the validation split) with pitch labels
    written from the known F0 (``pitch/<id>.npy``: f0, voiced, voiced probability)."""
    from wavesynth.audio import preprocess
    from wavesynth.audio.cache import FeatureCache, save_npy

    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    tracks = {}
    for i in range(6):
        wave, f0 = tones(rng, 6)
        sf.write(root / f"u{i}.wav", wave, PRESET.sample_rate)
        tracks[f"u{i}"] = f0
    out = tmp_path_factory.mktemp("cache")
    preprocess("folder", root, out, "hifigan-22k", trim_db=None, valid_fraction=0.34, progress=False,
               workers=1)
    for row in FeatureCache.open(out).rows:
        f0 = next(track for name, track in tracks.items() if row["id"].endswith(name))
        f0 = np.pad(f0, (0, max(0, row["frames"] - len(f0))))[: row["frames"]]
        voiced = (f0 > 0).astype(np.float32)
        save_npy(out / "pitch" / f"{row['id']}.npy", np.stack([f0, voiced, voiced]).astype(np.float32))
    return out


def test_train_pitch_through_the_cli_and_load_the_predictor(labelled_cache, tmp_path):
    from wavesynth.cli import main

    run = tmp_path / "run"
    config = tmp_path / "pitch.toml"
    config.write_text(f'[data]\ncaches = ["{labelled_cache}"]\nsegment_frames = 32\n\n'
                      f'[train]\nrun_dir = "{run}"\n')
    args = ["train", "pitch", "--config", str(config), "model.channels=16", "model.layers=2",
            "train.batch_size=4", "train.lr=3e-3", "train.warmup_steps=0", "train.progress=false",
            "train.val_every=20", "train.save_every=20", "train.log_every=10", "train.ema_decay=0.9"]
    assert main([*args, "train.steps=20"]) == 0
    assert main([*args, "train.steps=40", "--resume"]) == 0
    with open(run / "metrics.csv", newline="") as file:
        val = {(int(step), name): float(value) for step, name, value in list(csv.reader(file))[1:]
               if name.startswith("val/")}
    for name in ("val/loss", "val/gpe", "val/cents_rmse", "val/vuv_error"):
        assert (40, name) in val and math.isfinite(val[(40, name)])
    assert val[(40, "val/loss")] < val[(20, "val/loss")]

    predictor = load_pitch_predictor(run / "best.pt")
    assert predictor.mel_config == PRESET and not predictor.training
    assert predictor.config.channels == 16
    folder = predictor.save(tmp_path / "model")
    mel = torch.randn(1, 80, 30)
    assert torch.equal(predictor.predict(mel)[0], PitchPredictor.load(folder).predict(mel)[0])


def test_train_pitch_errors_are_one_line(tmp_path, capsys):
    from wavesynth.cli import main

    assert main(["train", "pitch", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "no such config file" in capsys.readouterr().err
    config = tmp_path / "pitch.toml"
    config.write_text(f'[data]\ncaches = ["{tmp_path}"]\n\n[train]\nrun_dir = "{tmp_path / "run"}"\n')
    assert main(["train", "pitch", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "run 'wavesynth preprocess' first" in err and err.count("\n") == 1
    assert main(["train", "pitch", "--config", str(config), "model.bins=1"]) == 2
    assert "bins must be an integer >= 2" in capsys.readouterr().err


def test_task_validation_metrics_are_frame_ratios_over_the_utterances():
    task = PitchTask(PitchConfig(model=SMALL))
    model = task.build_model().eval()
    mel = torch.randn(2, 80, 6)
    f0 = torch.tensor([[100.0, 100.0, 0.0, 200.0, 0.0, 0.0], [150.0, 0.0, 150.0, 150.0, 0.0, 0.0]])
    batch = {"mel": mel, "f0": f0, "voiced": (f0 > 0).float(), "frames": torch.tensor([4, 6])}
    with torch.no_grad():
        metrics = task.validate(model, batch)
        estimate = model.predict(mel)[0]
    keep = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]).bool()
    reference, estimate = f0[keep].numpy(), estimate[keep].numpy()
    assert metrics["vuv_error"].item() == pytest.approx(vuv_error(reference, estimate))
    gpe = gross_pitch_error(reference, estimate)
    assert metrics["gpe"].item() == pytest.approx(gpe, nan_ok=True)
    assert set(metrics) == {"loss", "pitch", "voicing", "gpe", "cents_rmse", "vuv_error"}
