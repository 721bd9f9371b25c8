"""Benchmark `logmap upload --from DIR`: 1M small records to the local test server, records/s.

The server (tests/apiserver.py) runs in its own process so it gets its own core. Two runs by default:

* ``--validate``: the server checks every record with the vendored JSON Schema, as the API would. The figure is
  then the test server's validation speed (pure-Python jsonschema), not logmap's.
* ``--no-validate``: the server parses and counts; the figure is what logmap itself sustains over HTTP
  (reading batch files, building bodies, concurrent requests, fsynced journal).

The upload runs the real command in a subprocess; with a terminal on stderr it shows the progress bar
(records, records/s). Results go to bench/results-upload.md by hand.

    python bench/bench_upload.py --records 1000000 --mode both
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEY = "bench-key-not-secret"
TYPES = ['"type":"product_detail_page_view","product_ids":["p{p}"]',
         '"type":"search","search":{{"keywords":"shoe {p}"}}',
         '"type":"add_to_cart","product_ids":["p{p}"],"quantities":[1]',
         '"type":"home_page_view"']


def write_records(folder: Path, count: int, per_file: int = 10_000) -> int:
    """``count`` small valid records (~110 bytes each) in ndjson batch files like `convert` writes."""
    folder.mkdir(parents=True, exist_ok=True)
    size = 0
    for number, start in enumerate(range(0, count, per_file), start=1):
        lines = []
        for i in range(start, min(start + per_file, count)):
            body = TYPES[i % 4].format(p=i % 5000)
            lines.append(f'{{"user_id":"u{i}",{body},"timestamp":"2024-03-01T10:{(i // 60) % 60:02d}:{i % 60:02d}Z"}}')
        text = "\n".join(lines) + "\n"
        (folder / f"interactions-{number:05d}.ndjson").write_text(text)
        size += len(text)
    return size


def start_server(validate: bool) -> tuple[subprocess.Popen, str]:
    args = [sys.executable, str(REPO / "tests/apiserver.py"), "--port", "0", "--key", KEY, "--count-only"]
    if not validate:
        args.append("--no-validate")
    server = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    line = server.stdout.readline()
    url = re.search(r"http://\S+", line).group(0)
    return server, url


def run(folder: Path, validate: bool, concurrency: int) -> float:
    for name in ("upload-journal.ndjson", "dead-letter.ndjson"):
        (folder / name).unlink(missing_ok=True)
    server, url = start_server(validate)
    try:
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", "from logmap.cli import main; main()", "upload", "--from",
                                 str(folder), "--base-url", url, "--concurrency", str(concurrency)],
                                env={**os.environ, "MISO_API_KEY": KEY, "PYTHONPATH": str(REPO)},
                                stdout=subprocess.PIPE, text=True)
        wall = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait()
    print(result.stdout, end="")
    if result.returncode != 0:
        raise SystemExit(f"upload failed with status {result.returncode}")
    rate = float(re.search(r"\(([\d,]+) records/s\)", result.stdout).group(1).replace(",", ""))
    print(f"[{'validating' if validate else 'counting'} server, concurrency {concurrency}] "
          f"{rate:,.0f} records/s (wall {wall:.1f}s including start-up)\n")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--mode", choices=["validate", "no-validate", "both"], default="both")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="logmap-bench-upload-"))
    try:
        started = time.perf_counter()
        size = write_records(folder, args.records)
        print(f"{args.records:,} records, {size / 1e6:.0f} MB in {folder} ({time.perf_counter() - started:.1f}s)\n")
        if args.mode in ("no-validate", "both"):
            run(folder, validate=False, concurrency=args.concurrency)
        if args.mode in ("validate", "both"):
            run(folder, validate=True, concurrency=args.concurrency)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
