"""spark-submit entry point of `segment generate`, same options: `spark-submit ... jobs/generate_data.py`."""

import sys

from segmentation.cli import main

if __name__ == "__main__":
    main(["generate", *sys.argv[1:]])
