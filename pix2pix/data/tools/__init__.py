"""Dataset tools behind `pix2pix data`: download, combine, pairs and check (Lab conversions: pix2pix.data.lab)."""

from pix2pix.data.tools.check import CheckReport, check_dataset, format_check_report
from pix2pix.data.tools.combine import CombineReport, combine_folders, format_combine_report
from pix2pix.data.tools.download import DATASETS, DownloadError, download_dataset, extract_safely, fetch_file
from pix2pix.data.tools.pairs import KINDS, assign_splits, build_pairs, make_input

__all__ = [
    "DATASETS",
    "KINDS",
    "CheckReport",
    "CombineReport",
    "DownloadError",
    "assign_splits",
    "build_pairs",
    "check_dataset",
    "combine_folders",
    "download_dataset",
    "extract_safely",
    "fetch_file",
    "format_check_report",
    "format_combine_report",
    "make_input",
]
