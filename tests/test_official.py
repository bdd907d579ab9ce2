"""Official pix2pix state dicts load without flags and reproduce the official outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from pix2pix.cli import main
from pix2pix.inference import Pix2Pix
from pix2pix.nn import (
    PatchDiscriminator,
    ResNetGenerator,
    UNetGenerator,
    build_generator,
    convert_official_state_dict,
    describe_official_discriminator,
    describe_official_generator,
    load_official_discriminator,
    load_official_generator,
)
from pix2pix.nn.official import map_official_unet_names

FIXTURES = Path(__file__).parents[2] / "shared" / "fixtures" / "official"
MISSING = pytest.mark.skip(reason=f"official reference outputs not found at {FIXTURES}")
FIXTURE_FILES = sorted(FIXTURES.glob("*.pt")) or [pytest.param(None, marks=MISSING)]
OFFICIAL_D_NAMES = {"basic": "patch", "n_layers": "patch", "pixel": "pixel"}


def read_fixture(name: str) -> dict:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"official reference output not found at {path}")
    return torch.load(path)


def use_batch_statistics(network: nn.Module) -> None:
    """Batch norm on batch statistics without updating its running ones; dropout off."""
    network.eval()
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.train()
            module.track_running_stats = False


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


def to_official_unet(generator: UNetGenerator) -> dict[str, torch.Tensor]:
    """Our U-Net's state dict under the official recursive names."""
    ours_to_official = {ours: official for official, ours in map_official_unet_names(len(generator.encoder)).items()}
    state = {}
    for key, value in generator.state_dict().items():
        path, _, name = key.rpartition(".")
        state[f"{ours_to_official[path]}.{name}"] = value
    return state


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: getattr(p, "stem", "missing"))
def test_matches_official_outputs(path: Path) -> None:
    fixture = torch.load(path)
    meta, state = fixture["meta"], fixture["state_dict"]
    # the CycleGAN fixtures spell the channels as the official options do (input_nc, output_nc)
    meta = {"in_ch": meta.get("input_nc"), "out_ch": meta.get("output_nc"), **meta}
    if "netG" in meta:
        spec = describe_official_generator(state)
        assert (spec["name"], spec["norm"], spec["base_channels"]) == (meta["netG"], meta["norm"], meta["ngf"])
        assert (spec["in_channels"], spec["out_channels"], spec["dropout"]) == (
            meta["in_ch"],
            meta["out_ch"],
            meta["dropout"],
        )
        network = load_official_generator(state)
    else:
        spec = describe_official_discriminator(state)
        assert (spec["name"], spec["norm"]) == (OFFICIAL_D_NAMES[meta["netD"]], meta["norm"])
        assert (spec["in_channels"], spec["base_channels"]) == (meta["in_ch"], meta["ndf"])
        if spec["name"] == "patch":
            assert spec["n_layers"] == meta["n_layers"]
        network = load_official_discriminator(state)
    assert sum(p.numel() for p in network.parameters()) == fixture["num_params"]

    network.eval()
    with torch.no_grad():
        assert max_difference(network(fixture["input"]), fixture["output_eval"]) < 1e-5
        use_batch_statistics(network)
        assert max_difference(network(fixture["input"]), fixture["output_batchstats_nodropout"]) < 1e-5
    loaded = convert_official_state_dict(state, network)
    assert all(torch.equal(value, loaded[key]) for key, value in network.state_dict().items())  # stats untouched


def test_old_unet_checkpoint_keys_load() -> None:
    """Older official code saved running statistics for instance norm and no batch-norm counters."""
    fixture = read_fixture("G_unet_128_instance_gray_in.pt")
    state = dict(fixture["state_dict"])
    generator = UNetGenerator(1, 3, num_downs=7, base_channels=8, norm="instance")
    for official, ours in map_official_unet_names(7).items():
        if isinstance(generator.get_submodule(ours), nn.InstanceNorm2d):
            state[f"{official}.running_mean"] = torch.zeros(1)
            state[f"{official}.running_var"] = torch.ones(1)
    generator.load_state_dict(convert_official_state_dict(state, generator))
    with torch.no_grad():
        assert max_difference(generator.eval()(fixture["input"]), fixture["output_eval"]) < 1e-5

    fixture = read_fixture("G_unet_256_batch.pt")
    state = {key: value for key, value in fixture["state_dict"].items() if "num_batches_tracked" not in key}
    generator = load_official_generator(state)
    with torch.no_grad():
        assert max_difference(generator.eval()(fixture["input"]), fixture["output_eval"]) < 1e-5


