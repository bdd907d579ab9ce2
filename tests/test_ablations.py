"""The paper's ablation variants: the encoder-decoder generator, the unconditional discriminator (with
`--l1-weight 0` and `--no-gan`, the five objectives of its Table 1) and the receptive fields of its Table 3."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pix2pix.cli import main
from pix2pix.config import RunConfig
from pix2pix.evaluate.summary import count_parameters
from pix2pix.inference import Pix2Pix
from pix2pix.losses import Objective
from pix2pix.networks import build_discriminator_for, build_generator_for
from pix2pix.nn.discriminators import receptive_fields
from pix2pix.nn.generators import UNetGenerator
from pix2pix.nn.registry import build_generator
from pix2pix.training.loop import fit
from pix2pix.training.step import train_step
from tests.helpers import tiny_config, write_pairs


def decoder_input_channels(generator: nn.Module) -> list[int]:
    return [
        next(m for m in level.modules() if isinstance(m, nn.ConvTranspose2d)).in_channels for level in generator.decoder
    ]


@pytest.mark.parametrize(("size", "depth"), [(32, 5), (64, 6), (128, 7), (256, 8), (96, 5)])
def test_encoder_decoder_is_the_unet_without_its_skips_at_every_depth(size: int, depth: int) -> None:
    kwargs = dict(in_channels=3, out_channels=3, image_size=size, base_channels=4, norm="batch", dropout=True)
    with torch.device("meta"):
        unet = build_generator("unet", upsample="transpose", **kwargs)
        plain = build_generator("encoder_decoder", upsample="transpose", **kwargs)
    assert len(plain.encoder) == len(unet.encoder) == depth and plain.stride == unet.stride
    # every decoder level but the innermost loses the skip's half of its input channels
    assert decoder_input_channels(unet)[0] == decoder_input_channels(plain)[0]
    assert [2 * c for c in decoder_input_channels(plain)[1:]] == decoder_input_channels(unet)[1:]
    # the same layers otherwise: same names, same shapes apart from those input channels
    assert list(plain.state_dict()) == list(unet.state_dict())
    x = torch.zeros(2, 3, size, 2 * size, device="meta")
    assert plain(x).shape == x.shape


def test_encoder_decoder_parameter_count_at_the_papers_size() -> None:
    """The paper's appendix 6.1.1 encoder-decoder: U-Net (54,413,955) minus the skip halves of the seven
    transposed convs' inputs: 16 * (64*3 + 128*64 + 256*128 + 512*256 + 3 * 512*512) = 15,338,496."""
    with torch.device("meta"):
        generator = UNetGenerator(3, 3, num_downs=8, skips=False)
    assert count_parameters(generator) == 54_413_955 - 15_338_496


def test_encoder_decoder_translates_through_the_bottleneck_alone() -> None:
    """G(x) = decoder(encoder(x)) level by level, with nothing from the encoder's other levels."""
    torch.manual_seed(0)
    generator = UNetGenerator(1, 1, num_downs=5, base_channels=4, norm="none", dropout=False, skips=False).eval()
    x = torch.randn(2, 1, 32, 64)
    with torch.no_grad():
        y = nn.Sequential(*generator.encoder)(x)
        for level in generator.decoder:
            y = level(y)
        assert torch.equal(generator(x), y)


# The paper's Table 1 rows as flags: (loss.gan, loss.l1_weight, model.disc_conditional)
OBJECTIVES = {
    "L1": (["--no-gan"], (False, 100.0, True)),
    "GAN": (["--l1-weight", "0", "--no-disc-conditional"], (True, 0.0, False)),
    "cGAN": (["--l1-weight", "0"], (True, 0.0, True)),
    "L1+GAN": (["--no-disc-conditional"], (True, 100.0, False)),
    "L1+cGAN": ([], (True, 100.0, True)),
}


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_the_flags_span_the_papers_five_objectives(objective: str, tmp_path) -> None:
    flags, (gan, l1_weight, conditional) = OBJECTIVES[objective]
    import argparse

    from pix2pix.flags import add_config_flags, add_config_option, build_config

    parser = argparse.ArgumentParser()
    add_config_option(parser)
    add_config_flags(parser)
    config = build_config(parser.parse_args(flags))
    assert (config.loss.gan, config.loss.l1_weight, config.model.disc_conditional) == (gan, l1_weight, conditional)


def test_an_unconditional_discriminator_sees_the_output_only(tmp_path) -> None:
    config = tiny_config(tmp_path, tmp_path / "run").replace("model", disc_conditional=False)
    torch.manual_seed(0)
    generator, discriminator = build_generator_for(config), build_discriminator_for(config)
    assert discriminator.model[0].in_channels == 3  # the conditional one takes 3 + 3
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4)
    source, target = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    seen = []
    discriminator.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    gan_only = Objective(l1_weight=0.0, conditional=False)
    losses = train_step(generator, discriminator, opt_g, opt_d, source, target, objective=gan_only)
    assert losses["G"] == losses["G_GAN"] and all(torch.isfinite(torch.tensor(list(losses.values()))))
    assert [tuple(x.shape) for x in seen] == [(2, 3, 32, 32)] * 3  # D on fake, on real, then for G's loss
    assert torch.equal(seen[1], target)  # the real image alone, not stacked with the input
    with pytest.raises(RuntimeError):  # the input stacked on would not even fit this D
        train_step(generator, discriminator, opt_g, opt_d, source, target, objective=Objective(l1_weight=0.0))


@pytest.mark.parametrize(
    "model_changes", [{"generator": "encoder_decoder"}, {"disc_conditional": False}], ids=["encoder-decoder", "GAN"]
)
def test_variants_train_checkpoint_and_load_without_flags(model_changes, tmp_path) -> None:
    write_pairs(tmp_path / "data", "train", 4)
    config = tiny_config(tmp_path / "data", tmp_path / "run").replace("model", **model_changes)
    run_dir = fit(config, progress=False)
    model = Pix2Pix.load(run_dir, device="cpu")
    assert model.config.model == config.model  # the checkpoint describes its own networks
    assert main(["summary", "--checkpoint", str(run_dir), "--no-layers"]) == 0
    assert fit(config.replace("optim", n_epochs=2), resume="auto", progress=False) == run_dir  # resumes
    output = model.translate_tensor(torch.zeros(1, 3, 32, 32), dropout=False, norm_stats="running")
    assert output.shape == (1, 3, 32, 32)


@pytest.mark.parametrize(
    ("flags", "fields"),
    [
        (["--discriminator", "pixel"], [1, 1, 1]),
        (["--disc-layers", "1"], [4, 10, 16]),
        ([], [4, 10, 22, 46, 70]),
        (["--disc-layers", "5"], [4, 10, 22, 46, 94, 190, 286]),
    ],
)
def test_the_receptive_field_grows_layer_by_layer_to_the_papers_sizes(flags, fields, capsys) -> None:
    assert main(["summary", *flags]) == 0
    out = capsys.readouterr().out
    table = out[out.index("Discriminator") :]
    conv_lines = [line for line in table.splitlines() if " Conv2d " in line]
    assert [line.split()[-1] for line in conv_lines] == [f"{f}x{f}" for f in fields]
    assert f"receptive field: {fields[-1]}x{fields[-1]}" in out


def test_receptive_fields_by_layer_name() -> None:
    with torch.device("meta"):
        discriminator = build_discriminator_for(RunConfig())
    assert receptive_fields(discriminator) == {
        "model.0": 4,
        "model.2": 10,
        "model.5": 22,
        "model.8": 46,
        "model.11": 70,
    }
