"""Every config value is checked where the config is built (flags, recipes, saved configs alike), and every
refusal, like any OS error a command meets, is one line naming the field, the value and what is allowed."""

from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path

import pytest

from pix2pix.cli import build_parser, main, run_command
from pix2pix.config import RunConfig
from pix2pix.devices import resolve_device
from pix2pix.flags import build_config, recipe_names
from tests.helpers import TINY_FLAGS, write_pairs

# (section, field, bad value, what the message must say is allowed)
BAD_VALUES = [
    ("data", "flip", "no", "must be true or false"),
    ("data", "flip", 1, "must be true or false"),
    ("data", "load_size", 0, "must be an integer from 1 to 16384"),
    ("data", "load_size", 100_000_000_000, "must be an integer from 1 to 16384"),
    ("data", "crop_size", 32.0, "must be an integer from 1 to 16384"),
    ("data", "num_workers", -2, "must be an integer from -1 to 256"),
    ("data", "direction", "AB", 'must be one of "AtoB", "BtoA"'),
    ("data", "data", ["a"], "must be a string"),
    ("model", "in_channels", 2, "must be an integer 1 or 3"),
    ("model", "base_channels", 0, "must be an integer from 1 to 4096"),
    ("model", "base_channels", 100_000_000_000, "must be an integer from 1 to 4096"),
    ("model", "disc_channels", -8, "must be an integer from 1 to 4096"),
    ("model", "disc_layers", 0, "must be an integer from 1 to 16"),
    ("model", "generator", "unet_512", "must be one of"),
    ("loss", "l1_weight", -1, "must be a finite number >= 0"),
    ("loss", "gan", "yes", "must be true or false"),
    ("optim", "batch_size", 0, "must be an integer from 1 to 4096"),
    ("optim", "batch_size", 1.5, "must be an integer from 1 to 4096"),
    ("optim", "batch_size", "2", "must be an integer from 1 to 4096"),
    ("optim", "batch_size", True, "must be an integer from 1 to 4096"),
    ("optim", "lr", 0, "must be a finite number > 0"),
    ("optim", "lr", "0.001", "must be a finite number > 0"),
    ("optim", "lr", float("inf"), "must be a finite number > 0"),
    ("optim", "beta1", 1, "must be a finite number in [0, 1)"),
    ("optim", "beta2", -0.5, "must be a finite number in [0, 1)"),
    ("optim", "n_epochs", -1, "must be an integer >= 0"),
    ("optim", "n_epochs_decay", -1, "must be an integer >= 0"),
    ("train", "out", "", "must be a string naming a folder"),
    ("train", "out", 5, "must be a string naming a folder"),
    ("train", "seed", -1, "must be an integer from 0 to 2**64 - 1"),
    ("train", "device", "gpu", "must be a string naming a device"),
    ("train", "sample_every", 0, "must be an integer >= 1"),
    ("train", "save_every", 0, "must be an integer >= 1"),
    ("train", "save_every_iters", -1, "must be an integer >= 0"),
    ("train", "keep_checkpoints", -1, "must be an integer >= 0"),
    ("train", "nan_retries", -1, "must be an integer >= 0"),
    ("train", "num_samples", 0, "must be an integer from 1 to 64"),
    ("train", "val_every", -1, "must be an integer >= 0"),
    ("train", "best_metric", "lpips", 'must be one of "l1", "psnr", "ssim"'),
]

# fields that are fine one by one but contradict each other: (sections, the start of the message)
BAD_COMBINATIONS = [
    ({"optim": {"n_epochs": 0, "n_epochs_decay": 0}}, "optim.n_epochs = 0, optim.n_epochs_decay = 0: one of them"),
    ({"data": {"load_size": 20, "crop_size": 32}}, "data.crop_size = 32: must be <= data.load_size (20)"),
    (
        {"data": {"load_size": 36, "crop_size": 33}},
        'data.crop_size = 33: must be a multiple of 32 for generator "unet"',
    ),
    ({"data": {"crop_size": 64}, "model": {"generator": "unet_128"}}, "data.crop_size = 64: must be a multiple of 128"),
    ({"data": {"load_size": 32, "crop_size": 32}, "model": {"disc_layers": 4}}, "model.disc_layers = 4: must be <= 3"),
    ({"data": {"color_space": "lab"}}, 'data.color_space = "lab": needs in_channels 1 and out_channels 2'),
    ({"model": {"out_channels": 2}}, 'model.out_channels = 2: must be 1 or 3 unless data.color_space is "lab"'),
    ({"loss": {"gan": False, "l1_weight": 0}}, "loss.l1_weight = 0.0: must be > 0 when loss.gan is false"),
]