def test_old_discriminator_keys_load() -> None:
    instance = PatchDiscriminator(6, base_channels=4, norm="instance")
    state = instance.state_dict() | {"model.3.running_mean": torch.zeros(8), "model.3.running_var": torch.ones(8)}
    instance.load_state_dict(convert_official_state_dict(state, instance))

    batch = PatchDiscriminator(6, base_channels=4)
    state = {key: value for key, value in batch.state_dict().items() if "num_batches_tracked" not in key}
    converted = convert_official_state_dict(state, batch)
    assert converted["model.3.num_batches_tracked"] == 0
    batch.load_state_dict(converted)


@pytest.mark.parametrize("norm", ["batch", "instance"])
@pytest.mark.parametrize("num_downs", [6, 8])
def test_official_unet_round_trip(num_downs: int, norm: str) -> None:
    generator = UNetGenerator(2, 3, num_downs=num_downs, base_channels=4, norm=norm).eval()
    official = to_official_unet(generator)
    spec = describe_official_generator(official)
    assert spec["norm"] == norm
    assert (spec["in_channels"], spec["out_channels"], spec["base_channels"]) == (2, 3, 4)
    loaded = load_official_generator(official).eval()
    assert loaded.stride == 2**num_downs
    x = torch.randn(1, 2, 2**num_downs, 2**num_downs)
    with torch.no_grad():
        assert torch.equal(loaded(x), generator(x))


@pytest.mark.parametrize("dropout", [True, False])
def test_resnet_dropout_is_read_from_key_indices(dropout: bool) -> None:
    generator = ResNetGenerator(3, 1, n_blocks=6, base_channels=4, norm="instance", dropout=dropout)
    spec = describe_official_generator(generator.state_dict())
    assert spec == {
        "name": "resnet_6blocks",
        "in_channels": 3,
        "out_channels": 1,
        "image_size": 256,
        "base_channels": 4,
        "norm": "instance",
        "dropout": dropout,
        "upsample": "transpose",
    }


def test_hints_are_checked() -> None:
    official = to_official_unet(UNetGenerator(3, 3, num_downs=8, base_channels=2))
    spec = describe_official_generator(official, netg="unet", norm="batch")
    assert spec["name"] == "unet" and build_generator(**spec).stride == 256
    with pytest.raises(ValueError, match="'resnet_9blocks'.*'unet', 'unet_256'"):
        describe_official_generator(official, netg="resnet_9blocks")
    with pytest.raises(ValueError, match="norm 'instance'.*'batch'"):
        describe_official_generator(official, norm="instance")


def test_a_state_dict_of_no_generator_is_refused_naming_the_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "dict.pt"
    torch.save({"weights": torch.zeros(1)}, path)
    out = tmp_path / "out"
    assert main(["test", "--checkpoint", str(path), "--input", str(tmp_path), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pix2pix test: error: {path}: not an official U-Net or ResNet") and err.count("\n") == 1


def test_unfitting_state_dicts_are_rejected() -> None:
    discriminator = PatchDiscriminator(6, base_channels=4)
    state = discriminator.state_dict()
    with pytest.raises(ValueError, match=r"unexpected keys \['model.99.weight'\]"):
        convert_official_state_dict(state | {"model.99.weight": torch.zeros(1)}, discriminator)
    del state["model.0.bias"]
    with pytest.raises(ValueError, match=r"missing keys \['model.0.bias'\]"):
        convert_official_state_dict(state, discriminator)
    with pytest.raises(ValueError, match="not an official U-Net or ResNet"):
        describe_official_generator(state)
    # official norm="none": neither norm parameters nor conv biases
    biasless = dict(PatchDiscriminator(6, norm="none").state_dict())
    for key in ("model.2.bias", "model.5.bias", "model.8.bias"):
        del biasless[key]
    with pytest.raises(ValueError, match="norm='none'"):
        describe_official_discriminator(biasless)


def test_an_official_checkpoint_records_no_dataset_so_eval_asks_for_one(tmp_path, capsys) -> None:
    generator = UNetGenerator(3, 3, num_downs=5, base_channels=4, norm="batch")
    torch.save(to_official_unet(generator), tmp_path / "latest_net_G.pth")
    model = Pix2Pix.load(tmp_path / "latest_net_G.pth", device="cpu")
    assert model.config.data.data == ""  # not the built-in facades: nothing is known about it
    assert main(["eval", "--checkpoint", str(tmp_path / "latest_net_G.pth"), "--fcn-score", "off", "--quiet"]) == 2
    assert "records no dataset (an official checkpoint): pass --data ROOT" in capsys.readouterr().err
