import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader, DistributedSampler

from wavesynth.audio import MelExtractor, SegmentDataset, preprocess

HOP = 256


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """Feature caches (hifigan-22k with pitch labels, pwg-22k without) of a two-speaker VCTK-like corpus of
    chirps and noise; one utterance (p2/short) is shorter than a segment."""
    root = tmp_path_factory.mktemp("vctk")
    rng = np.random.default_rng(0)
    for speaker, names in (("p1", ["a", "b", "c", "d"]), ("p2", ["e", "short"])):
        (root / "wav" / speaker).mkdir(parents=True)
        for name in names:
            n = 3000 if name == "short" else int(rng.integers(20000, 40000))
            t = np.arange(n) / 22050
            wave = 0.3 * np.sin(2 * np.pi * (200 + 3000 * t) * t) + 0.05 * rng.standard_normal(n)
            sf.write(root / "wav" / speaker / f"{name}.wav", wave.astype(np.float32), 22050, subtype="FLOAT")
    out = {}
    for preset in ("hifigan-22k", "pwg-22k"):
        out[preset] = tmp_path_factory.mktemp(preset)
        tracker = "pyin" if preset == "hifigan-22k" else None
        preprocess("vctk", root, out[preset], preset, trim_db=None, valid_fraction=0.2, pitch_tracker=tracker,
                   progress=False, workers=1)
    return out


def stored(dataset, index):
    root, row = dataset.rows[index]
    return np.load(root / row["wave"]), np.load(root / row["mel"])


def test_segments_are_aligned_crops_of_the_stored_features(caches):
    dataset = SegmentDataset(caches["hifigan-22k"], segment_frames=16)
    assert len(dataset) == 5 and dataset.speakers == ["p1", "p2"]
    for index in range(len(dataset)):
        item = dataset[index]
        wave, mel = stored(dataset, index)
        s, inside = item["start"], item["frames"]
        assert item["wave"].shape == (16 * HOP,) and item["mel"].shape == (80, 16)
        np.testing.assert_array_equal(
            item["wave"][: inside * HOP].numpy(), wave[s * HOP : (s + inside) * HOP]
        )
        np.testing.assert_array_equal(item["mel"][:, :inside].numpy(), mel[:, s : s + inside])
        assert item["speaker"] == dataset.speakers.index(dataset.rows[index][1]["speaker"])


def test_short_utterances_and_context_are_padded_with_silence(caches):
    dataset = SegmentDataset(caches["hifigan-22k"], segment_frames=16, context_frames=3)
    index = next(i for i, (_, row) in enumerate(dataset.rows) if row["id"] == "short")
    item = dataset[index]
    wave, mel = stored(dataset, index)
    assert item["start"] == 0 and item["frames"] == mel.shape[1] == 12
    assert item["mel"].shape == (80, 22)
    silence = MelExtractor(dataset.config).log_mel(torch.zeros(4 * HOP))[:, 0]
    for column in [0, 1, 2, *range(15, 22)]:
        torch.testing.assert_close(item["mel"][:, column], silence)
    np.testing.assert_array_equal(item["mel"][:, 3:15].numpy(), mel)
    assert torch.all(item["wave"][12 * HOP :] == 0)
    np.testing.assert_array_equal(item["wave"][: 12 * HOP].numpy(), wave)


def test_crops_are_reproducible_per_seed_epoch_and_index(caches):
    a, b = (SegmentDataset(caches["hifigan-22k"], segment_frames=4, seed=7) for _ in range(2))
    starts = [a[i]["start"] for i in range(len(a))]
    assert starts == [b[i]["start"] for i in range(len(b))]
    epochs = []
    for epoch in range(5):
        a.set_epoch(epoch)
        epochs.append([a[i]["start"] for i in range(len(a))])
    assert epochs[0] == starts and len({tuple(e) for e in epochs}) > 1


