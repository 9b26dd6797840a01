"""CDNOW as raw input: the real CD-retailer transactions (Fader and Hardie), shipped in the
`lifetimes` wheel's datasets (`make setup` installs it for its files only; it is never
imported), rewritten as CSV for `segment ingest` with `--conf conf/cdnow.yaml`.

    python bench/cdnow.py --sample data/cdnow-sample    # 2,357 customers, 6,919 lines
    python bench/cdnow.py data/cdnow                     # 23,570 customers, 69,659 lines

Each line is one customer's purchase on a day: customer id, date (YYYYMMDD), CDs, dollars.
There is no order id, so an order is a customer's purchase day (features, CLV), and identical
lines are separate purchases (ingest.dedupe auto keeps them).
"""

from __future__ import annotations

import argparse
import csv
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

FILES = {"master": "CDNOW_master.txt", "sample": "CDNOW_sample.txt"}
HEADER = ("customer_id", "date", "cds", "dollars")


def raw_file(kind: str) -> Path:
    try:
        return Path(distribution("lifetimes").locate_file(f"lifetimes/datasets/{FILES[kind]}"))
    except PackageNotFoundError:
        raise SystemExit("the CDNOW files ship in the lifetimes wheel: run `make setup`") from None


def write_csv(kind: str, folder: Path) -> Path:
    """`<folder>/transactions.csv` from the raw file; returns the folder (the input path)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = raw_file(kind).read_text().splitlines()
    with (folder / "transactions.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for line in lines:
            fields = line.split()
            if not fields or not fields[0].isdigit():  # the master file has a header line
                continue
            # sample: id, customer index, date, CDs, dollars; master: id, date, CDs, dollars
            customer, date, cds, dollars = fields[0], *fields[-3:]
            writer.writerow((customer, date, cds, dollars))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where transactions.csv is written")
    parser.add_argument("--sample", action="store_true", help="the 2,357-customer sample, not the master")
    args = parser.parse_args()
    print(write_csv("sample" if args.sample else "master", args.folder))


if __name__ == "__main__":
    main()
