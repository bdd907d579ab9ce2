"""Evaluation: the FCN-score, FID and LPIPS, HTML reports, run comparisons and network summaries.

The per-image metrics live in `pix2pix/metrics.py`, shared with validation during training.

Modules are imported directly (`from pix2pix.evaluate import fcn_score`); this package
imports nothing itself, so `pix2pix --help` does not pay for scikit-image or matplotlib.

  fcn_score.py  palette recovery, the FCN-score segmenter (trained once, cached), the scores
  perceptual.py FID and LPIPS from user-supplied TorchScript networks, checked when loaded
  pipeline.py   one evaluation: translate or read a results folder, measure, write metrics and report
  report.py     the HTML report, error heat maps, loss curves
  compare.py    several runs: one table and a side-by-side grid
  summary.py    layer tables, parameter counts, receptive field
  commands.py   `pix2pix eval` and `pix2pix summary`
"""
