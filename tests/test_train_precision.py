"""train.precision: native-bf16 detection, "auto", bf16 autocast on CPU in the Trainer (non-finite guard,
exact resume, DDP), float32 log-determinants in the flows under autocast, and tiny teacher and student runs
in bf16 against fp32."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from task_checks import STUDENT, TINY, val_metrics
from toy_task import TOY_SCRIPT, ToyTask, assert_same_state, final_state, toy_config

from wavesynth import flows
from wavesynth.train import CheckpointDir, Trainer, autocast, load_checkpoint, native_bf16, resolve_precision
from wavesynth.train import precision as precision_module
from wavesynth.train.precision import bf16_support, describe_precision


@pytest.fixture
def cpu_features(monkeypatch, tmp_path):
    """Fake CPU feature sources: ``set(capabilities, flags)`` (None for a source that is missing)."""

    def set_features(capabilities: dict | None, flags: str | None) -> None:
        monkeypatch.setattr(precision_module, "_torch_cpu_capabilities", lambda: capabilities)
        cpuinfo = tmp_path / "cpuinfo"
        if flags is None:
            monkeypatch.setattr(precision_module, "_CPUINFO", tmp_path / "missing")
        else:
            cpuinfo.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
            monkeypatch.setattr(precision_module, "_CPUINFO", cpuinfo)
        precision_module._cpu_bf16.cache_clear()

    yield set_features
    precision_module._cpu_bf16.cache_clear()


# ------------------------------------------------------------------------------------ detection, auto


def test_auto_follows_native_bf16_on_this_machine():
    native = native_bf16("cpu")
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    if not torch.cuda.is_available():
        assert not native_bf16("cuda") and resolve_precision("auto", "cuda") == "fp32"
    line = describe_precision("auto", "cpu")
    assert line.startswith(f"precision {resolve_precision('auto', 'cpu')} (train.precision = auto; cpu: ")
    assert "\n" not in line


@pytest.mark.parametrize(("capabilities", "flags", "native", "why"), [
    ({"avx512_bf16": True, "amx_bf16": False}, "fpu avx2", True, "get_capabilities() has avx512_bf16"),
    ({"avx512_bf16": False, "amx_bf16": True}, None, True, "has amx_bf16"),
    (None, "fpu avx2 avx512f avx512_bf16 amx_tile", True, "/proc/cpuinfo flags have avx512_bf16"),
    (None, "fpu avx2 amx_bf16", True, "/proc/cpuinfo flags have amx_bf16"),
    ({"avx512_bf16": False}, "fpu avx2 avx512f", False, "no avx512_bf16 or amx_bf16 in"),
    (None, None, False, "torch CPU capability"),
])
def test_cpu_detection_reads_torch_cpuinfo_then_proc_cpuinfo(cpu_features, capabilities, flags, native, why):
    cpu_features(capabilities, flags)
    assert bf16_support("cpu")[0] is native and why in bf16_support("cpu")[1]
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert ("emulated" in describe_precision("bf16", "cpu")) is (not native)


def test_unknown_precision_is_a_one_line_error():
    for bad in ("fp16", "BF16", "", "float32"):
        with pytest.raises(ValueError, match="unknown precision") as error:
            resolve_precision(bad, "cpu")
        assert "auto, fp32, bf16" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        autocast("fp16", "cpu")
    with pytest.raises(ValueError, match="bf16 autocast runs on cpu and cuda, not meta"):
        resolve_precision("bf16", "meta")


def test_autocast_lowers_matmuls_on_cpu_and_fp32_is_a_null_context():
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with autocast("bf16", "cpu"):
        assert layer(x).dtype == torch.bfloat16
    with autocast("fp32", torch.device("cpu")):
        assert layer(x).dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
    with autocast("auto", "cpu"):
        assert layer(x).dtype == (torch.bfloat16 if native_bf16("cpu") else torch.float32)


# ------------------------------------------------------------------------------------------- trainer


class DtypeToyTask(ToyTask):
    """The toy task, recording the dtype of the model's output in training and validation."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.dtypes: set[tuple[bool, torch.dtype]] = set()

    def loss(self, model, batch):
        self.dtypes.add((model.training, model(batch[0]).dtype))
        return super().loss(model, batch)


