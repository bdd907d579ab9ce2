"""--precision, --channels-last, --compile and --sync-bn: resolved per device, refused where they cannot work,
and each one trains to the losses of the plain fp32 eager step (within the tolerance its arithmetic allows)."""

from __future__ import annotations

import copy
import csv
import functools
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from pix2pix import devices
from pix2pix.checkpoint import load_checkpoint
from pix2pix.devices import resolve_channels_last, resolve_device, resolve_precision
from pix2pix.inference import Pix2Pix
from pix2pix.networks import build_discriminator_for, build_generator_for
from pix2pix.training.acceleration import MixedPrecision, align_optimizer_state, with_sync_batch_norm
from pix2pix.training.cycle_step import cycle_train_step
from pix2pix.training.image_pool import ImagePool
from pix2pix.training.loop import fit
from pix2pix.training.optim import build_optimizer
from pix2pix.training.step import train_step
from tests.helpers import tiny_config

CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]


def test_auto_precision_is_fp32_on_cpu_and_fp16_is_refused_there():
    assert resolve_precision("auto", CPU) == torch.float32
    assert resolve_precision("fp32", CPU) == torch.float32
    with pytest.raises(ValueError, match="--precision fp16 needs a CUDA device"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", CPU)


@pytest.mark.parametrize("native", [True, False])
def test_cpu_bf16_is_taken_where_the_cpu_has_it_and_refused_where_it_would_be_emulated(monkeypatch, native):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", CPU) == torch.float32  # an opt-in: auto stays the paper's fp32
    if native:
        assert resolve_precision("bf16", CPU) == torch.bfloat16
    else:
        with pytest.raises(ValueError, match="this CPU has no native bf16 .AVX512-BF16 or AMX."):
            resolve_precision("bf16", CPU)


def test_native_bf16_probe_is_false_where_torch_lacks_the_cpu_probes(monkeypatch):
    assert isinstance(devices.cpu_has_native_bf16(), bool)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, probe, raising=False)
    assert devices.cpu_has_native_bf16() is False


def test_a_cpu_bf16_run_trains_checkpoints_and_resumes(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)  # tiny networks: cheap even if emulated
    config = tiny_config(tiny_dataset, tmp_path / "run", device="cpu", precision="bf16")
    fit(config.replace("optim", n_epochs=1, n_epochs_decay=0), progress=False)
    fit(config, resume="auto", progress=False)
    state, saved = load_checkpoint(tmp_path / "run")
    assert state["epoch"] == 2 and saved.train.precision == "bf16"
    assert all(math.isfinite(value) for row in read_losses(tmp_path / "run") for value in row)
    Pix2Pix.load(tmp_path / "run", device="cpu")  # translates in fp32 as any checkpoint


def test_channels_last_is_on_for_cuda_and_off_for_cpu_unless_set():
    assert not resolve_channels_last("auto", CPU)
    assert resolve_channels_last("auto", torch.device("cuda"))
    assert resolve_channels_last("on", CPU) and not resolve_channels_last("off", torch.device("cuda"))


@pytest.mark.parametrize(("cuda", "mps", "chosen"), [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_device_is_cuda_else_apple_mps_else_cpu(monkeypatch, cuda, mps, chosen):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto") == torch.device(chosen)
    if not mps:
        with pytest.raises(ValueError, match="'mps' requested but MPS is not available"):
            resolve_device("mps")


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"precision": "fp16"}, "--precision fp16 needs a CUDA device"), ({"sync_bn": True}, "--sync-bn needs CUDA")],
)
def test_cpu_run_refuses_cuda_only_options_before_writing_anything(tiny_dataset, tmp_path, changes, message):
    config = tiny_config(tiny_dataset, tmp_path / "run", device="cpu", **changes)
    with pytest.raises(ValueError, match=message):
        fit(config, progress=False)
    assert not (tmp_path / "run").exists()


