"""spark-submit entry point of `segment ingest`, same options: `spark-submit ... jobs/ingest.py`."""

import sys

from segmentation.cli import main

if __name__ == "__main__":
    main(["ingest", *sys.argv[1:]])
