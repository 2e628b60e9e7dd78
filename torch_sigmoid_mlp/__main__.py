"""``python -m torch_sigmoid_mlp``: the same command line as ``torch-sigmoid-mlp``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
