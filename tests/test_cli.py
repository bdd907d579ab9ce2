import dataclasses
import importlib.util
import json
import time

import numpy as np
import pytest
from PIL import Image

from pix2pix import __version__
from pix2pix.cli import main
from pix2pix.config import RunConfig
from pix2pix.training import loop
from tests.helpers import TINY_FLAGS, write_pairs

TINY = [*TINY_FLAGS, "--n-epochs", "1", "--n-epochs-decay", "1"]


def test_train_then_test_end_to_end(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_dataset), "--out", str(run), *TINY]) == 0
    assert (run / "checkpoints" / "latest.pt").exists()
    assert (run / "val" / "index.html").exists()  # the report written after training

    out = tmp_path / "translated"
    assert main(["test", "--checkpoint", str(run), "--input", str(tiny_dataset), "--output", str(out), "--quiet"]) == 0
    page = (out / "index.html").read_text()
    assert page.count("<tr>") == 1 + 3 and "targets/0.png" in page
    for i in range(3):
        assert Image.open(out / f"{i}.png").size == (32, 32)


def test_the_report_prefers_a_held_out_split_and_says_when_it_has_none(tmp_path, capsys):
    data = write_pairs(tmp_path / "data", "train", 2)
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), *TINY, "--n-epochs-decay", "0"]
    assert main([*argv, "--out", str(run)]) == 0
    assert (run / "train" / "index.html").exists() and "not a held-out result" in capsys.readouterr().out
    write_pairs(data, "test", 2, seed=1)
    assert main([*argv, "--out", str(tmp_path / "run2")]) == 0
    assert (tmp_path / "run2" / "test" / "index.html").exists() and "held-out" not in capsys.readouterr().out


def test_test_returns_outputs_at_the_input_size_and_writes_samples(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    # 64 px: the U-Net's depth is 6, deep enough for one dropout block (32 px has none)
    main(
        [
            "train",
            "--data",
            str(tiny_dataset),
            "--out",
            str(run),
            "--no-report",
            *TINY,
            "--crop-size",
            "64",
            "--load-size",
            "64",
        ]
    )
    images = tmp_path / "photos"
    images.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (45, 77, 3), np.uint8)).save(images / "odd.png")
    out = tmp_path / "out"
    argv = ["test", "--checkpoint", str(run), "--input", str(images), "--output", str(out), "--quiet"]
    assert main([*argv, "--samples", "3"]) == 0
    samples = [np.asarray(Image.open(out / f"odd_sample{k}.png")) for k in range(3)]
    assert json.loads((out / "translated.json").read_text())["outputs"] == [f"odd_sample{k}.png" for k in range(3)]
    assert all(s.shape == (45, 77, 3) for s in samples)
    assert not np.array_equal(samples[0], samples[1]), "dropout samples should differ"
    # the same seed reproduces a stochastic output; dropout off + running stats is deterministic
    assert main([*argv, "--samples", "3"]) == 0
    assert np.array_equal(np.asarray(Image.open(out / "odd_sample0.png")), samples[0])
    assert main([*argv, "--dropout", "off", "--norm-stats", "running", "--seed", "5"]) == 0
    first = np.asarray(Image.open(out / "odd.png"))
    assert main([*argv, "--dropout", "off", "--norm-stats", "running", "--seed", "6"]) == 0
    assert np.array_equal(np.asarray(Image.open(out / "odd.png")), first)