def refusal(build) -> str:
    """The one-line message of the ValueError that `build()` raises."""
    with pytest.raises(ValueError) as error:
        build()
    assert "\n" not in str(error.value)
    return str(error.value)


@pytest.mark.parametrize(("section", "name", "value", "allowed"), BAD_VALUES)
def test_from_dict_refuses_a_bad_value_naming_field_value_and_what_is_allowed(section, name, value, allowed):
    message = refusal(lambda: RunConfig.from_dict({section: {name: value}}))
    assert message.startswith(f"{section}.{name} = {json.dumps(value)}: {allowed}")


@pytest.mark.parametrize("suffix", [".toml", ".json"])
@pytest.mark.parametrize(("section", "name", "value", "allowed"), [c for c in BAD_VALUES if c[2] != float("inf")])
def test_recipe_files_are_held_to_the_same_rules(tmp_path, suffix, section, name, value, allowed):
    path = tmp_path / f"bad{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({section: {name: value}}))
    else:
        path.write_text(f"[{section}]\n{name} = {json.dumps(value)}\n")  # these JSON values are TOML too
    assert refusal(lambda: RunConfig.load(path)).startswith(f"{section}.{name} = {json.dumps(value)}: {allowed}")


@pytest.mark.parametrize(("sections", "start"), BAD_COMBINATIONS)
def test_fields_that_contradict_each_other_are_refused(sections, start):
    assert refusal(lambda: RunConfig.from_dict(sections)).startswith(start)


def test_an_int_stands_for_a_float_and_is_stored_as_one():
    config = RunConfig.from_dict({"optim": {"lr": 1, "beta1": 0}, "loss": {"l1_weight": 0}})
    assert config.optim.lr == 1.0 and isinstance(config.optim.lr, float) and isinstance(config.loss.l1_weight, float)


@pytest.mark.parametrize(
    "sections",
    [
        {"optim": {"n_epochs": 0, "n_epochs_decay": 1}},
        {"data": {"load_size": 20, "crop_size": 32, "preprocess": "crop"}},  # crop does not resize first
        {"data": {"crop_size": 48, "load_size": 48}, "model": {"generator": "resnet_6blocks", "disc_layers": 4}},
        {"data": {"color_space": "lab"}, "model": {"in_channels": 1, "out_channels": 2}},
        {"loss": {"gan": False, "l1_weight": 100}},
        {"loss": {"l1_weight": 0}},  # the GAN-only objective
        {"data": {"num_workers": -1}, "train": {"device": "cuda:1", "seed": 2**64 - 1}},
    ],
)
def test_edge_values_that_work_are_accepted(sections):
    RunConfig.from_dict(sections)


@pytest.mark.parametrize(
    "path",
    [
        *sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.toml")),
        *(Path(str(resources.files("pix2pix.recipes") / f"{name}.toml")) for name in recipe_names()),
    ],
    ids=lambda path: path.stem,
)
def test_every_shipped_recipe_is_valid(path):
    RunConfig.load(path)


def test_a_saved_config_reloads_and_a_damaged_one_is_refused(tmp_path):
    config = RunConfig().replace("optim", lr=1e-3)
    config.save_json(tmp_path / "config.json")
    assert RunConfig.load(tmp_path / "config.json") == config
    sections = config.to_dict()
    sections["train"]["save_every"] = 0
    (tmp_path / "config.json").write_text(json.dumps(sections))
    with pytest.raises(ValueError, match=r"^train\.save_every = 0: must be an integer >= 1$"):
        RunConfig.load(tmp_path / "config.json")


def test_a_file_that_is_not_a_table_of_sections_is_refused(tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "scalar.toml").write_text("optim = 3\n")
    for name in ("list.json", "scalar.toml"):
        with pytest.raises(ValueError, match="not a valid config file"):
            RunConfig.load(tmp_path / name)


