"""spark-submit entry point of `segment pipeline`, same options: `spark-submit ... jobs/pipeline.py`."""

import sys

from segmentation.cli import main

if __name__ == "__main__":
    main(["pipeline", *sys.argv[1:]])