def test_builtin_recipe_is_valid():
    from pix2pix.cli import build_parser
    from pix2pix.flags import build_config

    args = build_parser().parse_args(["train", "--config", "demo", "--out", "x"])
    config = build_config(args)
    assert config.data.data == "builtin" and config.train.out == "x"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def train_args(data, tmp_path):
    return ["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY]


def test_missing_dataset_folder_is_one_clear_line(tmp_path, capsys):
    assert main(train_args(tmp_path / "nowhere", tmp_path)) == 2
    assert "nowhere" in one_line_error(capsys)


def test_empty_split_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "data" / "train").mkdir(parents=True)
    assert main(train_args(tmp_path / "data", tmp_path)) == 2
    assert "train" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [("5.jpg", b"\xff\xd8\xff\xe0 not really a jpeg", "5.jpg"), ("6.png", b"hello, I am text", "6.png")],
)
def test_corrupt_or_non_image_file_is_named(tmp_path, capsys, name, content, problem):
    data = write_pairs(tmp_path / "data", "train", 2)
    (data / "train" / name).write_bytes(content)
    assert main(train_args(data, tmp_path)) == 2
    assert problem in one_line_error(capsys)


def test_odd_width_is_named(tmp_path, capsys):
    data = write_pairs(tmp_path / "data", "train", 2)
    Image.new("RGB", (65, 32)).save(data / "train" / "odd.png")
    assert main(train_args(data, tmp_path)) == 2
    assert "odd.png" in one_line_error(capsys)


def test_two_folder_name_mismatch_is_named(tmp_path, capsys):
    for side in ("A", "B"):
        (tmp_path / "data" / "train" / side).mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(tmp_path / "data" / "train" / "A" / "x.png")
    Image.new("RGB", (32, 32)).save(tmp_path / "data" / "train" / "B" / "y.png")
    assert main(train_args(tmp_path / "data", tmp_path)) == 2
    err = one_line_error(capsys)
    assert "x" in err and "y" in err


def test_unknown_option_and_bad_choice_fail_at_start(tmp_path):
    with pytest.raises(SystemExit):
        main(["train", "--direction", "sideways"])


def test_a_missing_optional_package_names_the_extra(monkeypatch, capsys):
    def needs_scikit_image(args):
        raise ModuleNotFoundError("No module named 'skimage'", name="skimage")

    monkeypatch.setattr("pix2pix.cli.run_test", needs_scikit_image)
    argv = ["test", "--checkpoint", "x", "--input", "y", "--output", "z"]
    assert main(argv) == 2
    assert "pix2pix[eval]" in one_line_error(capsys)


def test_test_never_writes_its_translations_over_the_inputs(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_dataset), "--out", str(run), *TINY, "--no-report"]) == 0
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32), np.uint8)).save(photos / "scan.png")
    originals = {path: path.read_bytes() for root in (photos, tiny_dataset) for path in root.rglob("*.*")}
    capsys.readouterr()
    for source, output in ((photos, photos), (photos / "scan.png", photos), (tiny_dataset, tiny_dataset / "test")):
        assert main(["test", "--checkpoint", str(run), "--input", str(source), "--output", str(output)]) == 2
        assert "would overwrite the input" in capsys.readouterr().err
    assert {path: path.read_bytes() for root in (photos, tiny_dataset) for path in root.rglob("*.*")} == originals


def test_test_on_a_root_without_the_split_names_the_folders_it_has(tmp_path):
    from pix2pix.data import DataError
    from pix2pix.inference.folders import list_inputs

    root = write_pairs(tmp_path / "data", "train", 1)
    write_pairs(root, "val", 1)
    with pytest.raises(DataError, match=r"no images found and no test/ split; it holds train, val: pass --split NAME"):
        list_inputs(root, split="test", paired=False)


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == f"pix2pix {__version__}\n"


