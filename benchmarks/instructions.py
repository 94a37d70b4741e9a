"""
What a reply costs each server in instructions, a count a busy machine
does not change: C{python -m benchmarks.instructions}.

On a machine shared with neighbours, the throughput of C{benchmarks.run}
moves from one round to the next by more than the differences it is meant
to show.  This runs avatard (the real C{twistd -n avatard}) and the
in-memory ceiling of L{benchmarks.servers} under Valgrind's callgrind, with
instrumentation off until the load: for each workload the load generator
first warms the server up, then callgrind counts the instructions the
server executes in user space (every thread: Python, Twisted, SQLite, the C
library) while the load generator drives it for a while, and the count is
divided by the replies it received.  Under callgrind a server runs about
fifty times slower, so every workload is a fixed number of seconds of
load, whatever it amounts to.  The same is counted for avatard alone on 1
thousand and on 1 million users (L{SCALE}).

What is not counted: the kernel's work (system calls, the same per request
for both servers: see docs/PERFORMANCE.md), and time lost waiting on memory,
which a count of instructions cannot see.  The original style's baseline is
left out: most of its cost is the hand-off to a pool thread and back, in
the kernel and in waits.

It needs C{valgrind} (with C{callgrind_control}) and a C compiler.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.run import (
    ROOT,
    SIZES,
    ZIPF_FILL,
    Server,
    avatard,
    compileLoadgen,
    fill,
    machine,
    makeDatabase,
    mixed,
    other,
    running,
    writeRequests,
    writeZipfRequests,
)

WORKLOADS = (
    ("50 connections, 1 request at a time", ("--conns", "50")),
    ("50 connections pipelining 16", ("--conns", "50", "--depth", "16")),
    ("one request per connection, 8 clients", ("--mode", "per-connection", "--conns", "8")),
    ("single connection", ("--conns", "1")),
)
"""
Workloads on 100 thousand users, for avatard and the ceiling, the same
requests to warm up and to count (as C{benchmarks.run} replays them).
"""

SCALE = ("1k", "1M")
"""
The scale rows: avatard alone, 50 connections, with its default cache, on
1 thousand and on 1 million users asked for logins drawn from a Zipf
distribution (L{benchmarks.run.zipf}); each daemon is sent
C{--zipf-fill} requests first, not counted, then warmed up with other
requests than the counted ones.
"""


def underCallgrind(server: Server, directory: Path) -> Server:
    """
    @return: C{server}, run under callgrind with instrumentation off, its
        counts dumped into C{directory}.
    """
    server.command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={directory / server.name}.%p.out",
        *server.command,
    ]
    return server


def control(server: Server, *arguments: str) -> None:
    assert server.process is not None
    done = subprocess.run(
        ["callgrind_control", *arguments, str(server.process.pid)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode:
        raise RuntimeError(f"callgrind_control {' '.join(arguments)} failed: {done.stdout}{done.stderr}")


def dumps(server: Server, directory: Path) -> list[Path]:
    assert server.process is not None
    return sorted(directory.glob(f"{server.name}.{server.process.pid}.out.*"))


def instructions(server: Server, directory: Path, before: list[Path]) -> int:
    """
    @return: the instructions of the dump that appeared after C{before}.
    """
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        new = [path for path in dumps(server, directory) if path not in before]
        for path in new:
            for line in path.read_text().splitlines():
                if line.startswith("totals:"):
                    return int(line.split()[1])
        time.sleep(0.2)
    raise RuntimeError(f"callgrind wrote no counts for {server.name}")


def measure(
    binary: Path,
    server: Server,
    directory: Path,
    warm: Path,
    requests: Path,
    arguments: tuple[str, ...],
    seconds: float,
) -> tuple[int, int]:
    """
    Warm C{server} up for half of C{seconds} with the requests of C{warm},
    then count its instructions while the load generator drives it for
    C{seconds} with those of C{requests}.

    @return: the instructions and the replies.
    """
    command = [str(binary), "--port", str(server.port), *arguments, "--warmup", "0"]
    subprocess.run(
        [*command, "--requests", str(warm), "--duration", str(seconds / 2)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    control(server, "--zero")
    control(server, "--instr=on")
    result = subprocess.run(
        [*command, "--requests", str(requests), "--duration", str(seconds)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    before = dumps(server, directory)
    control(server, "--dump")
    control(server, "--instr=off")
    summary = json.loads(result.stdout)
    if summary["wrong"]:
        raise RuntimeError(f"{server.name} gave wrong replies: {result.stdout}")
    return instructions(server, directory, before), int(summary["replies"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="seconds of counted load per workload (default 20)"
    )
    parser.add_argument(
        "--tree",
        type=Path,
        default=ROOT,
        help="the source tree whose avatard runs (an older commit's, to compare), default this one",
    )
    parser.add_argument(
        "--zipf-fill",
        type=int,
        default=ZIPF_FILL,
        help=f"requests sent to each scale row's daemon before it is warmed up (default {ZIPF_FILL:,}), "
        "so that its cache is counted in its steady state",
    )
    options = parser.parse_args()
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (it comes with Valgrind)")
    directory = Path(tempfile.mkdtemp(prefix="avatard-instructions-"))
    try:
        run(directory, options.seconds, options.tree.resolve(), options.zipf_fill)
    finally:
        shutil.rmtree(directory)


def run(directory: Path, seconds: float, tree: Path, zipfFill: int) -> None:
    binary = compileLoadgen(directory)
    print(f"machine: {machine()}", file=sys.stderr)
    databases: dict[str, Path] = {}
    for name in ("100k", *SCALE):
        databases[name] = directory / f"users-{name}.sqlite"
        makeDatabase(databases[name], SIZES[name])
    mixed100k = directory / "mixed-100k.txt"
    writeRequests(mixed100k, mixed(SIZES["100k"], 200_000, seed=SIZES["100k"]))
    fills = {name: writeZipfRequests(directory, name, 1, zipfFill) for name in SCALE}
    pair = [
        underCallgrind(avatard("100k", databases["100k"], directory, tree=tree), directory),
        underCallgrind(other("ceiling", "100k", databases["100k"]), directory),
    ]
    scale = [
        underCallgrind(avatard(name, databases[name], directory, tree=tree), directory) for name in SCALE
    ]
    counted: dict[tuple[str, str], float] = {}

    def count(workload: str, server: Server, warm: Path, requests: Path, arguments: tuple[str, ...]) -> None:
        instructions, replies = measure(binary, server, directory, warm, requests, arguments, seconds)
        counted[workload, server.name] = instructions / replies
        print(
            f"{workload}: {server.name}: {instructions:,} instructions, {replies:,} replies", file=sys.stderr
        )

    with running(pair, directory):
        for workload, arguments in WORKLOADS:
            for server in pair:
                count(workload, server, mixed100k, mixed100k, arguments)
    with running(scale, directory):
        for server in scale:
            fill(binary, server, fills[server.database])
            warm, requests = (directory / f"zipf-{server.database}-{label}.txt" for label in ("warm", "0"))
            count(f"scale, {server.database}", server, warm, requests, ("--conns", "50"))
    print(f"instructions per reply, in user space, {seconds:g} s of counted load under callgrind per row")
    print("| workload | avatard | ceiling | ceiling over avatard |")
    print("|---|---|---|---|")
    for workload, _ in WORKLOADS:
        mine, ceiling = counted[workload, "avatard"], counted[workload, "ceiling"]
        print(f"| {workload} (100k users) | {mine:,.0f} | {ceiling:,.0f} | {ceiling / mine:.2f}x |")
    small, large = (counted[f"scale, {name}", "avatard"] for name in SCALE)
    print(f"| scale: Zipf, 50 connections on 1k users | {small:,.0f} | | |")
    print(
        f"| scale: Zipf, 50 connections on 1M users (1M over 1k: {large / small:.2f}x) | {large:,.0f} | | |"
    )


if __name__ == "__main__":
    main()
