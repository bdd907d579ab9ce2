"""experiments/studies.py: which runs a study trains and shares, and the page it writes from their results."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from pix2pix.metrics import SSIM_SETTINGS

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
import studies  # noqa: E402  (a script folder, not a package)
from studies import GRID_CELL  # noqa: E402


def fake_record(
    record: Path, *, ssim: list[float], fcn_acc: list[float], class_iou: float, epochs: int = 2, colour: str = "red"
) -> None:
    """What studies.py keeps of a finished, evaluated run: config.json, log.csv, metrics.json, grid.jpg."""
    write_run_files(record, ssim=ssim, fcn_acc=fcn_acc, class_iou=class_iou, epochs=epochs)
    (record / "eval-val" / "metrics.json").rename(record / "metrics.json")
    (record / "eval-val").rmdir()
    strip = Image.new("RGB", (3 * GRID_CELL, len(ssim) * GRID_CELL), "white")  # input | output | target
    strip.paste(Image.new("RGB", (GRID_CELL, strip.height), colour), (GRID_CELL, 0))
    strip.save(record / "grid.jpg")


def write_run_files(run: Path, *, ssim: list[float], fcn_acc: list[float], class_iou: float, epochs: int) -> None:
    """What a finished, evaluated run leaves: config.json, log.csv and eval-val/metrics.json."""
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"optim": {"n_epochs": 1, "n_epochs_decay": epochs - 1}}))
    with (run / "log.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["epoch", "iteration", "seconds"])
        writer.writeheader()
        writer.writerows({"epoch": e, "iteration": 100 * e, "seconds": 30} for e in range(1, epochs + 1))
    images = [
        {"name": f"img{i}", "ssim": s, "fcn_acc": a, "l1_255": 20.0 - 10 * s}
        for i, (s, a) in enumerate(zip(ssim, fcn_acc))
    ]
    from pix2pix.metrics import compute_mean_ci

    summary = {key: compute_mean_ci([row[key] for row in images]) for key in ("ssim", "fcn_acc", "l1_255")}
    summary["psnr"] = compute_mean_ci([15.0 for _ in images])
    fcn = {"generated": {"pixel_acc": 0.5, "class_acc": 0.3, "class_iou": class_iou}, "real": None}
    (run / "eval-val").mkdir()
    metrics = {"summary": summary, "images": images, "n_images": len(images), "fcn_score": fcn}
    metrics["settings"] = {"SSIM": SSIM_SETTINGS}
    (run / "eval-val" / "metrics.json").write_text(json.dumps(metrics))


def test_the_same_row_in_two_studies_is_the_same_run():
    by_name = {study.name: study for study in studies.STUDIES}
    objectives, generator = by_name["objectives"], by_name["generator"]
    assert studies.run_folder(objectives, objectives.rows[0], 0) == studies.run_folder(generator, generator.rows[0], 0)
    l1 = next(row for row in generator.rows if row.flags == ("--no-gan",))
    assert studies.run_folder(generator, l1, 1) == Path("runs/studies/facades_cpu/no-gan-seed1")
    every_run = [studies.run_folder(s, row, seed) for s in studies.STUDIES for seed in s.seeds for row in s.rows]
    assert all(str(run).startswith("runs/studies/") for run in every_run)


def test_a_page_has_the_tables_the_paired_differences_and_the_papers_ordering(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = next(s for s in studies.STUDIES if s.name == "receptive_field")
    records = {(row, seed): studies.record_folder(study, row, seed) for seed in study.seeds for row in study.rows}
    default, pixel, patch16, image = study.rows
    fake_record(records[default, 0], ssim=[0.5, 0.6, 0.7], fcn_acc=[0.5, 0.6, 0.7], class_iou=0.20)
    fake_record(records[pixel, 0], ssim=[0.4, 0.5, 0.6], fcn_acc=[0.3, 0.4, 0.5], class_iou=0.10)
    fake_record(records[patch16, 0], ssim=[0.5, 0.6, 0.7], fcn_acc=[0.6, 0.7, 0.8], class_iou=0.25)
    done = {key: record for key, record in records.items() if studies.is_recorded(record)}
    assert len(done) == 3
    page = studies.format_page(study, done, grid=None)
    assert "**Not yet run:** 286x286 ImageGAN (seed 0)" in page
    assert "| 1x1 PixelGAN | 0 | `--discriminator` `pixel` |" in page
    assert "- 1x1 PixelGAN, seed 0: FCN per-pixel acc -0.200 [-0.200, -0.200]" in page  # paired: exactly -0.2
    # the paper: 70 (0.17) = 16 (0.17) > 1 (0.10); ours: 16 (0.25) > 70 (0.20) > 1 (0.10)
    assert "Ordering by class IoU: 2 of 2 pairs of rows agree with the paper." in page
    assert "The paper ties 70x70 PatchGAN (paper) and 16x16 PatchGAN." in page
    assert "| 1x1 PixelGAN | 0.39 | 0.15 | 0.10 | 0.100 |" in page and "| 286x286 ImageGAN | 0.42" in page
    assert "ms / iteration" in page and "| 300 |" in page  # 60 s for 200 iterations
    assert f"SSIM: {SSIM_SETTINGS}." in page
    assert "- above it in every seed: 16x16 PatchGAN (1 seed)\n- below it in every seed: 1x1 PixelGAN (1 seed)" in page


def test_findings_call_a_row_separated_only_when_every_seed_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = next(s for s in studies.STUDIES if s.name == "objectives")
    default, l1, gan = study.rows[:3]
    for seed in study.seeds:
        fake_record(studies.record_folder(study, default, seed), ssim=[0.5] * 3, fcn_acc=[0.5, 0.6, 0.7], class_iou=0.2)
        shift = 0.1 if seed == 0 else -0.1  # L1: above in seed 0, below in seed 1
        l1_acc = [0.5 + shift, 0.6 + shift, 0.7 + shift]
        fake_record(studies.record_folder(study, l1, seed), ssim=[0.5] * 3, fcn_acc=l1_acc, class_iou=0.2)
    fake_record(studies.record_folder(study, gan, 0), ssim=[0.5] * 3, fcn_acc=[0.6, 0.5, 0.8], class_iou=0.2)
    done = {
        (row, seed): studies.record_folder(study, row, seed)
        for seed in study.seeds
        for row in study.rows
        if studies.is_recorded(studies.record_folder(study, row, seed))
    }
    page = studies.format_page(study, done, grid=None)
    # GAN: +0.1, -0.1, +0.1 over three images, an interval around zero
    assert (
        "- not separated from it (in some seed the interval holds zero, or the seeds disagree): "
        "L1 (2 seeds), GAN (1 seed)" in page
    )
    assert "above it in every seed" not in page and "below it in every seed" not in page


def test_a_recorded_run_is_not_trained_again_and_its_page_needs_no_run_folder(tmp_path, monkeypatch):
    """A fresh machine has the records (in git) but none of the runs: the page is written all the same."""
    monkeypatch.chdir(tmp_path)
    study = next(s for s in studies.STUDIES if s.name == "receptive_field")
    colours = ("red", "lime", "blue", "yellow")
    for row, colour in zip(study.rows, colours):
        record = studies.record_folder(study, row, 0)
        fake_record(record, ssim=[0.5, 0.6], fcn_acc=[0.5, 0.6], class_iou=0.2, colour=colour)
    trained = []
    monkeypatch.setattr(studies, "train", lambda study, row, seed, run: trained.append(run))
    monkeypatch.setattr(studies, "PAGES", tmp_path / "pages")
    assert studies.work_through(study, [], train_runs=True)
    assert trained == [] and not studies.RUNS.exists()
    assert "Not yet run" not in (tmp_path / "pages" / "receptive_field.md").read_text()
    grid = Image.open(tmp_path / "pages" / "receptive_field.jpg").convert("RGB")
    assert grid.size == ((2 + len(colours)) * GRID_CELL, 2 * GRID_CELL)  # input | four rows | target
    middles = [grid.getpixel(((column + 1.5) * GRID_CELL, GRID_CELL)) for column in range(len(colours))]
    expected = [Image.new("RGB", (1, 1), colour).getpixel((0, 0)) for colour in colours]
    assert all(max(abs(a - b) for a, b in zip(got, want)) < 40 for got, want in zip(middles, expected))


def test_a_finished_run_is_recorded_with_a_strip_of_its_validation_images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run, record = tmp_path / "runs" / "one", tmp_path / "records" / "one"
    write_run_files(run, ssim=[0.5, 0.6], fcn_acc=[0.5, 0.6], class_iou=0.2, epochs=2)
    images = run / "eval-val" / "images"
    for folder, colour in ((images / "inputs", "red"), (images, "lime"), (images / "targets", "blue")):
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("img0", "img1"):
            Image.new("RGB", (64, 64), colour).save(folder / f"{name}.png")
    assert not studies.is_recorded(record)
    studies.save_record(run, run / "eval-val", record)
    assert studies.is_recorded(record) and json.loads((record / "measured.json").read_text())["date"]
    assert studies.read_metrics(record) == json.loads((run / "eval-val" / "metrics.json").read_text())
    strip = Image.open(record / "grid.jpg").convert("RGB")
    assert strip.size == (3 * GRID_CELL, 2 * GRID_CELL)
    assert strip.getpixel((GRID_CELL // 2, GRID_CELL // 2))[0] > 200  # the input, red
    assert strip.getpixel((3 * GRID_CELL // 2, GRID_CELL // 2))[1] > 200  # the output, green


def test_an_unknown_study_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["studies.py", "ablation"])
    with pytest.raises(SystemExit):
        studies.main()
    assert "unknown study ablation" in capsys.readouterr().err


def test_a_study_held_elsewhere_is_put_off_and_its_free_runs_done(tmp_path, monkeypatch):
    import fcntl
    import subprocess

    monkeypatch.chdir(tmp_path)
    study = next(s for s in studies.STUDIES if s.name == "receptive_field")
    done = []
    monkeypatch.setattr(studies, "train", lambda study, row, seed, run: done.append(run.name))
    monkeypatch.setattr(studies, "write_page", lambda study, runs: done.append("page"))
    first, *others = [studies.run_folder(study, row, 0) for row in study.rows]
    first.parent.mkdir(parents=True)
    holder = first.with_name(first.name + ".lock").open("a")  # another process's lock (another open file)
    fcntl.flock(holder, fcntl.LOCK_EX)
    assert not studies.work_through(study, [], train_runs=True)
    assert done == [run.name for run in others]  # the free runs, and no page while one run is held
    holder.close()
    crashed = f"import fcntl; f = open({str(others[0]) + '.lock'!r}, 'a'); fcntl.flock(f, fcntl.LOCK_EX)"
    subprocess.run([sys.executable, "-c", crashed], check=True)  # a process that locked, then died
    done.clear()
    assert studies.work_through(study, [], train_runs=True)
    assert done == [run.name for run in [first, *others]] + ["page"]


def test_a_failed_run_is_named_and_the_study_goes_on_with_the_others(tmp_path, monkeypatch, capsys):
    import subprocess

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(studies, "REPO", tmp_path)  # main() works in the repository: here, in tmp_path
    monkeypatch.setattr(studies, "prepare_dataset", lambda source, target: None)
    study = next(s for s in studies.STUDIES if s.name == "receptive_field")
    trained = []

    def train(study, row, seed, run):
        trained.append(run.name)
        if len(trained) == 1:  # the first run's training fails
            raise subprocess.CalledProcessError(1, [sys.executable, "-m", "pix2pix", "train", "--out", str(run)])

    monkeypatch.setattr(studies, "train", train)
    monkeypatch.setattr(sys, "argv", ["studies.py", "receptive_field"])
    with pytest.raises(SystemExit) as stopped:
        studies.main()
    assert len(trained) == len(study.rows)  # every run was tried
    first = studies.run_folder(study, study.rows[0], 0)
    assert f"{first}: `pix2pix train` exited 1" in str(stopped.value) and "rerun to retry" in str(stopped.value)
    assert f"failed: {first}" in capsys.readouterr().err


def test_validation_curves_are_drawn_from_the_runs_that_logged_them(tmp_path):
    pytest.importorskip("matplotlib")
    logged, unlogged = tmp_path / "logged", tmp_path / "unlogged"
    for run in (logged, unlogged):
        run.mkdir()
    rows = "epoch,val_G,val_ssim\n1,30.0,0.40\n2,,\n3,28.5,0.45\n"
    (logged / "log.csv").write_text(rows)
    (unlogged / "log.csv").write_text("epoch,val_ssim\n1,0.4\n")
    assert studies.read_validation_log(logged) == [
        {"epoch": 1, "val_G": 30.0, "val_ssim": 0.40},
        {"epoch": 3, "val_G": 28.5, "val_ssim": 0.45},
    ]
    assert not studies.plot_validation_curves({"old": unlogged}, tmp_path / "none.png")
    assert studies.plot_validation_curves({"new": logged, "old": unlogged}, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000
    cyclegan = tmp_path / "cyclegan"  # no val_G: its validation SSIM alone, beside the pix2pix run's
    cyclegan.mkdir()
    (cyclegan / "log.csv").write_text("epoch,val_ssim,val_cycle_A\n1,,\n2,0.10,1.6\n")
    assert studies.read_validation_log(cyclegan) == [{"epoch": 2, "val_ssim": 0.10}]
    assert studies.plot_validation_curves({"cyclegan": cyclegan}, tmp_path / "cyclegan.png")
    assert studies.plot_validation_curves({"new": logged, "cyclegan": cyclegan}, tmp_path / "both.png")


def test_no_train_writes_a_page_of_the_finished_runs_even_while_others_train(tmp_path, monkeypatch):
    import fcntl

    monkeypatch.chdir(tmp_path)
    study = next(s for s in studies.STUDIES if s.name == "receptive_field")
    pages = []
    monkeypatch.setattr(studies, "write_page", lambda study, runs: pages.append(study.name))
    busy = studies.run_folder(study, study.rows[1], 0)
    busy.parent.mkdir(parents=True)
    holder = busy.with_name(busy.name + ".lock").open("a")
    fcntl.flock(holder, fcntl.LOCK_EX)
    assert studies.work_through(study, [], train_runs=False) and pages == ["receptive_field"]
    holder.close()


def test_a_row_with_its_own_recipe_trains_and_is_evaluated_as_its_recipe_needs(tmp_path, monkeypatch):
    """CycleGAN beside pix2pix: its own recipe and run folder, evaluated on the paired data it never saw."""
    monkeypatch.chdir(tmp_path)
    study = next(s for s in studies.STUDIES if s.name == "cyclegan")
    paired, unpaired = study.rows
    assert studies.run_folder(study, paired, 0) == Path("runs/studies/facades_cpu/default-seed0")  # shared
    assert studies.run_folder(study, unpaired, 0) == Path("runs/studies/facades_cyclegan_cpu/default-seed0")
    assert (Path(studies.REPO) / "configs" / "facades_cyclegan_cpu.toml").is_file()
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(studies, "pix2pix", lambda *args: calls.append(args))
    studies.train(study, unpaired, 0, tmp_path / "run")
    assert calls[-1][:3] == ("train", "--config", "configs/facades_cyclegan_cpu.toml")
    studies.evaluate(tmp_path / "run", unpaired, fcn_score=False)
    assert " --data datasets/facades --direction BtoA " in " ".join(calls[-1]) and "--reverse" not in calls[-1]

    def fake_unpair(*args: str) -> None:
        calls.append(args)
        out = Path(args[args.index("--out") + 1])
        out.mkdir(parents=True)
        (out / "unpair.json").write_text(json.dumps({"direction": args[args.index("--direction") + 1]}))

    monkeypatch.setattr(studies, "pix2pix", fake_unpair)
    studies.prepare_unpaired(Path("datasets/facades"), study.unpaired_direction)
    made = ("data", "unpair", "datasets/facades", "--out", "datasets/facades-unpaired", "--direction", "BtoA")
    assert calls[-1] == (*made, "--quiet")
    studies.prepare_unpaired(Path("datasets/facades"), study.unpaired_direction)  # made already: kept
    assert len(calls) == 3
    (Path("datasets/facades-unpaired") / "unpair.json").write_text(json.dumps({"direction": "AtoB"}))
    with pytest.raises(SystemExit, match="was not made by `pix2pix data unpair datasets/facades --direction BtoA`"):
        studies.prepare_unpaired(Path("datasets/facades"), study.unpaired_direction)


def test_a_cyclegans_second_generator_is_evaluated_and_recorded_beside_its_first(tmp_path, monkeypatch):
    """photo -> labels from the run that the labels -> photo study trains: one run, two evaluations."""
    monkeypatch.chdir(tmp_path)
    forward = next(s for s in studies.STUDIES if s.name == "cyclegan").rows[1]
    study = next(s for s in studies.STUDIES if s.name == "cyclegan_photo2labels")
    paired, backward = study.rows
    assert studies.run_folder(study, backward, 0) == studies.run_folder(study, forward, 0)  # trained once
    assert studies.record_folder(study, backward, 0) == Path(
        "experiments/records/facades_cyclegan_cpu/default-seed0-reverse"
    )
    assert studies.run_folder(study, paired, 0) == Path("runs/studies/facades_cpu/direction_AtoB-seed0")
    calls: list[tuple[str, ...]] = []

    def fake_eval(*args: str) -> None:
        calls.append(args)
        folder = Path(args[args.index("--output") + 1]) if "--output" in args else Path("run") / "eval-val"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(json.dumps({"settings": {"SSIM": SSIM_SETTINGS}}))

    monkeypatch.setattr(studies, "pix2pix", fake_eval)
    write_run_files(Path("run"), ssim=[0.5], fcn_acc=[0.5], class_iou=0.2, epochs=1)
    (Path("run") / "eval-val" / "metrics.json").unlink()
    for row in (forward, backward):
        assert not studies.is_evaluated(Path("run"), row)
        studies.evaluate(Path("run"), row, fcn_score=False)
    assert "--reverse" not in calls[0] and " --direction BtoA " in " ".join(calls[0])
    assert calls[1][calls[1].index("--output") + 1] == "run/eval-val-reverse" and "--reverse" in calls[1]
    assert " --direction AtoB " in " ".join(calls[1])
    assert studies.is_evaluated(Path("run"), forward) and studies.is_evaluated(Path("run"), backward)


def test_records_measured_with_two_ssims_are_not_compared_on_ssim(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = next(s for s in studies.STUDIES if s.name == "receptive_field")
    default, pixel = study.rows[:2]
    records = {row: studies.record_folder(study, row, 0) for row in (default, pixel)}
    fake_record(records[default], ssim=[0.5, 0.6, 0.7], fcn_acc=[0.5, 0.6, 0.7], class_iou=0.2)
    fake_record(records[pixel], ssim=[0.4, 0.5, 0.6], fcn_acc=[0.3, 0.4, 0.5], class_iou=0.1)
    older = json.loads((records[pixel] / "metrics.json").read_text())
    del older["settings"]  # an evaluation from before metrics.json named its SSIM
    (records[pixel] / "metrics.json").write_text(json.dumps(older))
    page = studies.format_page(study, {(row, 0): record for row, record in records.items()}, grid=None)
    assert "SSIM not compared (the two were measured with different SSIMs)" in page
    assert "(mixed: rerun the older records)" in page


def test_a_study_read_by_ssim_finds_nothing_in_records_of_two_ssims(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = next(s for s in studies.STUDIES if s.name == "generator_maps")  # no FCN-score: read by SSIM
    default, l1 = study.rows[:2]
    records = {row: studies.record_folder(study, row, 0) for row in (default, l1)}
    fake_record(records[default], ssim=[0.5, 0.6, 0.7], fcn_acc=[0.5, 0.6, 0.7], class_iou=0.2)
    fake_record(records[l1], ssim=[0.6, 0.7, 0.8], fcn_acc=[0.5, 0.6, 0.7], class_iou=0.2)
    page = studies.format_page(study, {(row, 0): record for row, record in records.items()}, grid=None)
    assert "- above it in every seed: U-Net, L1 (1 seed)" in page  # measured alike: +0.1 in every image
    older = json.loads((records[l1] / "metrics.json").read_text())
    del older["settings"]  # an evaluation from before metrics.json named its SSIM
    (records[l1] / "metrics.json").write_text(json.dumps(older))
    page = studies.format_page(study, {(row, 0): record for row, record in records.items()}, grid=None)
    assert "Read by SSIM" not in page


def test_the_first_facades_evaluation_keeps_its_segmenter_and_later_ones_use_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trained = tmp_path / "cache" / "segmenter-abc.pt"
    trained.parent.mkdir()
    trained.write_bytes(b"weights")
    calls: list[tuple[str, ...]] = []

    def fake_eval(*args: str) -> None:
        calls.append(args)
        run = Path(args[args.index("--checkpoint") + 1])
        (run / "eval-val").mkdir(parents=True, exist_ok=True)
        metrics = {"fcn_score": {"segmenter": {"path": str(trained)}}}
        (run / "eval-val" / "metrics.json").write_text(json.dumps(metrics))

    monkeypatch.setattr(studies, "pix2pix", fake_eval)
    row = studies.Row("default")
    studies.evaluate(Path("runs/one"), row, fcn_score=True)
    assert "--fcn-segmenter" not in calls[0] and studies.SEGMENTER.read_bytes() == b"weights"
    studies.evaluate(Path("runs/two"), row, fcn_score=True)
    assert calls[1][calls[1].index("--fcn-segmenter") + 1] == str(studies.SEGMENTER)
    studies.evaluate(Path("runs/maps"), row, fcn_score=False)
    assert "--fcn-segmenter" not in calls[2]


def test_a_page_says_where_and_when_each_record_was_measured(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = next(s for s in studies.STUDIES if s.name == "receptive_field")
    default, pixel, patch16 = study.rows[:3]
    for row, date in ((default, "2026-11-25"), (pixel, "2026-12-01"), (patch16, "2026-12-01")):
        record = studies.record_folder(study, row, 0)
        fake_record(record, ssim=[0.5, 0.6], fcn_acc=[0.5, 0.6], class_iou=0.2)
        machine = {"date": date, "machine": "CPU X, 2 CPU cores", "torch": "2.13.0"}
        (record / "measured.json").write_text(json.dumps(machine))
    done = {(row, 0): studies.record_folder(study, row, 0) for row in (default, pixel, patch16)}
    page = studies.format_page(study, done, grid=None)
    assert (
        "Measured 2026-11-25 on CPU X, 2 CPU cores, torch 2.13.0: 70x70 PatchGAN (paper) seed 0; "
        "2026-12-01 on CPU X, 2 CPU cores, torch 2.13.0: 1x1 PixelGAN seed 0, 16x16 PatchGAN seed 0." in page
    )
    one = studies.format_page(study, {(default, 0): done[default, 0]}, grid=None)
    assert "Measured 2026-11-25 on CPU X, 2 CPU cores, torch 2.13.0 (every recorded row)." in one
    assert "- 1x1 PixelGAN, seed 0: FCN per-pixel acc +0.000 [" in page and "trained on" not in page
    clocked = {"date": "2026-12-01", "machine": "CPU X @ 2.60GHz, 2 CPU cores", "torch": "2.13.0"}
    (done[patch16, 0] / "measured.json").write_text(json.dumps(clocked))  # the same CPU model, named with its clock
    machine = {"date": "2026-12-01", "machine": "CPU Y, 2 CPU cores", "torch": "2.13.0"}
    (done[pixel, 0] / "measured.json").write_text(json.dumps(machine))
    page = studies.format_page(study, done, grid=None)  # a pair trained on two CPUs says so
    assert "(trained on CPU Y, 2 CPU cores, the default on CPU X, 2 CPU cores)" in page.split("- 1x1 PixelGAN")[1]
    assert "- 16x16 PatchGAN, seed 0:" in page and page.count("trained on CPU") == 1


def test_a_study_with_no_record_yet_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = next(s for s in studies.STUDIES if s.name == "shoes")
    studies.write_page(study, {})
    page = (tmp_path / "docs" / "studies" / "shoes.md").read_text()
    assert "Nothing measured yet." in page and "No run recorded yet." in page
    assert "Not yet run:** L1 + cGAN (paper) (seed 0); L1 (seed 0)" in page
    assert "| row |" not in page and "Paired differences" not in page and "Pictures" not in page
    studies.write_index()
    index = (tmp_path / "docs" / "studies" / "index.md").read_text()
    assert f"- [{study.title}](shoes.md) (not yet run): `python experiments/studies.py shoes`" in index


def test_every_study_and_row_names_a_recipe_of_configs_and_its_dataset():
    for study in studies.STUDIES:
        for row in study.rows:
            assert (studies.CONFIGS / f"{row.recipe_of(study)}.toml").exists(), (study.name, row.label)
    datasets = {study.name: study.dataset for study in studies.STUDIES}
    assert datasets["shoes"] == "edges2shoes_swapped" and datasets["generator_maps"] == "maps"
    assert {name for name, dataset in datasets.items() if dataset == "facades"} >= {"objectives", "upsampling"}


def test_no_train_rewrites_pages_from_the_records_without_the_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(studies, "REPO", tmp_path)  # main() works in the repository: here, in tmp_path

    def no_data(source, target):
        raise AssertionError(f"needed {source}")

    monkeypatch.setattr(studies, "prepare_dataset", no_data)
    monkeypatch.setattr(sys, "argv", ["studies.py", "shoes", "--no-train", "--data-root", str(tmp_path / "none")])
    studies.main()
    assert "No run recorded yet." in (tmp_path / "docs" / "studies" / "shoes.md").read_text()


def test_prepare_only_carves_the_split_and_trains_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(studies, "REPO", tmp_path)
    prepared = []
    monkeypatch.setattr(studies, "prepare_dataset", lambda source, target: prepared.append((source, target)))
    monkeypatch.setattr(studies, "work_through", lambda *args, **kwargs: pytest.fail("trained"))
    monkeypatch.setattr(sys, "argv", ["studies.py", "objectives", "--prepare-only", "--data-root", "/data"])
    studies.main()
    assert prepared == [(Path("/data/facades"), Path("datasets/facades"))]
    assert not (tmp_path / "docs").exists()  # no page, no index