def test_train_help_explains_every_config_field(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps to the terminal: one line per flag
    with pytest.raises(SystemExit) as exited:
        main(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert exited.value.code == 0
    for section in dataclasses.fields(RunConfig):
        for field in dataclasses.fields(section.default_factory):
            help_text = field.metadata.get("help", "")
            assert help_text.strip(), f"{section.name}.{field.name} has no help"
            assert f"{help_text} (default: {field.default})" in shown, field.name
    assert "Adam learning rate of both networks (default: 0.0002)" in shown


def stop_training(error):
    def fit(config, **_):
        raise error

    return fit


def test_sigterm_while_a_run_starts_exits_75_not_143(tmp_path, monkeypatch, capsys):
    """Before the loop takes the signal over (loading data, building networks), SIGTERM still means
    'stopped, run again', not the signal's default death that a scheduler reads as a crash."""
    import os
    import signal

    def fit_that_is_stopped_while_starting(config, **_):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this at once
        raise AssertionError("SIGTERM did not stop the start-up")

    monkeypatch.setattr(loop, "fit", fit_that_is_stopped_while_starting)
    handler = signal.getsignal(signal.SIGTERM)
    assert main(["train", "--out", str(tmp_path / "run"), *TINY]) == 75
    assert "stopped outside the training loop" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) == handler  # put back for whatever runs next


def test_sigterm_before_the_config_is_built_exits_75(tmp_path, monkeypatch, capsys):
    """The first second of `train` is importing torch and building the config: SIGTERM there is a start-up
    stop too. (Were it to reach the handler set here, the test fails instead of pytest being killed.)"""
    import os
    import signal

    import pix2pix.cli as cli

    def sigterm_while_building(args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this at once
        raise AssertionError("SIGTERM did not stop the start-up")

    def reached_the_default(signum, frame):
        raise AssertionError("SIGTERM reached the handler from before the command")

    previous = signal.signal(signal.SIGTERM, reached_the_default)
    try:
        monkeypatch.setattr(cli, "build_config", sigterm_while_building)
        assert main(["train", "--out", str(tmp_path / "run"), *TINY]) == 75
        assert "stopped outside the training loop" in capsys.readouterr().out
        assert signal.getsignal(signal.SIGTERM) == reached_the_default  # put back
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_an_interrupted_run_exits_75_and_a_failed_one_1(tmp_path, monkeypatch, capsys):
    """75 (EX_TEMPFAIL): checkpointed and resumable, so a scheduler does not take a pre-empted job for done."""
    argv = ["train", "--out", str(tmp_path / "run"), *TINY]
    resume = (
        f"stopped at epoch 1, iteration 3; checkpoint saved. Resume with: pix2pix train --resume auto --out {tmp_path}"
    )
    monkeypatch.setattr(loop, "fit", stop_training(loop.TrainingInterrupted(resume)))
    assert main(argv) == 75
    assert capsys.readouterr().out == resume + "\n"
    monkeypatch.setattr(loop, "fit", stop_training(loop.TrainingStopped("non-finite loss (G_L1=nan) at iteration 3")))
    assert main(argv) == 1
    assert one_line_error(capsys) == "pix2pix train: error: non-finite loss (G_L1=nan) at iteration 3"


@pytest.mark.parametrize(
    ("flags", "extra"),
    [
        (["--val-every", "1"], "eval"),
        (["--color-space", "lab", "--in-channels", "1", "--out-channels", "2"], "data"),
    ],
)
def test_a_missing_extra_is_refused_before_the_first_iteration(
    tiny_dataset, tmp_path, monkeypatch, capsys, flags, extra
):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args, **kwargs: None if name == "skimage" else real_find_spec(name, *args, **kwargs),
    )
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_dataset), "--out", str(run), *TINY, *flags]) == 2
    err = one_line_error(capsys)
    assert f"{flags[0]} " in err and f"pip install 'pix2pix[{extra}]'" in err
    assert not run.exists()  # refused before the run folder, let alone an epoch


def test_a_link_or_rename_onto_a_taken_path_is_not_blamed_on_its_source(tmp_path):
    from pix2pix.cli import describe_error

    source = tmp_path / "source.png"
    source.write_text("")
    error = FileExistsError(17, "File exists", str(source), None, str(tmp_path / "taken.png"))  # as os.symlink raises
    assert describe_error(error) == f"{source}: File exists"
    assert describe_error(FileExistsError(17, "File exists", str(source))) == (  # as mkdir raises
        f"{source} is a file, so it cannot be the folder the output goes in"
    )


