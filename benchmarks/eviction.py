"""
Which users a full reply cache should drop: C{python -m benchmarks.eviction}.

Logins are drawn from a Zipf distribution (L{benchmarks.run.zipf}, exponent
1.0) over C{--users} users, with room for C{--size} (100,000, the default
cache); after C{--warm} requests, the next C{--requests} are counted.  For
each policy it prints the share of requests answered from the cache, and
what the cache's own work costs per request in this process (a lookup, and
on a miss the reply stored and a user dropped), in nanoseconds:

  - C{avatard}: avatard's own cache (L{WatchedReplyCache}), as the daemon
    uses it, with C{--tree} that of another source tree (an older commit);
  - C{fifo}, C{doorkeeper} (first in, first out, admitting a new line
    to a full cache on its second asking), C{lru}, C{clock}, C{sieve},
    C{s3fifo}: the policies written
    small, a dict of replies beside the order each keeps, so that their
    costs compare with each other (not with avatard's, which also groups
    the lines of a user and counts).

The rest of a miss (reading the database, rendering) costs far more than
any of these; what a policy saves is misses.  C{--policy} measures some.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from benchmarks.run import zipf

Policy = Callable[[list[bytes], int], int]
"""
Given the requests and the room, the number of them answered from the cache.
"""


def fifo(requests: list[bytes], size: int) -> int:
    kept: OrderedDict[bytes, bytes] = OrderedDict()
    hits = 0
    for line in requests:
        if kept.get(line) is not None:
            hits += 1
            continue
        kept[line] = line
        if len(kept) > size:
            kept.popitem(last=False)
    return hits


def doorkeeper(requests: list[bytes], size: int) -> int:
    """
    First in, first out, where a full cache keeps a new line only when
    asked again while it is remembered, in a set of up to a quarter of the
    room emptied when it would grow past that (as avatard's cache does).
    """
    kept: OrderedDict[bytes, bytes] = OrderedDict()
    seen: set[bytes] = set()
    hits = 0
    for line in requests:
        if kept.get(line) is not None:
            hits += 1
            continue
        if len(kept) >= size:
            if line not in seen:
                seen.add(line)
                if len(seen) > size // 4:
                    seen.clear()
                    seen.add(line)
                continue
            seen.discard(line)
        kept[line] = line
        if len(kept) > size:
            kept.popitem(last=False)
    return hits


def lru(requests: list[bytes], size: int) -> int:
    kept: OrderedDict[bytes, bytes] = OrderedDict()
    hits = 0
    for line in requests:
        if kept.get(line) is not None:
            kept.move_to_end(line)
            hits += 1
            continue
        kept[line] = line
        if len(kept) > size:
            kept.popitem(last=False)
    return hits


def clock(requests: list[bytes], size: int) -> int:
    """
    First in, first out, with a second turn for what was asked since it
    was stored (second chance).
    """
    kept: OrderedDict[bytes, bytes] = OrderedDict()
    marks: set[bytes] = set()
    hits = 0
    for line in requests:
        if kept.get(line) is not None:
            marks.add(line)
            hits += 1
            continue
        kept[line] = line
        while len(kept) > size:
            old, reply = kept.popitem(last=False)
            if old in marks:
                marks.discard(old)
                kept[old] = reply
    return hits


def sieve(requests: list[bytes], size: int) -> int:
    """
    SIEVE (Zhang et al., NSDI 2024): a hand moves from the oldest towards
    the newest, dropping the first unmarked, leaving the marked in place.
    """
    visited: dict[bytes, bool] = {}
    newer: dict[bytes, bytes | None] = {}
    older: dict[bytes, bytes | None] = {}
    newest: bytes | None = None
    oldest: bytes | None = None
    hand: bytes | None = None
    hits = 0
    for line in requests:
        if line in visited:
            visited[line] = True
            hits += 1
            continue
        if len(visited) >= size:
            victim = hand if hand is not None else oldest
            assert victim is not None
            while visited[victim]:
                visited[victim] = False
                following = newer[victim]
                victim = following if following is not None else oldest
                assert victim is not None
            hand = newer[victim]
            before, after = older.pop(victim), newer.pop(victim)
            if before is not None:
                newer[before] = after
            else:
                oldest = after
            if after is not None:
                older[after] = before
            else:
                newest = before
            del visited[victim]
        visited[line] = False
        older[line] = newest
        newer[line] = None
        if newest is not None:
            newer[newest] = line
        newest = line
        if oldest is None:
            oldest = line
    return hits


def s3fifo(requests: list[bytes], size: int) -> int:
    """
    S3-FIFO with counts of up to 3, as published.
    """
    smallLimit = max(1, size // 10)
    small: OrderedDict[bytes, None] = OrderedDict()
    main: OrderedDict[bytes, None] = OrderedDict()
    ghost: OrderedDict[bytes, None] = OrderedDict()
    counts: dict[bytes, int] = {}
    hits = 0
    for line in requests:
        count = counts.get(line)
        if count is not None:
            if count < 3:
                counts[line] = count + 1
            hits += 1
            continue
        if line in ghost:
            del ghost[line]
            main[line] = None
        else:
            small[line] = None
        counts[line] = 0
        while len(small) + len(main) > size:
            if len(small) > smallLimit or not main:
                old = small.popitem(last=False)[0]
                if counts[old]:
                    counts[old] = 0
                    main[old] = None
                else:
                    del counts[old]
                    ghost[old] = None
                    if len(ghost) > size - smallLimit:
                        ghost.popitem(last=False)
            else:
                old = main.popitem(last=False)[0]
                if counts[old]:
                    counts[old] -= 1
                    main[old] = None
                else:
                    del counts[old]
    return hits


def avatard(requests: list[bytes], size: int) -> int:
    """
    avatard's cache as the daemon uses it: asked first, stored after a
    lookup that missed.
    """
    from twisted.internet.task import Clock

    from avatard.request.cache import WatchedReplyCache

    class Unchanged:
        def version(self) -> int:
            return 1

    cache = WatchedReplyCache(Clock(), Unchanged(), size=size)  # type: ignore[arg-type]
    # cache.get is looked up for each request, as the responder does: the
    # cache swaps it for one that marks hits once it is full.
    put, stamp = cache.put, cache.stamp
    hits = 0
    for line in requests:
        if cache.get(line) is not None:
            hits += 1
            continue
        put(line, line[4:].decode(), line, True, "WHO", stamp())
    return hits


POLICIES: dict[str, Policy] = {
    "avatard": avatard,
    "fifo": fifo,
    "doorkeeper": doorkeeper,
    "lru": lru,
    "clock": clock,
    "sieve": sieve,
    "s3fifo": s3fifo,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1_000_000, help="users of the directory (default 1M)")
    parser.add_argument("--size", type=int, default=100_000, help="users the cache keeps (default 100,000)")
    parser.add_argument("--warm", type=int, default=1_000_000, help="requests before those counted")
    parser.add_argument("--requests", type=int, default=1_000_000, help="requests counted")
    parser.add_argument("--policy", action="append", choices=sorted(POLICIES), help="measure only these")
    parser.add_argument("--tree", type=Path, help="the source tree whose avatard cache is measured")
    options = parser.parse_args()
    if options.tree is not None:
        # This tree's avatard was imported with benchmarks.run: forget it.
        sys.path.insert(0, str(options.tree.resolve()))
        for name in [name for name in sys.modules if name.split(".")[0] == "avatard"]:
            del sys.modules[name]
    drawn = [
        request.encode()
        for request, _ in zipf(options.users, options.warm + options.requests, seed=options.users + 7)
    ]
    print(f"Zipf over {options.users:,} users, room for {options.size:,}")
    print("| policy | hit rate | ns per request |")
    print("|---|---|---|")
    for name in options.policy or POLICIES:
        policy = POLICIES[name]
        # The warm-up alone, then warm-up and counted requests: the
        # difference is what the counted requests hit and cost.
        gc.collect()
        started = time.perf_counter()
        warmHits = policy(drawn[: options.warm], options.size)
        warmTime = time.perf_counter() - started
        gc.collect()
        started = time.perf_counter()
        allHits = policy(drawn, options.size)
        allTime = time.perf_counter() - started
        rate = (allHits - warmHits) / options.requests
        cost = (allTime - warmTime) / options.requests * 1e9
        print(f"| {name} | {rate:.1%} | {cost:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
