"""spark-submit entry point of `segment train`, same options: `spark-submit ... jobs/train.py`."""

import sys

from segmentation.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
