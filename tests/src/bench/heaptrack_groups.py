#!/usr/bin/env python3
"""Heap at its peak, grouped by where it was allocated (for BENCHMARKS.md).

The runner's release build inlines most frames, so heaptrack_print's own top entries name
allocator internals (btree nodes, RawVec). This sums a peak-cost stack file by the source
files on each stack that tell the consumers apart (watcher, list or watch decoding, the
reflector store, the object types):

    heaptrack_print -f runner-3.gz -p 0 -a 0 -T 0 --flamegraph-cost-type peak -F runner-3.stacks
    python3 tests/src/bench/heaptrack_groups.py runner-3.stacks [TOP]

The binary must keep its line tables: build it with CARGO_PROFILE_RELEASE_STRIP=false
CARGO_PROFILE_RELEASE_DEBUG=line-tables-only.
"""
import collections
import re
import sys

FILES = {
    "watcher.rs", "object.rs", "dynamic.rs", "store.rs", "event_decode.rs", "core_methods.rs",
    "runner.rs", "scheduler.rs", "leader.rs", "controller.rs", "client.rs", "instances.rs",
    "kubevirt.rs", "lean_meta.rs", "read.rs", "observe.rs", "tenants.rs", "poller.rs",
    "act.rs", "status.rs", "http.rs", "metrics.rs",
}


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    groups = collections.Counter()
    total = 0
    with open(path) as stacks:
        for line in stacks:
            stack, _, cost = line.rstrip("\n").rpartition(" ")
            cost = int(cost)
            total += cost
            path_files = []
            for name in re.findall(r"\(([^()]*\.rs)\)(?:;|$)", stack):
                if name in FILES and (not path_files or path_files[-1] != name):
                    path_files.append(name)
            groups[" > ".join(path_files) or "(no runner or kube frame)"] += cost
    print(f"heap at peak: {total / 1048576:.2f} MiB")
    for key, cost in groups.most_common(top):
        print(f"{cost / 1048576:6.2f} MiB  {key}")


if __name__ == "__main__":
    main()
