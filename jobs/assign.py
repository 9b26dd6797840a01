"""spark-submit entry point of `segment assign`, same options: `spark-submit ... jobs/assign.py`."""

import sys

from segmentation.cli import main

if __name__ == "__main__":
    main(["assign", *sys.argv[1:]])
