"""The speed-ups compute what the plain implementations compute: fused Adam, the matmul form of the
deepest transposed convolutions, and batch norm folded into the convs for inference. No timings here
(see benchmarks/)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pix2pix.networks import build_discriminator_for, build_generator_for
from pix2pix.nn import build_generator
from pix2pix.nn.blocks import UpConvTranspose2d, with_plain_transposes
from pix2pix.nn.fold import fold_batch_norm
from pix2pix.nn.generators import UNetGenerator
from pix2pix.nn.modes import set_inference_mode
from pix2pix.training.optim import build_optimizer
from pix2pix.training.step import train_step
from tests.helpers import tiny_config
from tests.test_official import FIXTURES as OFFICIAL_FIXTURES

STEPS = 5


def run_official_order(generator, discriminator, batches) -> list[float]:
    """The official optimize_parameters with plain Adam: the baseline the benchmark times."""
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    torch.manual_seed(1)  # dropout draws
    losses = []
    for source, target in batches:
        fake = generator(source)
        discriminator.requires_grad_(True)
        opt_d.zero_grad()
        pred_fake = discriminator(torch.cat([source, fake.detach()], 1))
        pred_real = discriminator(torch.cat([source, target], 1))
        loss_d = 0.5 * (
            F.binary_cross_entropy_with_logits(pred_fake, torch.zeros_like(pred_fake))
            + F.binary_cross_entropy_with_logits(pred_real, torch.ones_like(pred_real))
        )
        loss_d.backward()
        opt_d.step()
        discriminator.requires_grad_(False)
        opt_g.zero_grad()
        pred_fake = discriminator(torch.cat([source, fake], 1))
        loss_g = F.binary_cross_entropy_with_logits(pred_fake, torch.ones_like(pred_fake)) + 100.0 * F.l1_loss(
            fake, target
        )
        loss_g.backward()
        opt_g.step()
        losses += [loss_d.item(), loss_g.item()]
    return losses


def run_ours(generator, discriminator, batches) -> list[float]:
    opt_g = build_optimizer(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = build_optimizer(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    torch.manual_seed(1)
    losses = []
    for source, target in batches:
        step = train_step(generator, discriminator, opt_g, opt_d, source, target)
        losses += [step["D"], step["G"]]
    return losses


def test_build_optimizer_is_adam_with_a_fast_implementation():
    optimizer = build_optimizer([nn.Parameter(torch.zeros(3))], lr=1e-3, betas=(0.5, 0.999))
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.defaults["fused"] or optimizer.defaults["foreach"]
    assert optimizer.defaults["lr"] == 1e-3 and optimizer.defaults["betas"] == (0.5, 0.999)


def test_our_training_matches_the_official_update_with_plain_adam(tmp_path):
    config = tiny_config(tmp_path, tmp_path / "run")
    torch.manual_seed(0)
    generator, discriminator = build_generator_for(config), build_discriminator_for(config)
    batches = [(torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1) for _ in range(STEPS)]
    # the baseline runs torch's own transposed convolutions; ours runs the deepest ones as matmul + fold
    official_g, official_d = with_plain_transposes(copy.deepcopy(generator)), copy.deepcopy(discriminator)

    expected = run_official_order(official_g, official_d, batches)
    actual = run_ours(generator, discriminator, batches)

    assert actual == pytest.approx(expected, rel=1e-5)
    for ours, official in ((generator, official_g), (discriminator, official_d)):
        for (name, value), reference in zip(ours.state_dict().items(), official.state_dict().values(), strict=True):
            torch.testing.assert_close(value, reference, rtol=1e-5, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize(
    ("kernel_size", "in_channels", "out_channels", "height", "width", "bias"),
    [(4, 6, 4, 5, 7, True), (4, 8, 3, 1, 1, False), (3, 5, 4, 4, 6, True), (4, 4, 3, 9, 9, True)],
)
def test_up_conv_transpose_matches_torch_forward_and_backward(
    kernel_size, in_channels, out_channels, height, width, bias
):
    torch.manual_seed(0)
    ours = UpConvTranspose2d(in_channels, out_channels, kernel_size, bias=bias)
    reference = with_plain_transposes(nn.Sequential(copy.deepcopy(ours)))[0]
    assert type(reference) is nn.ConvTranspose2d
    x = torch.randn(2, in_channels, height, width, requires_grad=True)
    x_ours = x.detach().clone().requires_grad_(True)
    upstream = torch.randn(2, out_channels, 2 * height, 2 * width)

    expected, actual = reference(x), ours(x_ours)
    (expected * upstream).sum().backward()
    (actual * upstream).sum().backward()

    small = height * width <= UpConvTranspose2d.MATMUL_MAX_PIXELS
    assert (type(actual.grad_fn).__name__ == "ConvolutionBackward0") != small, "small inputs run as matmul + fold"
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x_ours.grad, x.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.weight.grad, reference.weight.grad, rtol=1e-5, atol=1e-5)
    if bias:
        torch.testing.assert_close(ours.bias.grad, reference.bias.grad, rtol=1e-5, atol=1e-5)


def test_up_conv_transpose_traces_as_torchs_operator():
    """Exports (ONNX, TorchScript) are traced and must hold the standard operator, even with gradients on."""
    layer = UpConvTranspose2d(4, 3, 4, bias=True)
    graph = str(torch.jit.trace(layer, torch.randn(1, 4, 2, 2)).graph)
    assert "aten::_convolution" in graph and "col2im" not in graph


def build_eval_generator(name: str, norm: str) -> nn.Module:
    torch.manual_seed(0)
    generator = build_generator(
        name,
        in_channels=3,
        out_channels=3,
        image_size=64,
        base_channels=8,
        norm=norm,
        dropout=True,
        upsample="transpose",
    )
    with torch.no_grad():  # training-mode forwards move the running statistics away from (0, 1)
        for _ in range(3):
            generator(torch.randn(2, 3, 64, 64))
    return set_inference_mode(generator, dropout=False, norm_stats="running")


@pytest.mark.parametrize("name", ["unet", "resnet_6blocks"])
def test_folded_batch_norm_gives_the_eval_outputs(name):
    generator = build_eval_generator(name, "batch")
    folded = fold_batch_norm(generator)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(folded(x), generator(x), rtol=0, atol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in generator.modules()), "the original is left unchanged"


def test_folding_refuses_batch_statistics():
    generator = set_inference_mode(build_eval_generator("unet", "batch"), dropout=False, norm_stats="batch")
    with pytest.raises(ValueError, match="running statistics"):
        fold_batch_norm(generator)


@pytest.mark.parametrize("num_downs", [5, 8])
def test_the_benchmarks_official_layout_computes_our_unet(num_downs):
    """The benchmark baseline (benchmarks/official_networks.py) is the official module layout with our
    weights: the same outputs in eval mode and with batch statistics and dropout, the same parameters."""
    from benchmarks.official_networks import official_unet_like

    torch.manual_seed(0)
    generator = UNetGenerator(3, 3, num_downs=num_downs, base_channels=8)
    official = official_unet_like(generator)
    x = torch.randn(2, 3, 2**num_downs, 2**num_downs)
    with torch.no_grad():
        assert (generator.eval()(x) - official.eval()(x)).abs().max() < 1e-5
        torch.manual_seed(1)
        ours = generator.train()(x)
        torch.manual_seed(1)
        assert (ours - official.train()(x)).abs().max() < 1e-5  # the same dropout draws, in the same order


@pytest.mark.skipif(not (OFFICIAL_FIXTURES / "G_unet_256_batch.pt").is_file(), reason="no official fixtures")
def test_the_benchmarks_official_layout_loads_an_official_state_dict_as_it_is():
    from benchmarks.official_networks import OfficialUNet

    fixture = torch.load(OFFICIAL_FIXTURES / "G_unet_256_batch.pt")
    meta = fixture["meta"]
    official = OfficialUNet(meta["in_ch"], meta["out_ch"], 8, meta["ngf"])
    official.load_state_dict(fixture["state_dict"])  # strict: every official name and shape
    with torch.no_grad():
        assert (official.eval()(fixture["input"]) - fixture["output_eval"]).abs().max() < 1e-5


def test_the_upgrades_benchmark_times_each_upgrade_as_training_runs_it(monkeypatch):
    """bench.py --upgrades: every row of the upgrades study builds and steps (at 64 px here: the 2-scale
    D needs it), with the loss terms the upgrade adds."""
    from pathlib import Path

    benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(benchmarks))  # bench.py imports official_networks from beside it
    monkeypatch.syspath_prepend(str(benchmarks.parent / "experiments"))
    import bench
    from studies import UPGRADE_ROWS

    tiny = ("--load-size", "64", "--crop-size", "64", "--base-channels", "8", "--disc-channels", "8")
    recipe = bench.REPO / "configs" / "facades_cpu.toml"
    for row in UPGRADE_ROWS:
        losses = bench.make_recipe_iteration(recipe, (*row.flags, *tiny), torch.device("cpu"))()
        assert all(torch.isfinite(torch.tensor(value)) for value in losses.values()), row.label
        if "--feature-matching-weight" in row.flags:
            assert "G_FM" in losses
        if "--r1-weight" in row.flags:
            assert "D_R1" in losses


def test_the_gpu_checks_script_parses_and_its_commands_name_real_files_and_flags(monkeypatch):
    """A mistake there costs a GPU run: bash's syntax, the files named, every `pix2pix` command's flags."""
    import re
    import shlex
    import subprocess
    from pathlib import Path

    from pix2pix.cli import build_parser

    root = Path(__file__).resolve().parent.parent
    script = root / "benchmarks" / "gpu_checks.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    named = set(re.findall(r"(?:configs|tests|benchmarks|experiments)/[\w/.-]+\.(?:toml|py|pt)", text))
    assert {"configs/facades_paper.toml", "experiments/records/segmenters/facades.pt"} <= named
    assert not [path for path in named if not (root / path).exists()]
    commands = [
        line.split("-m pix2pix", 1)[1] for line in text.replace("\\\n", " ").splitlines() if "-m pix2pix" in line
    ]
    assert [shlex.split(command)[0] for command in commands] == ["train", "train", "eval"]
    for command in commands:
        build_parser().parse_args(shlex.split(re.sub(r"\$\{?(\w+)\}?", r"\1", command)))  # exits on a bad flag
    monkeypatch.syspath_prepend(str(root / "experiments"))
    from studies import STUDIES

    named_studies = re.findall(r"python3 experiments/studies\.py (\w+)", text)
    assert named_studies and set(named_studies) <= {study.name for study in STUDIES}


def test_the_profiles_floor_names_operators_that_our_training_iteration_runs(monkeypatch):
    """bench.py --profile's floor sums operators by name; a name torch no longer uses would silently count
    nothing. At 32 px every one runs (the deepest transposes as matmuls, the others in oneDNN)."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench

    milliseconds = bench.profile_operators(32, rounds=1)
    named = set().union(*bench.FLOOR_OPERATORS.values())
    assert named <= set(milliseconds), named - set(milliseconds)
