"""Paired datasets: decoding, paired jitter, and the on-disk layouts."""

from pix2pix.data.dataset import (
    DIRECTIONS,
    PairedDataset,
    PairFile,
    check_pair_headers,
    find_bad_pairs,
    find_pairs,
    load_pair,
)
from pix2pix.data.images import (
    IMAGE_EXTENSIONS,
    DataError,
    convert_channels,
    list_images,
    load_image,
    read_image_header,
    split_pair,
)
from pix2pix.data.transforms import (
    PREPROCESS,
    Jitter,
    apply_preprocess,
    check_preprocess,
    compute_resized_size,
    image_to_tensor,
    resize_for_inference,
    round_to_multiple,
    sample_jitter,
    tensor_to_image,
)

__all__ = [
    "DIRECTIONS",
    "IMAGE_EXTENSIONS",
    "PREPROCESS",
    "DataError",
    "Jitter",
    "PairFile",
    "PairedDataset",
    "apply_preprocess",
    "check_pair_headers",
    "find_bad_pairs",
    "read_image_header",
    "check_preprocess",
    "compute_resized_size",
    "convert_channels",
    "find_pairs",
    "image_to_tensor",
    "list_images",
    "load_image",
    "load_pair",
    "resize_for_inference",
    "round_to_multiple",
    "sample_jitter",
    "split_pair",
    "tensor_to_image",
]
