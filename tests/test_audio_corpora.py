import re
from pathlib import Path

import pytest

from wavesynth.audio import assign_splits, read_corpus, select_speakers


def touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_ljspeech_reads_metadata_and_prefers_normalized_text(tmp_path):
    touch(tmp_path / "metadata.csv", "LJ001-0002|in 1.|in one.\nLJ001-0001|Printing|\n\nLJ-unknown-00||\n")
    utterances = read_corpus("ljspeech", tmp_path)
    assert [u.id for u in utterances] == ["LJ-unknown-00", "LJ001-0001", "LJ001-0002"]
    assert utterances[2].path == tmp_path / "wavs" / "LJ001-0002.wav"
    assert [u.text for u in utterances] == ["", "Printing", "in one."]
    assert {u.speaker for u in utterances} == {"LJ"}


def test_ljspeech_layout_with_flac_files(tmp_path):
    touch(tmp_path / "metadata.csv", "LJ001-0001|Printing|\nLJ001-0002|in one.|\n")
    touch(tmp_path / "wavs" / "LJ001-0001.flac")
    paths = [u.path for u in read_corpus("ljspeech", tmp_path)]
    assert paths == [tmp_path / "wavs" / "LJ001-0001.flac", tmp_path / "wavs" / "LJ001-0002.wav"]


def test_vctk_speakers_transcripts_and_first_microphone(tmp_path):
    for speaker in ("p227", "p228"):
        for n in ("001", "002"):
            touch(tmp_path / "wav" / speaker / f"{speaker}_{n}.wav")
    touch(tmp_path / "txt" / "p227" / "p227_001.txt", "Please call Stella.\n")
    touch(tmp_path / "wav" / "p227" / "notes.txt")
    utterances = read_corpus("vctk", tmp_path)
    assert [(u.id, u.speaker) for u in utterances] == [
        ("p227_001", "p227"),
        ("p227_002", "p227"),
        ("p228_001", "p228"),
        ("p228_002", "p228"),
    ]
    assert utterances[0].text == "Please call Stella."

    trimmed = tmp_path / "v092"
    touch(trimmed / "wav48_silence_trimmed" / "p225" / "p225_001_mic1.flac")
    touch(trimmed / "wav48_silence_trimmed" / "p225" / "p225_001_mic2.flac")
    [only] = read_corpus("vctk", trimmed)
    assert (only.id, only.path.name) == ("p225_001", "p225_001_mic1.flac")


def test_arctic_voices_from_a_parent_folder_or_one_voice(tmp_path):
    for speaker in ("slt", "speaker3"):
        touch(tmp_path / f"cmu_us_{speaker}_arctic" / "wav" / "arctic_a0001.wav")
    touch(
        tmp_path / "cmu_us_slt_arctic" / "etc" / "txt.done.data",
        '( arctic_a0001 "Author of the danger trail." )\n',
    )
    utterances = read_corpus("arctic", tmp_path)
    assert [(u.id, u.speaker, u.text) for u in utterances] == [
        ("slt/arctic_a0001", "slt", "Author of the danger trail."),
        ("speaker3/arctic_a0001", "speaker3", ""),
    ]
    assert [u.id for u in read_corpus("arctic", tmp_path / "cmu_us_slt_arctic")] == ["slt/arctic_a0001"]


def test_speaker_selection_keeps_or_holds_out_voices_and_rejects_unknown_names(tmp_path):
    for speaker in ("p227", "p228", "p229"):
        touch(tmp_path / "wav" / speaker / f"{speaker}_001.wav")
    utterances = read_corpus("vctk", tmp_path)
    assert [u.speaker for u in select_speakers(utterances, speakers=["p228"])] == ["p228"]
    assert [u.speaker for u in select_speakers(utterances, exclude=["p227", "p229"])] == ["p228"]
    assert select_speakers(utterances) == utterances
    with pytest.raises(ValueError, match="no speaker p999 in this corpus"):
        select_speakers(utterances, exclude=["p999"])
    with pytest.raises(ValueError, match="leaves no utterances"):
        select_speakers(utterances, speakers=["p227"], exclude=["p227"])


