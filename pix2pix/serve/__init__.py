"""The web demo and HTTP API (`pix2pix serve`, which serves an exported `.onnx` model without torch):
`from pix2pix.serve.app import create_app`.

Nothing is imported here so that `pix2pix --help` stays free of FastAPI and torch.
"""
