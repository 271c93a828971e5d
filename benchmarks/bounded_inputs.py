"""Peak memory and time of refusing inputs that used to exhaust the machine (issue 24, item 9):
a 10^6-point grid submitted with ``--yes`` (and as a dry run), a spec listing 10^6 seeds,
and a LAReQA ``.json.xz`` decompression bomb (3.2 GB of output, as in the issue).

    PYTHONPATH=. python benchmarks/bounded_inputs.py [--bomb-gib 3.2] [--limit-gib 8]

Each case runs ``python -m xlrun submit`` of whichever xlrun is on ``PYTHONPATH`` in a child
process with an address-space limit (``--limit-gib``) and a timeout (``--timeout``), and
reports its exit code, the first line of its output, its wall time and its peak RSS
(``wait4``). The baseline is a spec refused for a bad value (what importing xlrun and
reading a spec cost).
"""

from __future__ import annotations

import argparse
import lzma
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE = """
[experiment]
name = "bounded"
output_dir = "out"
[model]
name = "quickstart:tiny"
[train_data]
source = "{source}"
{path}
[sampling]
strategy = "{strategy}"
[train]
steps = 2
batch_size = 2
{train}
[[eval]]
dataset = "quickstart"
languages = ["en", "de"]
{grid}
"""


def spec(source: str = "quickstart", path: str = "", strategy: str = "hybrid",
         train: str = "", grid: str = "") -> str:
    return BASE.format(source=source, path=path, strategy=strategy, train=train, grid=grid)


def run(folder: Path, args: list[str], limit_gib: float, timeout: float
        ) -> tuple[str, float, float]:
    """(outcome, seconds, peak RSS in MB) of ``python -m xlrun ARGS`` in ``folder``."""
    def limit() -> None:
        cap = int(limit_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    t0 = time.perf_counter()
    log = folder / "out.log"
    with open(log, "wb") as out:
        p = subprocess.Popen([sys.executable, "-m", "xlrun", *args], cwd=folder, stdout=out,
                             stderr=subprocess.STDOUT,
                             preexec_fn=limit)  # noqa: PLW1509 - no threads here
        killed = False
        while True:  # wait4: this child's own peak RSS
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                p.kill()
                pid, status, usage = os.wait4(p.pid, 0)
                killed = True
                break
            time.sleep(0.05)
        p.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    text = log.read_text(errors="replace").strip().splitlines()
    first = next((line for line in text if line.startswith("Error")),
                 text[-1] if text else "")
    outcome = f"killed after {timeout:.0f} s" if killed else f"exit {p.returncode}: {first}"
    return outcome[:160], seconds, usage.ru_maxrss / 1024


def write_bomb(path: Path, gib: float) -> int:
    comp = lzma.LZMACompressor(preset=1)
    chunk = b"\0" * (64 * 2**20)
    with open(path, "wb") as f:
        f.write(comp.compress(b'{"data": [{"paragraphs": [{"context": "'))
        for _ in range(round(gib * 2**30 / len(chunk))):
            f.write(comp.compress(chunk))
        f.write(comp.compress(b'"}]}]}') + comp.flush())
    return path.stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bomb-gib", type=float, default=3.2)
    ap.add_argument("--limit-gib", type=float, default=8.0)
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()
    import xlrun

    print(f"xlrun from {Path(xlrun.__file__).parent}", file=sys.stderr)
    cases: list[tuple[str, str, list[str]]] = [
        ("baseline: a spec refused for train.lr = -1", spec(train="lr = -1.0"),
         ["--dry-run"]),
        ("10^6-point grid (1000 seeds x 1000 lr), --yes",
         spec(grid=f'[grid]\nseeds = {list(range(1000))}\n"train.lr" = '
                   f"{[1e-5 * (i + 1) for i in range(1000)]}"), ["--yes", "--no-run"]),
        ("10^6-point grid, --dry-run",
         spec(grid=f'[grid]\nseeds = {list(range(1000))}\n"train.lr" = '
                   f"{[1e-5 * (i + 1) for i in range(1000)]}"), ["--dry-run"]),
        ("a spec listing 10^6 seeds (7.5 MB), --yes",
         spec(grid=f"[grid]\nseeds = {list(range(10**6))}"), ["--yes", "--no-run"]),
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="xlrun-bounded-") as tmp:
        d = Path(tmp)
        for name, text, extra in cases:
            (d / "s.toml").write_text(text)
            rows.append((name, *run(d, ["submit", "s.toml", *extra], args.limit_gib,
                                    args.timeout)))
            print(rows[-1], file=sys.stderr, flush=True)
        train = d / "train"
        train.mkdir()
        shutil.copy(REPO / "tests" / "fixtures" / "lareqa" / "en.json", train / "en.json")
        size = write_bomb(train / "de.json.xz", args.bomb_gib)
        (d / "s.toml").write_text(spec(source="lareqa", path='path = "train"',
                                       strategy="monolingual"))
        rows.append((f"LAReQA de.json.xz: {size / 1e6:.2f} MB decompressing to "
                     f"{args.bomb_gib} GiB", *run(d, ["submit", "s.toml", "--dry-run"],
                                                  args.limit_gib, args.timeout)))
        print(rows[-1], file=sys.stderr, flush=True)
    print("| case | outcome | wall s | peak RSS MB |\n|---|---|---|---|")
    for name, outcome, seconds, rss in rows:
        print(f"| {name} | {outcome} | {seconds:.1f} | {rss:.0f} |")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
