"""CycleGAN's building blocks: the unpaired dataset, the image pool, the objective and one training step."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from pix2pix.cycle_losses import cycle_loss, identity_loss
from pix2pix.data.images import DataError
from pix2pix.data.unpaired import UnpairedDataset
from pix2pix.nn.registry import build_discriminator, build_generator
from pix2pix.training.cycle_step import CYCLE_LOSS_NAMES, cycle_train_step
from pix2pix.training.image_pool import ImagePool

SIZE = 32


def write_domain(folder: Path, prefix: str, count: int, *, size: int = 40, seed: int = 0) -> list[str]:
    """`count` random-noise RGB PNGs named prefix0.png, prefix1.png, ...; returns their stems."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{prefix}{i}.png")
    return [f"{prefix}{i}" for i in range(count)]


def write_unpaired(root: Path, a_count: int = 3, b_count: int = 8, split: str = "train") -> Path:
    write_domain(root / f"{split}A", "a", a_count, seed=1)
    write_domain(root / f"{split}B", "b", b_count, seed=2)
    return root


def b_names(dataset: UnpairedDataset, epoch: int) -> list[str]:
    dataset.set_epoch(epoch)
    return [str(dataset[i]["B_name"]) for i in range(len(dataset))]


# --- unpaired dataset


def test_unpaired_items_take_a_in_order_and_length_of_larger_domain(tmp_path: Path) -> None:
    dataset = UnpairedDataset(write_unpaired(tmp_path), "train", load_size=40, crop_size=SIZE)
    assert len(dataset) == 8
    items = [dataset[i] for i in range(len(dataset))]
    assert [item["A_name"] for item in items] == ["a0", "a1", "a2"] * 2 + ["a0", "a1"]
    assert {item["B_name"] for item in items} <= {f"b{i}" for i in range(8)}
    for item in items:
        assert isinstance(item["A"], torch.Tensor) and isinstance(item["B"], torch.Tensor)
        assert item["A"].shape == item["B"].shape == (3, SIZE, SIZE)
        assert -1.0 <= item["A"].min() and item["A"].max() <= 1.0


def test_b_draws_are_random_but_a_pure_function_of_seed_epoch_index(tmp_path: Path) -> None:
    root = write_unpaired(tmp_path)
    options = {"load_size": 40, "crop_size": SIZE, "seed": 3}
    first, again = UnpairedDataset(root, "train", **options), UnpairedDataset(root, "train", **options)
    assert b_names(first, 4) == b_names(again, 4)  # a resumed run (fresh dataset) sees the same items
    assert b_names(first, 4) != [f"b{i}" for i in range(8)]  # not simply in order
    assert b_names(first, 4) != b_names(first, 5)
    assert b_names(first, 4) != b_names(UnpairedDataset(root, "train", **{**options, "seed": 4}), 4)
    first.set_epoch(4)
    again.set_epoch(4)
    assert torch.equal(first[2]["A"], again[2]["A"]) and torch.equal(first[2]["B"], again[2]["B"])


def test_a_and_b_are_jittered_independently(tmp_path: Path) -> None:
    # the same image in both folders: a shared jitter would give identical A and B crops every time
    write_domain(tmp_path / "trainA", "x", 1)
    write_domain(tmp_path / "trainB", "x", 1)
    dataset = UnpairedDataset(tmp_path, "train", load_size=40, crop_size=SIZE)
    differing = 0
    for epoch in range(8):
        dataset.set_epoch(epoch)
        item = dataset[0]
        differing += not torch.equal(item["A"], item["B"])
    assert differing >= 6


def test_test_split_takes_b_in_order_without_jitter(tmp_path: Path) -> None:
    root = write_unpaired(tmp_path, a_count=2, b_count=3, split="test")
    dataset = UnpairedDataset(root, "test", load_size=40, crop_size=SIZE, train=False)
    items = [dataset[i] for i in range(len(dataset))]
    assert [item["B_name"] for item in items] == ["b0", "b1", "b2"]
    dataset.set_epoch(7)
    assert torch.equal(dataset[1]["B"], items[1]["B"])
    assert items[0]["A"].shape == (3, SIZE, SIZE)


