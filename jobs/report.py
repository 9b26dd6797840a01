"""spark-submit entry point of `segment report`, same options: `spark-submit ... jobs/report.py`."""

import sys

from segmentation.cli import main

if __name__ == "__main__":
    main(["report", *sys.argv[1:]])