def parse_train(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["train", *flags])


def test_flags_over_a_recipe_or_a_resumed_config_are_checked_once_merged(tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text("[optim]\nbatch_size = 0\n")
    assert build_config(parse_train("--config", str(recipe), "--batch-size", "2")).optim.batch_size == 2
    with pytest.raises(ValueError, match=r"^optim\.batch_size = 0: "):
        build_config(parse_train("--config", str(recipe)))
    with pytest.raises(ValueError, match=r"^optim\.lr = 0\.0: must be a finite number > 0$"):
        build_config(parse_train("--lr", "0"), base=RunConfig())  # as `train --resume RUN --lr 0`
    with pytest.raises(ValueError, match=r"^optim\.lr = NaN: "):
        build_config(parse_train("--lr", "nan"))


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return code, err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--batch-size", "0"], "optim.batch_size = 0: must be an integer from 1 to 4096"),
        (["--sample-every", "0"], "train.sample_every = 0: must be an integer >= 1"),
        (["--num-samples", "0"], "train.num_samples = 0: must be an integer from 1 to 64"),
        (["--n-epochs", "0", "--n-epochs-decay", "0"], "optim.n_epochs = 0, optim.n_epochs_decay = 0"),
        (["--n-epochs-decay", "-1"], "optim.n_epochs_decay = -1: must be an integer >= 0"),
        (["--base-channels", "0"], "model.base_channels = 0: must be an integer from 1 to 4096"),
        (["--device", "foo"], 'train.device = "foo": must be a string naming a device'),
    ],
)
def test_train_refuses_bad_flags_in_one_line_before_reading_any_data(tmp_path, capsys, flags, message):
    missing = tmp_path / "no-such-dataset"  # the config is refused first, so this is never looked for
    code, err = run_cli(["train", *TINY_FLAGS, "--data", str(missing), "--out", str(tmp_path / "run"), *flags], capsys)
    assert code == 2 and err.startswith(f"pix2pix train: error: {message}")
    assert not (tmp_path / "run").exists()


def test_train_into_an_existing_file_is_one_line(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("not a folder")
    flags = [*TINY_FLAGS, "--n-epochs", "1", "--n-epochs-decay", "0", "--no-report"]
    code, err = run_cli(["train", "--data", str(tiny_dataset), "--out", str(out), *flags], capsys)
    assert code == 2 and err == f"pix2pix train: error: --out {out} is a file, not a folder"


@pytest.mark.parametrize(
    ("export_format", "out", "message"),
    [
        ("onnx", "run/checkpoints/latest.pt", "an ONNX export needs a name ending in .onnx"),
        ("torchscript", "model.onnx", "a TorchScript export needs a name not ending in .onnx"),
        ("onnx", "run/checkpoints/latest.onnx", "would replace a checkpoint"),
        ("torchscript", "run/checkpoints/latest.pt", "would replace a checkpoint"),
        ("torchscript", "official.pth", "would replace a checkpoint"),
    ],
)
def test_export_never_replaces_a_checkpoint_or_misnames_its_format(tmp_path, capsys, export_format, out, message):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "config.json").write_text("{}")
    latest, official = tmp_path / "run" / "checkpoints" / "latest.pt", tmp_path / "official.pth"
    for path in (latest, official):
        path.write_bytes(b"a checkpoint")
    source = official if out == "official.pth" else tmp_path / "run"
    argv = ["export", "--checkpoint", str(source), "--format", export_format, "--out", str(tmp_path / out)]
    code, err = run_cli(argv, capsys)
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert latest.read_bytes() == official.read_bytes() == b"a checkpoint"


def test_export_into_a_checkpoints_folder_of_ones_own_is_not_taken_for_a_run(tmp_path, capsys):
    (tmp_path / "checkpoints").mkdir()  # no config.json beside it: not a run's folder
    argv = ["export", "--checkpoint", str(tmp_path / "run"), "--format", "onnx", "--out"]
    code, err = run_cli([*argv, str(tmp_path / "checkpoints" / "model.onnx")], capsys)
    assert code == 2 and "checkpoint not found" in err  # it went on to load the (missing) run