def test_collate_and_distributed_sampling(caches):
    dataset = SegmentDataset(caches["hifigan-22k"], segment_frames=8)
    shards = []
    for rank in range(2):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=1)
        loader = DataLoader(dataset, batch_size=2, sampler=sampler, collate_fn=dataset.collate)
        batches = list(loader)
        assert batches[0]["wave"].shape == (2, 8 * HOP) and batches[0]["mel"].shape == (2, 80, 8)
        assert batches[0]["speaker"].dtype == torch.int64
        shards.append(list(sampler))
    assert len(shards[0]) == len(shards[1]) == 3 and set(shards[0]) | set(shards[1]) == set(range(5))


def test_whole_utterances_collate_with_padding(caches):
    dataset = SegmentDataset(caches["hifigan-22k"], split="valid", segment_frames=None)
    batch = dataset.collate([dataset[i] for i in range(len(dataset))])
    longest = int(batch["frames"].max())
    assert batch["mel"].shape == (len(dataset), 80, longest) and batch["wave"].shape == (
        len(dataset),
        longest * HOP,
    )
    for i in range(len(dataset)):
        wave, mel = stored(dataset, i)
        np.testing.assert_array_equal(batch["wave"][i, : len(wave)].numpy(), wave)
        np.testing.assert_array_equal(batch["mel"][i, :, : mel.shape[1]].numpy(), mel)


def test_normalising_preset_yields_normalised_mels(caches):
    dataset = SegmentDataset(caches["pwg-22k"], segment_frames=None)
    mels = np.concatenate([dataset[i]["mel"].numpy() for i in range(len(dataset))], axis=1)
    np.testing.assert_allclose(mels.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(mels.std(axis=1), 1, atol=1e-3)
    with pytest.raises(ValueError, match="'nope' split is empty"):
        SegmentDataset(caches["pwg-22k"], split="nope")


def test_several_caches_of_one_preset_concatenate(caches, tmp_path):
    one = SegmentDataset(caches["hifigan-22k"], "train", segment_frames=None)
    both = SegmentDataset([caches["hifigan-22k"], caches["hifigan-22k"]], "train", segment_frames=None)
    assert len(both) == 2 * len(one) and both.speakers == one.speakers
    assert torch.equal(both[len(one)]["wave"], one[0]["wave"])
    with pytest.raises(ValueError, match="one preset"):
        SegmentDataset([caches["hifigan-22k"], caches["pwg-22k"]], "train")
    with pytest.raises(ValueError, match="normalises with corpus statistics"):
        SegmentDataset([caches["pwg-22k"], caches["pwg-22k"]], "train")


def test_pitch_labels_come_with_the_segment_frames_and_pad_with_zeros(caches):
    dataset = SegmentDataset(caches["hifigan-22k"], segment_frames=16, context_frames=2, pitch=True)
    items = [dataset[i] for i in range(len(dataset))]
    for (root, row), item in zip(dataset.rows, items, strict=True):
        labels, s, inside = np.load(root / row["pitch"]), item["start"], item["frames"]
        assert item["f0"].shape == item["voiced"].shape == (16,)
        np.testing.assert_array_equal(item["f0"][:inside].numpy(), labels[0, s : s + inside])
        np.testing.assert_array_equal(item["voiced"][:inside].numpy(), labels[1, s : s + inside])
        assert not item["f0"][inside:].any() and not item["voiced"][inside:].any()
    assert any(item["voiced"].any() for item in items)
    whole = SegmentDataset(caches["hifigan-22k"], segment_frames=None, pitch=True)
    batch = whole.collate([whole[i] for i in range(len(whole))])
    assert batch["f0"].shape == batch["voiced"].shape == (len(whole), batch["wave"].shape[1] // HOP)
    for i, frames in enumerate(batch["frames"]):
        assert not batch["f0"][i, frames:].any()
    assert "f0" not in SegmentDataset(caches["hifigan-22k"])[0]
    with pytest.raises(ValueError, match="no pitch labels; run 'wavesynth preprocess' on it again"):
        SegmentDataset(caches["pwg-22k"], pitch=True)
