"""The ``wavesynth`` command line.

A user mistake (a ``WavesynthError``: bad input, bad setting, missing or damaged file) ends as one line
``wavesynth: error: ...`` on stderr and exit status 2; any other exception is a bug and shows its traceback.
``--debug`` shows the traceback of a user mistake too.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from collections.abc import Sequence

from wavesynth.errors import WavesynthError


class CommandError(WavesynthError):
    """A user-facing failure found by the command line itself: printed as one line, exit status 2."""


def _add_debug(parser: argparse.ArgumentParser, default: object = argparse.SUPPRESS) -> None:
    """``--debug``: before the command (``wavesynth --debug synthesize ...``) or after it."""
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show the traceback of a user mistake too (bugs always show theirs)")


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names on the command line."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _preprocess(args: argparse.Namespace) -> int:
    from wavesynth.audio.preprocess import preprocess

    trim_db = None if args.no_trim else args.trim_db
    tracker = None if args.pitch_tracker == "none" else args.pitch_tracker
    summary = preprocess(args.corpus, args.root, args.out, args.preset, trim_db=trim_db,
                         loudness=args.loudness, valid_fraction=args.valid_fraction, pitch_tracker=tracker,
                         speakers=args.speakers, exclude_speakers=args.exclude_speakers, workers=args.workers,
                         progress=not args.quiet)
    print(summary.report())
    return 0 if summary.ok else 1


def _train(args: argparse.Namespace) -> int:
    from wavesynth.train import NonFiniteError, Trainer, load_config

    if args.model == "teacher":
        from wavesynth.wavenet.task import TeacherTask

        task_class, overrides = TeacherTask, args.overrides
    elif args.model == "pitch":
        from wavesynth.pitch.task import PitchTask

        task_class, overrides = PitchTask, args.overrides
    else:
        from wavesynth.parallel.task import StudentTask

        task_class, overrides = StudentTask, [*args.overrides, f"teacher={args.teacher}"]
    if not os.path.isfile(args.config):
        raise CommandError(f"{args.config}: no such config file")
    task = task_class(load_config(task_class.config_class, args.config, overrides))
    try:
        result = Trainer(task, resume=args.resume).fit()
    except NonFiniteError as error:
        raise CommandError(str(error)) from None
    best = "none" if result.best_metric is None else f"{result.best_metric:.4g}"
    print(f"{args.model}: step {result.step}, best validation loss {best}, "
          f"last checkpoint {result.checkpoint}")
    return 130 if result.interrupted else 0


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _vocoder(args: argparse.Namespace):
    from wavesynth.vocoder import Vocoder

    return Vocoder.from_pretrained(args.model, device=args.device, precision=args.precision)


def _report_warnings(caught: list[warnings.WarningMessage]) -> None:
    for message in dict.fromkeys(str(w.message) for w in caught):
        print(f"wavesynth: warning: {message}", file=sys.stderr)


def _read_array(path: str, what: str):
    """The array of a .npy file (``what`` names it in errors)."""
    import numpy as np

    if not path.endswith(".npy"):
        raise CommandError(f"{path}: the {what} must be a .npy file")
    if not os.path.isfile(path):
        raise CommandError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise CommandError(f"{path}: an empty file, not a numpy array")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as error:
        raise CommandError(f"{path}: not a numpy array file ({error})") from None
    if not isinstance(array, np.ndarray):  # np.load opens an .npz archive whatever the file's name
        array.close()
        raise CommandError(f"{path}: an .npz archive, not a .npy array (save the {what} with np.save)")
    if array.dtype.kind not in "biufc":
        raise CommandError(f"{path}: holds {array.dtype} values, not numbers")
    return array


def _read_mel(path: str):
    """A mel from a .npy file: (n_mels, frames), or (1, n_mels, frames)."""
    mel = _read_array(path, "mel (one (n_mels, frames) array)")
    if mel.ndim == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.ndim == 3:
        raise CommandError(f"{path}: holds {mel.shape[0]} mels; give one (n_mels, frames) mel per file")
    return mel


def _check_writable(path: str) -> None:
    """Fail before synthesis (minutes for a long clip) when ``path`` cannot be opened for writing: a folder,
    a read-only place. Makes the folders above it; leaves no file behind."""
    existed = os.path.lexists(path)
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as error:
        raise CommandError(f"{path}: cannot write --out ({error})") from None
    if not existed:
        os.remove(path)


def _write_audio(path: str, audio, sample_rate: int) -> None:
    """``save_audio`` to a temporary file, then copied to ``path``: a failed write (a full disk, /dev/full)
    is one line and leaves no partial file."""
    import shutil
    import tempfile

    from wavesynth.audio import save_audio

    with tempfile.TemporaryDirectory() as folder:
        encoded = os.path.join(folder, "audio" + os.path.splitext(path)[1])
        try:
            save_audio(encoded, audio, sample_rate)
        except (OSError, RuntimeError) as error:  # soundfile's errors are RuntimeErrors
            raise CommandError(f"{path}: cannot encode the audio in {folder} ({error})") from None
        try:
            shutil.copyfile(encoded, path)
        except OSError as error:
            if os.path.isfile(path) and not os.path.islink(path):
                os.remove(path)
            raise CommandError(f"{path}: cannot write the audio ({error})") from None


def _synthesize(args: argparse.Namespace) -> int:
    import time

    from wavesynth.audio import load_audio

    if os.path.splitext(args.out)[1].lower() not in (".wav", ".flac"):
        raise CommandError(f"{args.out}: --out must end in .wav or .flac")
    _check_writable(args.out)
    voc = _vocoder(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.wav:
            mel = voc.mel(load_audio(args.wav, voc.sample_rate, min_samples=voc.config.min_samples))
        else:
            mel = _read_mel(args.mel)
        f0 = None if args.f0 is None else _read_array(args.f0, "F0 track")
        started = time.perf_counter()
        audio = voc.synthesize(mel, f0=f0, pitch_scale=args.pitch_scale)
        spent = time.perf_counter() - started
    _report_warnings(caught)
    _write_audio(args.out, audio, voc.sample_rate)
    seconds = audio.shape[0] / voc.sample_rate
    print(f"{args.out}: {seconds:.2f} s at {voc.sample_rate} Hz from {mel.shape[-1]} mel frames by "
          f"{voc.name} ({voc.kind}, {voc.precision}) in {spent:.2f} s ({spent / seconds:.3g}x real time)")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from wavesynth.eval.report import METRICS, collect_clips, evaluate

    clips = [clip for data in args.data for clip in collect_clips(data)][: args.limit]
    voc = _vocoder(args)
    name = voc.name.replace("/", "-") or "model"
    data_name = "+".join(os.path.basename(os.path.normpath(data)) for data in args.data)
    out = args.out or os.path.join("evaluation", f"{name}-{data_name}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(voc, clips, out, progress=None if args.quiet else print)
    _report_warnings(caught)
    for system, metrics in result["summary"].items():
        cells = ", ".join(f"{title} {metrics[key]['mean']:.3g} ± {metrics[key]['std']:.2g}"
                          for key, (title, _, _) in METRICS.items() if metrics[key]["n"])
        print(f"{system}: {cells}")
    print(f"report: {os.path.join(out, 'report.md')}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from wavesynth.pretrained import export_pretrained
    from wavesynth.vocoder import Vocoder

    for clip in args.check_clips:
        if not os.path.isfile(clip):
            raise CommandError(f"{clip}: no such audio file")
    out = export_pretrained(args.checkpoint, args.out, args.kind, args.name, pitch=args.pitch)
    voc = Vocoder.from_pretrained(out, device="cpu", precision="fp32")
    print(f"{out}: {voc.name} ({voc.kind}, {voc.config.name}, {voc.sample_rate} Hz); use it with "
          f"--model {out}, or copy it into pretrained/ to ship it")
    if args.check_clips:
        from wavesynth.eval.check import CHECK_FILE, TEACHER_CHECK_SECONDS, record

        seconds = None if voc.kind == "student" else TEACHER_CHECK_SECONDS
        check = record(out, voc, args.check_clips, seconds=seconds)
        cells = ", ".join(f"{name} {distance:.2f} dB" for name, distance in check["clips"].items())
        print(f"{os.path.join(out, CHECK_FILE)}: log-mel distance {cells}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from wavesynth.pretrained import PRETRAINED_DIR, default_model, list_pretrained, pretrained_config

    names = list_pretrained()
    if not names:
        print(f"no pretrained models in {PRETRAINED_DIR}")
        return 0
    default_name = default_model()
    broken = 0
    for name in names:
        try:
            info = pretrained_config(name)
        except (ValueError, OSError) as error:  # list the others; exit status 1
            print(f"wavesynth: warning: skipped {name}: {error}", file=sys.stderr)
            broken += 1
            continue
        default = "  (default)" if name == default_name else ""
        print(f"{name:28s} {info.kind:8s} {info.mel.name:16s} {info.mel.sample_rate} Hz{default}")
    return 1 if broken else 0


def build_parser() -> argparse.ArgumentParser:
    from wavesynth.audio.corpora import CORPORA
    from wavesynth.audio.features import PRESETS
    from wavesynth.audio.pitch import TRACKERS
    from wavesynth.pretrained import MODEL_TYPES
    from wavesynth.train.precision import PRECISION_CHOICES

    parser = argparse.ArgumentParser(prog="wavesynth", description=__doc__.splitlines()[0])
    _add_debug(parser, default=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synthesize = commands.add_parser("synthesize", help="turn a wav or a mel-spectrogram into audio")
    synthesize.add_argument("--model", metavar="NAME|DIR", help="shipped model name ('wavesynth models'), "
                            "model folder or training checkpoint (default: the default shipped model)")
    source = synthesize.add_mutually_exclusive_group(required=True)
    source.add_argument("--wav", metavar="IN", help="audio file to re-synthesise (copy synthesis)")
    source.add_argument("--mel", metavar="IN.npy", help="(n_mels, frames) log-mel in the model's convention")
    synthesize.add_argument("--out", required=True, metavar="OUT.wav",
                            help="audio file to write (.wav or .flac)")
    synthesize.add_argument("--f0", metavar="F0.npy", help="(frames,) F0 in Hz, 0 where unvoiced, for a "
                            "model with an excitation (default: its pitch predictor's F0 from the mel)")
    synthesize.add_argument("--pitch-scale", type=float, default=1.0, metavar="S",
                            help="multiply the F0 by S (a pitch shift that keeps the spectral envelope)")
    synthesize.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    synthesize.add_argument("--precision", default="auto", choices=PRECISION_CHOICES,
                       help="arithmetic of the model (default auto: bf16 for a student on hardware with "
                            "native bf16, else fp32)")
    synthesize.set_defaults(run=_synthesize)

    preprocess = commands.add_parser("preprocess", help="extract features from a corpus into a cache folder")
    preprocess.add_argument("--corpus", required=True, choices=list(CORPORA),
                            help="corpus layout ('folder': audio files under --root, or a file list)")
    preprocess.add_argument("--root", required=True, help="the corpus folder (or, for 'folder', a file list)")
    preprocess.add_argument("--out", required=True, help="cache folder to write (a rerun resumes it)")
    preprocess.add_argument("--preset", default="hifigan-22k", choices=list(PRESETS),
                            help="feature preset (default: hifigan-22k)")
    preprocess.add_argument("--trim-db", type=float, default=60.0,
                            help="trim leading/trailing frames this many dB below the loudest (default 60)")
    preprocess.add_argument("--no-trim", action="store_true", help="keep leading and trailing silence")
    preprocess.add_argument("--loudness", type=float, metavar="LUFS",
                            help="normalise each file to this integrated loudness, e.g. -23 (default: off)")
    preprocess.add_argument("--valid-fraction", type=float, default=0.05,
                            help="share of utterances in the validation split (default 0.05)")
    preprocess.add_argument("--pitch-tracker", default="pyin", choices=[*TRACKERS, "none"],
                            help="F0 labels for pitch-aware models (default: pyin; none: no labels, unless "
                                 "the cache already has them)")
    preprocess.add_argument("--speakers", type=_names, default=(), metavar="A,B",
                            help="keep only these speakers (comma-separated; default: all)")
    preprocess.add_argument("--exclude-speakers", type=_names, default=(), metavar="A,B",
                            help="leave these speakers out, e.g. to hold voices out of training entirely")
    preprocess.add_argument("--workers", type=int, help="worker processes (default: one per CPU core)")
    preprocess.add_argument("--quiet", action="store_true", help="no progress bar")
    preprocess.set_defaults(run=_preprocess)

    train = commands.add_parser("train", help="train a teacher, distil a student, or train a pitch predictor")
    models_to_train = train.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, text in (("teacher", "train a WaveNet teacher by maximum likelihood"),
                       ("student", "distil a Parallel WaveNet student from a trained teacher"),
                       ("pitch", "train the mel -> F0 predictor of pitch-aware models on pitch labels")):
        sub = models_to_train.add_parser(name, help=text)
        sub.add_argument("--config", required=True, help="TOML config file, e.g. recipes/ljspeech/"
                         f"{name}.toml")
        if name == "student":
            sub.add_argument("--teacher", required=True, metavar="CKPT", help="teacher checkpoint (.pt)")
        sub.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
        sub.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. "
                         "train.steps=1000 data.segment_frames=16")
        sub.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="copy-synthesis metrics and a report")
    evaluate.add_argument("--model", required=True, metavar="NAME|DIR",
                          help="shipped model name, model folder or training checkpoint")
    evaluate.add_argument("--data", required=True, nargs="+", metavar="DIR", help="folder of audio files "
                          "(searched recursively), one audio file, or a feature cache (its validation "
                          "split); several are evaluated together")
    evaluate.add_argument("--out", metavar="DIR", help="report folder (default: evaluation/<model>-<data>)")
    evaluate.add_argument("--limit", type=_positive, metavar="N", help="only the first N clips")
    evaluate.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    evaluate.add_argument("--precision", default="auto", choices=PRECISION_CHOICES,
                       help="arithmetic of the model (default auto: bf16 for a student on hardware with "
                            "native bf16, else fp32)")
    evaluate.add_argument("--quiet", action="store_true", help="no line per clip")
    evaluate.set_defaults(run=_evaluate)

    export = commands.add_parser("export", help="turn a training checkpoint into a model folder")
    export.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="training checkpoint (best.pt or step-*.pt of a teacher or student run)")
    export.add_argument("--out", required=True, metavar="DIR", help="model folder to write (config.json, "
                        "model.pt)")
    export.add_argument("--name", help="the model's name (default: the folder's name)")
    export.add_argument("--kind", choices=list(MODEL_TYPES),
                        help="default: the kind the checkpoint's run trains (student or teacher)")
    export.add_argument("--pitch", metavar="CKPT|DIR", help="pitch predictor for a model with an excitation "
                        "('wavesynth train pitch' checkpoint or a folder with pitch.json and pitch.pt)")
    export.add_argument("--check-clips", nargs="+", default=[], metavar="CLIP",
                        help="record the model's log-mel distance on these audio files in check.json "
                             "(the tests re-measure shipped models on tests/data/second.flac, minute.flac)")
    export.set_defaults(run=_export)

    models = commands.add_parser("models", help="list the shipped pretrained models")
    models.set_defaults(run=_models)
    for sub in (synthesize, preprocess, *models_to_train.choices.values(), evaluate, export, models):
        _add_debug(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except WavesynthError as error:  # a user mistake; any other exception is a bug: its traceback shows
        if args.debug:
            traceback.print_exc()
        print(f"wavesynth: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wavesynth: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