def run_steps(device: str, precision: MixedPrecision, steps: int = 4) -> dict[str, float]:
    """`steps` training steps of the tiny networks from seed 0 on one fixed batch; the last step's losses."""
    config = tiny_config(Path("data"), Path("run"))
    torch.manual_seed(0)
    generator, discriminator = build_generator_for(config).to(device), build_discriminator_for(config).to(device)
    opt_g = build_optimizer(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = build_optimizer(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    source, target = (torch.rand(2, 3, 32, 32, device=device) * 2 - 1 for _ in range(2))
    for _ in range(steps):
        losses = train_step(
            generator,
            discriminator,
            opt_g,
            opt_d,
            source,
            target,
            precision=precision,
        )
    return losses


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_half_precision_steps_are_finite_and_close_to_fp32(device, dtype):
    # on the CPU the step runs too (the tiny networks cost little); fp16 is refused there only for speed
    scaler = torch.amp.GradScaler(device) if dtype == torch.float16 else None
    half = run_steps(device, MixedPrecision(dtype, scaler))
    full = run_steps(device, MixedPrecision())
    assert all(math.isfinite(value) for value in half.values())
    assert half != full  # the forwards did run in half precision
    for name in ("D_real", "D_fake", "G_GAN", "G_L1"):
        assert half[name] == pytest.approx(full[name], rel=0.03), name
    if scaler is not None:  # the loss scale survives a save/load round trip
        restored = MixedPrecision(dtype, torch.amp.GradScaler(device))
        restored.load_state_dict(copy.deepcopy(MixedPrecision(dtype, scaler).state_dict()))
        assert restored.state_dict() == scaler.state_dict()


def read_losses(run_dir: Path) -> list[list[float]]:
    with (run_dir / "log.csv").open() as f:
        return [[float(row[name]) for name in ("G_GAN", "G_L1", "D_real", "D_fake")] for row in csv.DictReader(f)]


def test_channels_last_trains_to_the_losses_of_contiguous_tensors(tiny_dataset, tmp_path):
    runs = {}
    for setting in ("off", "on"):
        config = tiny_config(tiny_dataset, tmp_path / setting, device="cpu", channels_last=setting)
        run_dir = fit(config, progress=False)
        runs[setting] = read_losses(run_dir)
    assert len(runs["on"]) == 2
    for contiguous, channels_last in zip(runs["off"], runs["on"]):
        assert channels_last == pytest.approx(contiguous, rel=1e-4)
    # the weights were trained (and saved) as NHWC, and load into a plain contiguous network
    weights = {setting: load_checkpoint(tmp_path / setting)[0]["generator"]["encoder.0.0.weight"] for setting in runs}
    assert weights["on"].is_contiguous(memory_format=torch.channels_last) and weights["off"].is_contiguous()
    Pix2Pix.load(tmp_path / "on", device="cpu")


def test_loaded_optimizer_state_takes_the_layout_of_its_parameter():
    """Adam moments saved from a contiguous run, resumed into channels_last weights: without the realignment
    the fused step of torch 2.13 pairs the wrong elements (differences of the order of lr)."""
    torch.manual_seed(0)
    weight, gradients = torch.randn(4, 3, 5, 5), [torch.randn(4, 3, 5, 5) for _ in range(2)]

    def train(channels_last: bool, resume_from_contiguous: bool) -> torch.Tensor:
        layout = torch.channels_last if channels_last else torch.contiguous_format
        parameter = nn.Parameter(weight.clone(memory_format=layout))  # a copy: the runs must not share it
        optimizer = build_optimizer([parameter], lr=0.1, betas=(0.5, 0.999))
        parameter.grad = gradients[0].clone(memory_format=layout)
        optimizer.step()
        if resume_from_contiguous:
            saved = train_state_of_contiguous_run()
            optimizer.load_state_dict(saved)
            align_optimizer_state(optimizer)
        parameter.grad = gradients[1].clone(memory_format=layout)
        optimizer.step()
        return parameter.detach()

    def train_state_of_contiguous_run() -> dict:
        parameter = nn.Parameter(weight.clone())
        optimizer = build_optimizer([parameter], lr=0.1, betas=(0.5, 0.999))
        parameter.grad = gradients[0].clone()
        optimizer.step()
        return optimizer.state_dict()

    reference = train(channels_last=False, resume_from_contiguous=False)
    assert torch.allclose(train(channels_last=True, resume_from_contiguous=True), reference, atol=1e-6)


def test_sync_batch_norm_view_shares_the_networks_weights_and_leaves_it_unchanged():
    generator = build_generator_for(tiny_config(Path("data"), Path("run")))
    view = with_sync_batch_norm(generator)
    assert any(isinstance(m, nn.SyncBatchNorm) for m in view.modules())
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in generator.modules())  # sample grids stay local
    assert [id(t) for t in view.state_dict(keep_vars=True).values()] == [
        id(t) for t in generator.state_dict(keep_vars=True).values()
    ]
    # in one process SyncBatchNorm is batch norm, and its running statistics are the network's own
    source, before = torch.rand(2, 3, 32, 32), copy.deepcopy(generator.state_dict())
    torch.manual_seed(0)  # the same dropout draws for both forwards
    through_view = view(source)
    assert not torch.equal(generator.state_dict()["encoder.1.2.running_mean"], before["encoder.1.2.running_mean"])
    generator.load_state_dict(before)
    torch.manual_seed(0)
    assert torch.equal(through_view, generator(source))


@pytest.fixture
def traced_graphs(monkeypatch) -> list[torch.fx.GraphModule]:
    """torch.compile with a backend that runs Dynamo's graphs as they are and records them: the wrapper, the
    guards and the state_dict keys are those of a real compile, but no C++ is generated (inductor takes
    ~40 s for the tiny U-Net on this 2-core machine; the GPU test below uses it)."""
    graphs = []

    def run_as_traced(graph: torch.fx.GraphModule, example_inputs):
        graphs.append(graph)
        return graph.forward

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=run_as_traced))
    return graphs