def test_bf16_trains_under_cpu_autocast_with_float32_weights_gradients_and_optimizer(tmp_path):
    task = DtypeToyTask(toy_config(tmp_path, "train.precision=bf16", "train.steps=4"))
    trainer = Trainer(task)
    assert trainer.precision == "bf16"
    trainer.fit()
    assert task.dtypes == {(True, torch.bfloat16), (False, torch.bfloat16)}
    state = load_checkpoint(CheckpointDir(tmp_path / "run").latest())
    assert state["precision"] == "bf16"
    tensors = [*state["model"].values(), *state["ema"]["module"].values()]
    tensors += [t for s in state["optimizer"]["state"].values() for t in s.values() if t.dim()]
    assert tensors and all(t.dtype == torch.float32 for t in tensors)
    log = (tmp_path / "run" / "log.txt").read_text()
    assert log.count(" precision ") == 1 and describe_precision("bf16", "cpu") in log

    fp32 = DtypeToyTask(toy_config(tmp_path / "fp32", "train.precision=fp32", "train.steps=4"))
    Trainer(fp32).fit()
    assert fp32.dtypes == {(True, torch.float32), (False, torch.float32)}


def test_auto_logs_the_precision_it_resolved_to(tmp_path):
    trainer = Trainer(ToyTask(toy_config(tmp_path, "train.steps=4")))
    assert trainer.config.precision == "auto" and trainer.precision == resolve_precision("auto", "cpu")
    assert describe_precision("auto", "cpu") in (tmp_path / "run" / "log.txt").read_text()


def test_nonfinite_steps_are_skipped_in_bf16(tmp_path):
    config = toy_config(tmp_path, "train.precision=bf16", "data.nan_calls=[3, 8]")
    trainer = Trainer(ToyTask(config))
    assert trainer.fit().step == 12
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "step 2: loss or gradient not finite, update skipped (1 in a row)" in log
    assert "step 5: loss or gradient not finite, update skipped (1 in a row)" in log
    assert trainer.ema.updates == 10
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values())


def test_bf16_resume_continues_bit_for_bit_and_differs_from_fp32(tmp_path):
    overrides = ["train.precision=bf16", "model.dropout=0.2", "data.random=true"]
    Trainer(ToyTask(toy_config(tmp_path / "a", *overrides))).fit()  # 12 steps straight
    config = toy_config(tmp_path / "b", *overrides)
    task = ToyTask(config)
    trainer = Trainer(task)
    task.on_loss = lambda call: call == config.train.grad_accum * 5 and trainer.stop()
    assert trainer.fit().step == 6
    resumed = Trainer(ToyTask(config), resume=True)
    assert resumed.step == 6 and resumed.fit().step == 12
    a, b = final_state(tmp_path / "a" / "run"), final_state(tmp_path / "b" / "run")
    assert_same_state(a, b)
    assert a["best"] == b["best"]

    Trainer(ToyTask(toy_config(tmp_path / "c", *overrides, "train.precision=fp32"))).fit()
    c = final_state(tmp_path / "c" / "run")
    assert any(not torch.equal(a["model"][k], c["model"][k]) for k in a["model"])  # bf16 really ran


def test_resuming_a_checkpoint_with_the_old_bf16_key(tmp_path):
    """A checkpoint written before train.precision (config ``bf16 = true``, no stored precision) resumes with
    the default precision and reports no change; a real change of precision is reported."""
    Trainer(ToyTask(toy_config(tmp_path, "train.steps=4"))).fit()
    path = CheckpointDir(tmp_path / "run").latest()
    state = torch.load(path, weights_only=False)
    del state["config"]["train"]["precision"], state["precision"]
    state["config"]["train"]["bf16"] = True
    torch.save(state, path)
    trainer = Trainer(ToyTask(toy_config(tmp_path, "train.steps=8")), resume=True)
    assert trainer.fit().step == 8
    changed = [line for line in (tmp_path / "run" / "log.txt").read_text().splitlines() if "changed" in line]
    assert [line.split(": ", 1)[1] for line in changed] == ["train.steps: 4 -> 8"]

    Trainer(ToyTask(toy_config(tmp_path, "train.steps=10", "train.precision=bf16")), resume=True).fit()
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "changed since the checkpoint: train.precision: 'auto' -> 'bf16'" in log
    if resolve_precision("auto", "cpu") == "fp32":
        assert "changed since the checkpoint: precision fp32 -> bf16" in log


def test_two_gloo_processes_in_bf16_match_one_process(tmp_path):
    """DDP on CPU in bf16: two processes of micro-batch 2 against one of micro-batch 4, same global batch."""
    two, one = tmp_path / "two", tmp_path / "one"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(TOY_SCRIPT), f"train.run_dir={two / 'run'}", "train.precision=bf16"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("finished step=12") == 2
    Trainer(ToyTask(toy_config(one, "train.precision=bf16"))).fit()
    a = load_checkpoint(CheckpointDir(two / "run").latest())
    b = load_checkpoint(CheckpointDir(one / "run").latest())
    assert a["precision"] == b["precision"] == "bf16"
    for key in a["model"]:  # bf16 products rounded per micro-batch, summed in another order
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=2e-3, atol=2e-3, msg=key)
    assert (two / "run" / "log.txt").read_text().count(" precision bf16 ") == 1