def test_validation_images_too_small_for_ssim_are_refused_before_training(tmp_path, capsys):
    data = write_pairs(tmp_path / "data", "train", 2, size=10)
    write_pairs(data, "val", 1, size=10)
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(run), *TINY, "--load-size", "8", "--crop-size", "8"]
    assert main([*argv, "--generator", "resnet_6blocks", "--disc-layers", "1", "--val-every", "1"]) == 2
    err = one_line_error(capsys)
    assert f"{data / 'val' / '0.png'} is validated at 8x8, but SSIM needs at least 11x11 pixels" in err
    assert not (run / "checkpoints").exists()


@pytest.mark.parametrize("model", ["pix2pix", "cyclegan"])
def test_a_preprocess_without_crop_trains_on_images_of_several_sizes_and_shows_one_size(tmp_path, model):
    """Sample grids tile one size: the images of the first sample's size are shown, the others not."""
    from tests.test_cyclegan import TINY_FLAGS as CYCLE_FLAGS
    from tests.test_cyclegan_parts import write_unpaired

    if model == "cyclegan":
        data = write_unpaired(tmp_path / "data", a_count=3, b_count=3)
        write_unpaired(data, a_count=2, b_count=2, split="test")
        Image.new("RGB", (16, 16)).save(data / "testA" / "small.png")
        Image.new("RGB", (16, 16)).save(data / "testB" / "small.png")
        flags = [*CYCLE_FLAGS, "--model", "cyclegan"]
    else:
        data = write_pairs(tmp_path / "data", "train", 2)
        write_pairs(data, "val", 2)
        Image.new("RGB", (32, 16)).save(data / "val" / "1.png")  # a 16x16 pair between two 32x32 ones
        write_pairs(tmp_path / "more", "val", 3)
        (tmp_path / "more" / "val" / "2.png").rename(data / "val" / "2.png")
        flags = [*TINY_FLAGS, "--val-every", "1", "--generator", "resnet_6blocks", "--disc-layers", "1"]
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(run), *flags, "--preprocess", "none", "--no-report"]
    assert main([*argv, "--n-epochs", "1", "--n-epochs-decay", "0", "--num-samples", "3"]) == 0
    grid = Image.open(next((run / "samples").glob("epoch_*.png")))
    size = 40 if model == "cyclegan" else 32
    assert grid.height == 2 + 2 * (size + 2)  # a row for each of the two large samples (the 16 px one left out)


def test_every_validation_image_is_checked_for_ssim_not_only_the_first(tmp_path, capsys):
    """Without a crop, validation images keep their own sizes: the small one is found though it comes last."""
    data = write_pairs(tmp_path / "data", "train", 2)
    write_pairs(data, "val", 1)
    Image.new("RGB", (16, 8)).save(data / "val" / "1.png")  # an 8x8 A|B pair
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(run), *TINY, "--preprocess", "none", "--val-every", "1"]
    assert main([*argv, "--generator", "resnet_6blocks", "--disc-layers", "1"]) == 2
    assert f"{data / 'val' / '1.png'} is validated at 8x8" in one_line_error(capsys)
    assert not (run / "checkpoints").exists()


def test_sigterm_while_the_report_is_written_exits_75_not_143(tmp_path, monkeypatch, capsys):
    import os
    import signal

    import pix2pix.cli as cli

    def report_that_is_stopped(config, run_dir, **_):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this at once
        raise AssertionError("SIGTERM did not stop the report")

    monkeypatch.setattr(loop, "fit", lambda config, **_: tmp_path / "run")
    monkeypatch.setattr(cli, "write_report", report_that_is_stopped)
    assert main(["train", "--out", str(tmp_path / "run"), *TINY]) == 75
    assert "stopped outside the training loop" in capsys.readouterr().out