@pytest.mark.slow
def test_compiled_training_matches_eager_and_saves_plain_state_dicts(tiny_dataset, tmp_path, traced_graphs):
    eager = read_losses(fit(tiny_config(tiny_dataset, tmp_path / "eager", device="cpu"), progress=False))
    compiled_dir = fit(tiny_config(tiny_dataset, tmp_path / "compiled", device="cpu", compile=True), progress=False)
    assert len(traced_graphs) >= 3  # G, D, and D frozen for the G step
    for a, b in zip(eager, read_losses(compiled_dir)):
        assert b == pytest.approx(a, rel=1e-5)
    state, _ = load_checkpoint(compiled_dir)
    for network in ("generator", "discriminator"):
        assert not [key for key in state[network] if key.startswith(("_orig_mod.", "module."))]
    Pix2Pix.load(compiled_dir, device="cpu")  # strict load into the plain generator


@pytest.mark.slow
def test_compiled_cyclegan_matches_eager_and_saves_plain_state_dicts(tmp_path, traced_graphs):
    from pix2pix.training.cycle_loop import fit_cyclegan
    from tests.test_cyclegan import tiny_cycle_config
    from tests.test_cyclegan_parts import write_unpaired

    config = tiny_cycle_config(write_unpaired(tmp_path / "data", 3, 3), tmp_path / "eager")
    config = config.replace("optim", n_epochs=1, n_epochs_decay=1)
    eager = fit_cyclegan(config, progress=False)
    compiled = fit_cyclegan(config.replace("train", out=str(tmp_path / "compiled"), compile=True), progress=False)
    assert len(traced_graphs) >= 4  # G_A, G_B, D_A, D_B
    with (eager / "log.csv").open() as f, (compiled / "log.csv").open() as g:
        for a, b in zip(csv.DictReader(f), csv.DictReader(g)):
            assert float(b["cycle_A"]) == pytest.approx(float(a["cycle_A"]), rel=1e-5)
            assert float(b["D_B"]) == pytest.approx(float(a["D_B"]), rel=1e-5)
    state, _ = load_checkpoint(compiled)
    for network in ("generator", "generator_b", "discriminator", "discriminator_b"):
        assert not [key for key in state[network] if key.startswith(("_orig_mod.", "module."))]
    Pix2Pix.load(compiled, device="cpu", reverse=True)