def test_a_val_split_named_but_missing_is_refused_while_the_default_falls_back(tmp_path, capsys):
    data = write_pairs(tmp_path / "data", "train", 2)
    write_pairs(data, "test", 1)
    flags = [*TINY_FLAGS, "--n-epochs", "1", "--n-epochs-decay", "0", "--no-report", "--data", str(data)]
    code, err = run_cli(["train", *flags, "--out", str(tmp_path / "typo"), "--val-split", "tset"], capsys)
    assert code == 2 and err == f"pix2pix train: error: --val-split tset: {data} has no tset (it has test, train)"
    assert not (tmp_path / "typo").exists()
    assert run_cli(["train", *flags, "--out", str(tmp_path / "fallback")], capsys)[0] == 0  # no val/: train


def test_export_into_a_folder_is_one_line(tmp_path, capsys):
    argv = ["export", "--checkpoint", str(tmp_path / "run"), "--format", "torchscript", "--out", str(tmp_path)]
    code, err = run_cli(argv, capsys)
    assert code == 2 and err == f"pix2pix export: error: --out {tmp_path} is a folder; name the file to write in it"


@pytest.mark.parametrize(
    ("error", "line", "code"),
    [  # 1: it happened to the run; 2: the path the command line names is missing, taken or the wrong kind
        (PermissionError(13, "Permission denied", "/runs/x"), "/runs/x: Permission denied", 1),
        (OSError(28, "No space left on device"), "No space left on device", 1),
        (OSError(30, "Read-only file system", "/mnt/ro/run"), "/mnt/ro/run: Read-only file system", 1),
        (FileNotFoundError("model.pt: checkpoint not found"), "model.pt: checkpoint not found", 2),
        (FileExistsError(17, "File exists", "/runs/x"), "/runs/x: File exists", 2),
        (NotADirectoryError(20, "Not a directory", "/runs/x"), "/runs/x: Not a directory", 2),
    ],
)
def test_any_os_error_of_a_command_is_one_line_unless_debugging(monkeypatch, capsys, error, line, code):
    def fail(_: argparse.Namespace) -> None:
        raise error

    args = argparse.Namespace(command="test", run=fail)
    assert run_command(args) == code
    assert capsys.readouterr().err == f"pix2pix test: error: {line}\n"
    monkeypatch.setenv("PIX2PIX_DEBUG", "1")
    with pytest.raises(type(error)):
        run_command(args)


def test_an_unknown_device_name_is_a_value_error():
    with pytest.raises(ValueError, match="unknown device 'foo'; allowed: auto, cpu, mps, cuda, cuda:N"):
        resolve_device("foo")


@pytest.mark.parametrize(
    ("section", "changes", "message"),
    [
        ("train", {"keep_checkpoints": -1}, "train.keep_checkpoints = -1: must be an integer >= 0"),
        ("train", {"save_every": 0}, "train.save_every = 0"),
        ("optim", {"ema_decay": 0.999}, "optim.ema_decay work with pix2pix only"),
    ],
)
def test_a_config_changed_in_python_is_checked_before_it_trains(tiny_dataset, tmp_path, section, changes, message):
    from pix2pix.training.cycle_loop import fit_cyclegan
    from pix2pix.training.loop import fit
    from tests.helpers import tiny_config

    config = tiny_config(tiny_dataset, tmp_path / "run")
    train = fit
    if "ema_decay" in changes:  # refused for CycleGAN, which would otherwise train on and ignore it
        config, train = config.replace("model", model="cyclegan", disc_conditional=False), fit_cyclegan
    with pytest.raises(ValueError, match=message):
        train(config.replace(section, **changes), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_dict_that_is_no_config_and_an_upper_case_toml_suffix(tmp_path):
    for sections in (None, {"data": 5}, [{"data": {}}]):
        with pytest.raises(ValueError, match="a config is a dict of sections"):
            RunConfig.from_dict(sections)  # type: ignore[arg-type]
    recipe = tmp_path / "recipe.TOML"
    recipe.write_text("[optim]\nlr = 1e-4\n")
    assert RunConfig.load(recipe).optim.lr == 1e-4