def test_test_time_images_are_each_domains_items_once(tmp_path: Path) -> None:
    root = write_unpaired(tmp_path, a_count=2, b_count=5, split="val")
    dataset = UnpairedDataset(root, "val", in_channels=1, load_size=40, crop_size=SIZE, train=False)
    items = [dataset[i] for i in range(len(dataset))]
    for domain, count in (("A", 2), ("B", 5)):
        images = dataset.test_time_images(domain)
        assert len(images) == count
        assert all(torch.equal(image, item[domain]) for image, item in zip(images, items))
    assert dataset.test_time_images("A")[0].shape == (1, SIZE, SIZE)
    with pytest.raises(ValueError, match="domain must be 'A' or 'B'"):
        dataset.test_time_images("a")


def test_btoa_swaps_the_domains_and_channels_follow_them(tmp_path: Path) -> None:
    root = write_unpaired(tmp_path)
    dataset = UnpairedDataset(root, "train", direction="BtoA", in_channels=1, load_size=40, crop_size=SIZE)
    item = dataset[0]
    assert item["A_name"] == "b0" and str(item["B_name"]).startswith("a")
    assert item["A"].shape == (1, SIZE, SIZE) and item["B"].shape == (3, SIZE, SIZE)


@pytest.mark.parametrize("broken", ["missing", "empty"])
def test_missing_or_empty_domain_folder_is_a_one_line_data_error(tmp_path: Path, broken: str) -> None:
    write_domain(tmp_path / "trainA", "a", 2)
    if broken == "empty":
        (tmp_path / "trainB").mkdir()
        (tmp_path / "trainB" / "README.txt").write_text("not an image")
    with pytest.raises(DataError) as err:
        UnpairedDataset(tmp_path, "train")
    assert "trainB" in str(err.value) and "\n" not in str(err.value)


# --- image pool


def distinct_images(start: int, count: int) -> torch.Tensor:
    """(count, 1, 2, 2) images whose every pixel is its own number, so each can be told apart."""
    return torch.arange(start, start + count, dtype=torch.float32).view(count, 1, 1, 1).expand(count, 1, 2, 2)


def ids(images: torch.Tensor) -> list[int]:
    return [int(image[0, 0, 0]) for image in images]


def test_pool_returns_its_inputs_while_filling() -> None:
    pool = ImagePool(size=4)
    fakes = distinct_images(0, 3).requires_grad_(True)
    returned = pool.query(fakes)
    assert torch.equal(returned, fakes) and not returned.requires_grad
    assert ids(pool.query(distinct_images(3, 1))) == [3]
    assert len(pool.images) == 4


def test_full_pool_swaps_about_half_for_stored_images() -> None:
    torch.manual_seed(0)
    pool = ImagePool(size=10)
    pool.query(distinct_images(0, 10))
    returned = ids(torch.cat([pool.query(distinct_images(i, 1)) for i in range(100, 500)]))
    swapped = [(new, old) for new, old in enumerate(returned, start=100) if new != old]
    assert 0.4 < len(swapped) / 400 < 0.6
    # a swapped-out image was stored earlier, and leaves the pool: each comes back at most once
    assert all(old < new for new, old in swapped)
    assert len({old for _, old in swapped}) == len(swapped)


def test_pool_state_dict_round_trip_continues_identically() -> None:
    torch.manual_seed(1)
    pool = ImagePool(size=5)
    pool.query(distinct_images(0, 5))
    saved, rng = pool.state_dict(), torch.get_rng_state()
    future = [ids(pool.query(distinct_images(i, 2))) for i in range(10, 30, 2)]

    restored = ImagePool(size=5)
    restored.load_state_dict(saved)
    torch.set_rng_state(rng)
    assert [ids(restored.query(distinct_images(i, 2))) for i in range(10, 30, 2)] == future
    assert any(old < 5 for batch in future for old in batch)  # the saved images did come back