# ---------------------------------------------------------------------------------------------- flows


def _flow_models() -> dict[str, flows.Flow]:
    return {
        "maf": flows.MAF(features=6, hidden_features=16, num_layers=2),
        "realnvp": flows.RealNVP(6, hidden_features=16, num_layers=2),
    }


@pytest.mark.parametrize("name", ["maf", "realnvp"])
def test_flow_log_prob_is_float32_under_bf16_autocast(name):
    model = _flow_models()[name].eval()
    x = torch.randn(5, 6)
    reference = model.log_prob(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model.log_prob(x)
    assert low.dtype == torch.float32 and reference.dtype == torch.float32
    torch.testing.assert_close(low, reference, rtol=0.05, atol=0.5)  # only the networks ran in bf16


def test_autoregressive_logabsdet_is_the_float32_sum_of_the_bf16_log_scales():
    """A bf16 sum of 4096 log-scales of about 0.1 is off by nats; the flow sums them in float32."""
    torch.manual_seed(0)
    transform = flows.MaskedAffineAutoregressive(features=4096, hidden_features=8)
    with torch.no_grad():
        for parameter in transform.parameters():  # log-scales away from their initial zeros
            parameter.normal_(0.1, 0.3)
    x = torch.randn(3, 4096)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        log_scale, _ = transform.log_scale_and_shift(x, None)
        _, logabsdet = transform(x)
    assert log_scale.dtype == torch.bfloat16 and logabsdet.dtype == torch.float32
    exact = log_scale.double().sum(1)
    torch.testing.assert_close(logabsdet.double(), exact, rtol=0, atol=1e-3)
    assert (log_scale.sum(1).double() - exact).abs().max() > 1e-3  # what a bf16 sum would have given


def test_sum_except_batch_and_base_log_prob_are_float32_for_bf16_and_keep_float64():
    z = torch.randn(4, 300).bfloat16()
    assert flows.StandardNormal(300).log_prob(z).dtype == torch.float32
    assert flows.base.sum_except_batch(z).dtype == torch.float32
    base = flows.StandardNormal(300)
    torch.testing.assert_close(base.log_prob(z), base.log_prob(z.float()), rtol=0, atol=0)
    assert base.log_prob(z.double()).dtype == torch.float64


# -------------------------------------------------------------------------------- tiny audio models


@pytest.mark.slow
def test_tiny_teacher_and_student_in_bf16_reach_the_fp32_validation_loss(cache, tmp_path):
    """Trained the same steps on CPU in fp32 and in bf16: validation losses within 2%."""
    from wavesynth.parallel.task import DistillConfig, StudentTask
    from wavesynth.train import load_config
    from wavesynth.wavenet.task import TeacherConfig, TeacherTask

    common = [f"data.caches=['{cache}']", "train.steps=40", "train.val_every=20", "train.save_every=40",
              "data.samples=0", "train.ema_decay=0"]
    losses: dict[tuple[str, str], float] = {}
    for precision in ("fp32", "bf16"):
        run = tmp_path / f"teacher-{precision}"
        config = load_config(TeacherConfig, overrides=[*TINY, *common, f"train.run_dir={run}",
                                                       f"train.precision={precision}"])
        losses["teacher", precision] = Trainer(TeacherTask(config)).fit().best_metric
    teacher = tmp_path / "teacher-fp32" / "best.pt"
    for precision in ("fp32", "bf16"):
        run = tmp_path / f"student-{precision}"
        config = load_config(DistillConfig, overrides=[*STUDENT, *common, f"train.run_dir={run}",
                                                       f"train.precision={precision}", f"teacher='{teacher}'",
                                                       "loss.contrastive_weight=0"])
        losses["student", precision] = Trainer(StudentTask(config)).fit().best_metric
    print({f"{model} {precision}": round(v, 4) for (model, precision), v in losses.items()})
    for model in ("teacher", "student"):
        fp32, bf16 = losses[model, "fp32"], losses[model, "bf16"]
        assert abs(bf16 - fp32) <= 0.02 * abs(fp32), (model, fp32, bf16)
        for precision in ("fp32", "bf16"):  # both learn: step 40 validates better than step 20
            curve = val_metrics(tmp_path / f"{model}-{precision}")
            assert curve[40]["loss"] < curve[20]["loss"], (model, precision, curve)
        assert fp32 != bf16  # bf16 autocast really ran

