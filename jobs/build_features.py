"""spark-submit entry point of `segment features`, same options: `spark-submit ... jobs/build_features.py`."""

import sys

from segmentation.cli import main

if __name__ == "__main__":
    main(["features", *sys.argv[1:]])
