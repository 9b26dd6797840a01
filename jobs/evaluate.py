"""spark-submit entry point of `segment evaluate`, same options: `spark-submit ... jobs/evaluate.py`."""

import sys

from segmentation.cli import main

if __name__ == "__main__":
    main(["evaluate", *sys.argv[1:]])