@needs_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_run_with_half_precision_compile_and_channels_last_saves_and_resumes(tiny_dataset, tmp_path, precision):
    """The GPU path end to end with inductor: checkpoints hold plain weights and (fp16) the loss scale."""
    if precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip("this GPU has no native bf16")
    config = tiny_config(tiny_dataset, tmp_path / "run", device="cuda", precision=precision, compile=True)
    fit(config.replace("optim", n_epochs_decay=0), progress=False)
    state, _ = load_checkpoint(tmp_path / "run")
    assert (state["scaler"] is not None) == (precision == "fp16")
    fit(config, resume="auto", progress=False)
    resumed, _ = load_checkpoint(tmp_path / "run")
    assert resumed["epoch"] == 2 and all(math.isfinite(value) for row in read_losses(tmp_path / "run") for value in row)
    Pix2Pix.load(tmp_path / "run", device="cuda")


def run_cycle_steps(device: str, precision: MixedPrecision, steps: int = 3) -> dict[str, float]:
    """`steps` CycleGAN steps of tiny networks from seed 0 on one fixed batch; the last step's losses."""
    from tests.test_cyclegan_parts import Networks

    nets = Networks()
    for net in nets.all().values():
        net.to(device)
    nets.real_a, nets.real_b = nets.real_a.to(device), nets.real_b.to(device)
    pools = ImagePool(2), ImagePool(2)
    networks = (nets.g_a, nets.g_b, nets.d_a, nets.d_b, nets.opt_g, nets.opt_d)
    for _ in range(steps):
        losses = cycle_train_step(*networks, nets.real_a, nets.real_b, *pools, precision=precision)
    assert all(image.dtype == torch.float32 for pool in pools for image in pool.images)  # fp32 in the pools
    return losses


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_cyclegan_half_precision_steps_are_finite_and_close_to_fp32(device, dtype):
    # a start scale that does not overflow on the first step (the default 2**16 does with the cycle losses,
    # and the scaler then skips steps, as it should): so both runs take the same number of updates
    scaler = torch.amp.GradScaler(device, init_scale=2.0**10) if dtype == torch.float16 else None
    half = run_cycle_steps(device, MixedPrecision(dtype, scaler))
    full = run_cycle_steps(device, MixedPrecision())
    if scaler is not None:
        assert scaler.get_scale() == 2.0**10  # no step skipped
    assert all(math.isfinite(value) for value in half.values())
    assert half != full  # the forwards did run in half precision
    for name in ("cycle_A", "idt_A", "cycle_B", "idt_B"):  # L1 terms: close
        assert half[name] == pytest.approx(full[name], rel=0.05), name
    for name in ("D_A", "G_A", "D_B", "G_B"):  # least-squares terms of D's logits, which rounding moves more
        assert half[name] == pytest.approx(full[name], abs=0.1), name


@needs_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_cyclegan_run_with_half_precision_and_compile_saves_and_resumes(tmp_path, precision):
    from pix2pix.training.cycle_loop import fit_cyclegan
    from tests.test_cyclegan import tiny_cycle_config
    from tests.test_cyclegan_parts import write_unpaired

    if precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip("this GPU has no native bf16")
    config = tiny_cycle_config(write_unpaired(tmp_path / "data", 4, 4), tmp_path / "run")
    config = config.replace("train", device="cuda", precision=precision, compile=True)
    fit_cyclegan(config.replace("optim", n_epochs_decay=0), progress=False)
    state, _ = load_checkpoint(tmp_path / "run")
    assert (state["scaler"] is not None) == (precision == "fp16")
    fit_cyclegan(config, resume="auto", progress=False)
    resumed, _ = load_checkpoint(tmp_path / "run")
    assert resumed["epoch"] == 3
    with (tmp_path / "run" / "log.csv").open() as f:
        assert all(math.isfinite(float(row["cycle_A"])) for row in csv.DictReader(f))
    Pix2Pix.load(tmp_path / "run", device="cuda", reverse=True)
