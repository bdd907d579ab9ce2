"""Paired datasets: the on-disk layouts, decoding, paired jitter, and tensors.

Names are imported on first use (PEP 562), so the torch-free modules (images, layout, transforms, lab,
synthetic) can be imported without loading torch: an exported ONNX model and its server run on them alone.
"""

from __future__ import annotations

from pix2pix.lazy import lazy_exports

_LAZY = {
    **dict.fromkeys(
        ["DIRECTIONS", "PairFile", "check_pair_headers", "find_bad_pairs", "find_pairs", "load_pair"],
        "pix2pix.data.layout",
    ),
    **dict.fromkeys(["PairedDataset"], "pix2pix.data.dataset"),
    **dict.fromkeys(
        [
            "DataError",
            "IMAGE_EXTENSIONS",
            "convert_channels",
            "list_images",
            "load_image",
            "read_image_header",
            "resize_for_inference",
            "split_pair",
        ],
        "pix2pix.data.images",
    ),
    **dict.fromkeys(["image_to_tensor", "tensor_to_image"], "pix2pix.data.tensors"),
    **dict.fromkeys(
        [
            "Jitter",
            "PREPROCESS",
            "apply_preprocess",
            "check_preprocess",
            "compute_resized_size",
            "round_to_multiple",
            "sample_jitter",
            "test_time_size",
        ],
        "pix2pix.data.transforms",
    ),
}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