def test_folder_is_recursive_and_file_lists_name_speakers(tmp_path):
    corpus = tmp_path / "clips"
    for name in ("b.flac", "a.wav", "dictate/c.ogg", "readme.txt"):
        touch(corpus / name)
    utterances = read_corpus("folder", corpus)
    assert [u.id for u in utterances] == ["a", "b", "dictate/c"]
    assert {u.speaker for u in utterances} == {"clips"}

    listing = touch(
        tmp_path / "list.txt", f"# a comment\nclips/a.wav|anna\n\n{corpus / 'b.flac'}\nnotes.txt|bob\n"
    )
    utterances = read_corpus("folder", listing)
    assert [(u.id, u.speaker) for u in utterances] == [
        ("clips/a", "anna"),
        ("clips/b", "list"),
        ("notes", "bob"),
    ]
    assert utterances[0].path == corpus / "a.wav"


def test_wrong_layouts_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="metadata.csv: no such file"):
        read_corpus("ljspeech", tmp_path)
    with pytest.raises(FileNotFoundError, match="VCTK layout"):
        read_corpus("vctk", tmp_path)
    with pytest.raises(FileNotFoundError, match="CMU ARCTIC layout"):
        read_corpus("arctic", tmp_path)
    with pytest.raises(ValueError, match="no audio files found"):
        read_corpus("folder", tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere: no such folder"):
        read_corpus("folder", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown corpus kind 'timit'"):
        read_corpus("timit", tmp_path)
    touch(tmp_path / "metadata.csv", "nonsense\n")
    with pytest.raises(ValueError, match=r"metadata.csv:1: expected"):
        read_corpus("ljspeech", tmp_path)
    touch(tmp_path / "x" / "a.wav")
    touch(tmp_path / "x" / "a.flac")
    with pytest.raises(ValueError, match="utterance id 'a' is also used"):
        read_corpus("folder", tmp_path / "x")


def test_split_is_deterministic_order_free_and_sized():
    ids = [f"utt{i:03d}" for i in range(100)]
    splits = assign_splits(ids, 0.05)
    assert sum(s == "valid" for s in splits.values()) == 5
    assert assign_splits(list(reversed(ids)), 0.05) == splits
    grown = assign_splits([*ids, "utt100"], 0.05)
    assert sum(grown[i] != splits[i] for i in ids) <= 1
    assert list(assign_splits(["a", "b"], 0.05).values()).count("valid") == 1
    assert assign_splits(["a"], 0.05) == {"a": "train"}
    assert set(assign_splits(ids, 0.0).values()) == {"train"}
    with pytest.raises(ValueError):
        assign_splits(ids, 1.0)


def test_file_list_ids_stay_inside_the_cache_and_cannot_collide(tmp_path, monkeypatch):
    """``../`` and absolute paths outside the list's folder get ids under ``outside/<folder>-<hash>/``: no
    ``..``, distinct for distinct folders, the same folder for files of one folder."""
    for name in ("lists/x.wav", "lists/sub/y.wav", "mels/x.wav", "escape/a.wav", "other/a.wav",
                 "other/b.wav"):
        touch(tmp_path / name)
    lines = ["x.wav", "sub/../sub/y.wav", "../mels/x.wav", "../escape/a.wav",
             str(tmp_path / "other" / "a.wav"), f"{tmp_path}/lists/../other/b.wav"]
    utterances = read_corpus("folder", touch(tmp_path / "lists" / "list.txt", "\n".join(lines)))
    ids = {u.path.name + ":" + u.path.parent.name: u.id for u in utterances}
    assert ids["x.wav:lists"] == "x" and ids["y.wav:sub"] == "sub/y"
    outside = [ids[k] for k in ("x.wav:mels", "a.wav:escape", "a.wav:other", "b.wav:other")]
    assert all(re.fullmatch(r"outside/[a-z]+-[0-9a-f]{8}/[abx]", uid) for uid in outside)
    assert len(set(ids.values())) == 6 and outside[0].startswith("outside/mels-")
    assert outside[2].rsplit("/", 1)[0] == outside[3].rsplit("/", 1)[0] != outside[1].rsplit("/", 1)[0]
    monkeypatch.chdir(tmp_path)  # the same ids from a relative path to the list
    assert [u.id for u in read_corpus("folder", Path("lists/list.txt"))] == [u.id for u in utterances]


def test_ids_that_would_leave_the_cache_are_rejected(tmp_path):
    touch(tmp_path / "metadata.csv", "LJ001|fine|\n../../etc/LJ002|escapes|\n")
    with pytest.raises(ValueError, match=r"utterance id '../../etc/LJ002' .*'\.\.'"):
        read_corpus("ljspeech", tmp_path)
