"""The optional packages, the extra that installs each, and the check that refuses a command at its start
(not an epoch or a progress bar in) when this install lacks one. Standard library only: the CLI uses it
before it imports torch."""

from __future__ import annotations

import importlib.util

# optional packages -> the extra that installs them (the base install stays light)
OPTIONAL_EXTRAS = {
    "skimage": "eval",
    "matplotlib": "eval",
    "scipy": "eval",
    "onnx": "export",
    "onnxruntime": "export",
    "fastapi": "serve",
    "uvicorn": "serve",
    "multipart": "serve",
    "python_multipart": "serve",
}


def require_packages(needs: list[tuple[str, str, str]]) -> None:
    """Each (module, extra, what needs it) whose module is not installed: a ValueError naming the extra."""
    for module, extra, user in needs:
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"{user} needs {module}, which is not installed: pip install 'pix2pix[{extra}]'")