def test_empty_pool_passes_images_through_without_drawing_randomness() -> None:
    rng = torch.get_rng_state()
    assert ids(ImagePool(size=0).query(distinct_images(0, 3))) == [0, 1, 2]
    assert torch.equal(torch.get_rng_state(), rng)


def test_a_kept_image_holds_its_own_storage_not_its_batch() -> None:
    """A pool of 4 fed batches of 8 saves 4 images' worth, not 4 batches' (a view keeps its whole batch)."""
    torch.manual_seed(0)
    pool = ImagePool(size=4)
    for start in range(0, 40, 8):
        pool.query(distinct_images(start, 8))
    for image in pool.state_dict()["images"]:
        assert image.untyped_storage().nbytes() == image.numel() * image.element_size()


def test_pool_refuses_a_state_larger_than_itself() -> None:
    with pytest.raises(ValueError, match="3 images"):
        ImagePool(size=2).load_state_dict({"images": list(distinct_images(0, 3))})


# --- objective


def test_cycle_and_identity_losses_on_hand_made_tensors() -> None:
    real = torch.tensor([[[[1.0, -1.0], [0.5, 0.0]]]])
    mapped = torch.zeros_like(real)  # mean |difference| = (1 + 1 + 0.5 + 0) / 4 = 0.625
    assert cycle_loss(mapped, real).item() == pytest.approx(6.25)
    assert cycle_loss(mapped, real, weight=2.0).item() == pytest.approx(1.25)
    assert identity_loss(mapped, real).item() == pytest.approx(0.5 * 10 * 0.625)
    assert identity_loss(mapped, real, cycle_weight=4.0, identity_weight=0.1).item() == pytest.approx(0.25)


# --- training step


class Networks:
    """Tiny G_A, G_B (ResNet, 4 channels wide), D_A, D_B (PatchGAN) and their two SGD/Adam optimisers."""

    def __init__(self, lr: float = 2e-4, sgd: bool = False) -> None:
        torch.manual_seed(0)
        generator = {"image_size": SIZE, "base_channels": 4, "norm": "instance", "dropout": False}
        self.g_a = build_generator("resnet_6blocks", in_channels=3, out_channels=3, upsample="transpose", **generator)
        self.g_b = build_generator("resnet_9blocks", in_channels=3, out_channels=3, upsample="transpose", **generator)
        self.d_a, self.d_b = (
            build_discriminator("patch", in_channels=3, base_channels=4, n_layers=3, norm="instance") for _ in range(2)
        )
        optimizer = torch.optim.SGD if sgd else torch.optim.Adam
        self.opt_g = optimizer([*self.g_a.parameters(), *self.g_b.parameters()], lr=lr)
        self.opt_d = optimizer([*self.d_a.parameters(), *self.d_b.parameters()], lr=lr)
        self.real_a, self.real_b = torch.rand(2, 3, SIZE, SIZE) * 2 - 1, torch.rand(2, 3, SIZE, SIZE) * 2 - 1

    def step(self, **options: Any) -> dict[str, float]:
        networks = (self.g_a, self.g_b, self.d_a, self.d_b, self.opt_g, self.opt_d)
        return cycle_train_step(*networks, self.real_a, self.real_b, ImagePool(), ImagePool(), **options)

    def all(self) -> dict[str, nn.Module]:
        return {"G_A": self.g_a, "G_B": self.g_b, "D_A": self.d_a, "D_B": self.d_b}


