"""Benchmark of the protocol primitives the services stand on, against the peers considered.

Run: `.venv/bin/python -m scripts.bench.primitives [--quick] [--only codecs,mst,crypto]`

Sections (each in its own module, each returning `Measurement` rows):
  codecs  DAG-CBOR encode/decode: cbrrr, libipld, cbor2 and our `atcore.dagcbor` wrapper
  mst     MST build and update throughput: `atcore.mst` vs `atmst`
  crypto  K-256 sign/verify: coincurve vs cryptography, and our `atcore.crypto` wrapper
Results and the machine they were measured on are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable, Sequence

from scripts.bench import _codecs, _crypto, _mst
from scripts.bench._util import Measurement, print_table

SECTIONS: dict[str, tuple[Callable[[bool], list[Measurement]], str]] = {
    "codecs": (_codecs.run, "cbrrr"),
    "mst": (_mst.run, "atmst"),
    "crypto": (_crypto.run, "cryptography"),
}


def machine_summary() -> str:
    cpu = platform.processor() or platform.machine()
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{python} on {cpu}, {os.cpu_count()} cores"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny inputs, for a smoke run")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    args = parser.parse_args(argv)
    print(machine_summary())
    for name in args.only.split(","):
        run, baseline = SECTIONS[name]
        print(f"\n== {name} (ratios against {baseline})")
        print_table(run(args.quick), baseline=baseline)


if __name__ == "__main__":
    main()
