"""`python -m pix2pix.serve --checkpoint model.onnx`: `pix2pix serve` for an environment without torch.

The `pix2pix` command imports every command group, some of which need torch; this entry point
imports only the server.
"""

import argparse
import sys

from pix2pix.serve.commands import add_serve_flags, run_serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pix2pix.serve", description="pix2pix web demo and HTTP API")
    add_serve_flags(parser)
    args = parser.parse_args(argv)
    try:
        run_serve(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