def test_step_updates_all_four_networks_and_returns_finite_official_losses() -> None:
    nets = Networks()
    before = {name: copy.deepcopy(net.state_dict()) for name, net in nets.all().items()}
    losses = nets.step()
    assert list(losses) == list(CYCLE_LOSS_NAMES)
    assert set(losses) == {"D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"}
    assert all(math.isfinite(value) for value in losses.values())
    assert losses["idt_A"] > 0 and losses["idt_B"] > 0
    for name, net in nets.all().items():
        changed = [key for key, value in net.state_dict().items() if not torch.equal(value, before[name][key])]
        assert changed, f"{name} was not updated"


def test_step_losses_are_the_official_terms() -> None:
    # lr 0: nothing moves, so the terms can be recomputed from the networks after the step
    nets = Networks(lr=0.0, sgd=True)
    losses = nets.step(lambda_a=10.0, lambda_b=4.0, lambda_identity=0.5)
    real_a, real_b = nets.real_a, nets.real_b
    with torch.no_grad():
        fake_b, fake_a = nets.g_a(real_a), nets.g_b(real_b)
        l1 = nn.functional.l1_loss
        expected = {
            "G_A": (nets.d_a(fake_b) - 1).pow(2).mean(),  # D_A judges domain B
            "G_B": (nets.d_b(fake_a) - 1).pow(2).mean(),
            "cycle_A": 10.0 * l1(nets.g_b(fake_b), real_a),
            "cycle_B": 4.0 * l1(nets.g_a(fake_a), real_b),
            "idt_A": 0.5 * 4.0 * l1(nets.g_a(real_b), real_b),  # G_A on B, scaled by B's cycle weight
            "idt_B": 0.5 * 10.0 * l1(nets.g_b(real_a), real_a),
            # fresh pools hand back the new fakes
            "D_A": 0.5 * ((nets.d_a(real_b) - 1).pow(2).mean() + nets.d_a(fake_b).pow(2).mean()),
            "D_B": 0.5 * ((nets.d_b(real_a) - 1).pow(2).mean() + nets.d_b(fake_a).pow(2).mean()),
        }
    for name, value in expected.items():
        assert losses[name] == pytest.approx(value.item(), rel=1e-5), name


def test_g_step_gives_d_no_gradient_and_d_step_gives_g_none() -> None:
    nets = Networks()
    seen: dict[str, list[torch.Tensor | None]] = {}
    step_generators = nets.opt_g.step

    def record_then_step(*args, **kwargs):
        seen["D"] = [p.grad for p in [*nets.d_a.parameters(), *nets.d_b.parameters()]]
        seen["G"] = [p.grad.clone() for p in [*nets.g_a.parameters(), *nets.g_b.parameters()]]
        return step_generators(*args, **kwargs)

    nets.opt_g.step = record_then_step  # type: ignore[method-assign]
    nets.step()
    assert all(grad is None for grad in seen["D"])
    after = [p.grad for p in [*nets.g_a.parameters(), *nets.g_b.parameters()]]
    assert all(grad is not None and torch.equal(grad, before) for grad, before in zip(after, seen["G"], strict=True))
    assert all(p.grad is not None for p in nets.d_a.parameters())


def test_identity_off_gives_zero_terms_and_skips_the_identity_passes() -> None:
    nets = Networks()
    calls = {"G_A": 0, "G_B": 0}
    for name in calls:
        nets.all()[name].register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    losses = nets.step(lambda_identity=0.0)
    assert losses["idt_A"] == losses["idt_B"] == 0.0
    assert calls == {"G_A": 2, "G_B": 2}  # translate and reconstruct only
    nets.step()
    assert calls == {"G_A": 5, "G_B": 5}


def test_identity_needs_matching_channels_and_gan_mode_is_checked() -> None:
    nets = Networks()
    nets.real_b = nets.real_b[:, :1]
    with pytest.raises(ValueError, match="lambda_identity"):
        nets.step()
    with pytest.raises(ValueError, match="hinge"):
        Networks().step(gan_mode="hinge")
