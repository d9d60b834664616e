#!/usr/bin/env python3
"""Sorts the futex calls in `perf script` output (syscalls:sys_enter_futex with call graphs) by
what made them: glibc's malloc arena locks, std's Mutex or RwLock (by the Tollgate function that
took it), channel and scheduler wake-ups. A contended lock shows as a wait (the taker sleeps) and a
wake (the holder wakes it); an uncontended lock makes no futex call at all.

Usage: futex_sites.py PERF_SCRIPT_TEXT CALLS [TOP]   (CALLS: calls made while perf recorded)
"""
import collections
import re
import sys


def kind_of(frames):
    blob = "\n".join(frames)
    if "lll_lock" in blob:
        return "glibc malloc arena lock"
    if "rwlock" in blob.lower():
        return "std RwLock"
    if "mpmc" in blob:
        return "std mpsc channel"
    if "mutex::futex::Mutex" in blob or "Mutex>::lock_contended" in blob:
        return "std Mutex"
    if "Parker" in blob or "park" in blob.lower() or "Condvar" in blob:
        return "thread park / unpark"
    if frames and "syscall" in frames[0]:
        # std's Mutex wakes a waiter from its unlock, inlined into the function that held it.
        return "std Mutex"
    return "other"


def site_of(frames):
    names = [re.sub(r"\+0x[0-9a-f]+ \(.*\)$|\s*\(.*\)$", "", f).replace("::{{closure}}", "") for f in frames]
    for name in names:
        if name.startswith(("tollgate_", "tollgate::", "<tollgate")):
            return name
    return "(outside Tollgate's code)"


def main():
    text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
    calls = float(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    by_site, by_kind = collections.Counter(), collections.Counter()
    for event in text.split("\n\n"):
        lines = [l.strip() for l in event.strip().splitlines()]
        if not lines or "sys_enter_futex" not in lines[0]:
            continue
        m = re.search(r"op: (0x[0-9a-f]+)", lines[0])
        op = int(m.group(1), 16) & 0x7F if m else -1
        what = {0: "wait", 9: "wait", 1: "wake", 10: "wake"}.get(op, f"op {op}")
        frames = [re.sub(r"^[0-9a-f]+ ", "", l) for l in lines[1:]]
        kind = kind_of(frames)
        by_kind[(kind, what)] += 1
        by_site[(kind, what, site_of(frames))] += 1
    total = sum(by_kind.values())
    print(f"futex calls: {total} for {calls:,.0f} calls ({1000 * total / max(calls, 1):.1f} per 1000 calls)\n")
    print("| made by | call | per 1000 calls |")
    print("|---|---|---:|")
    for (kind, what), n in by_kind.most_common():
        print(f"| {kind} | {what} | {1000 * n / max(calls, 1):.2f} |")
    print(f"\n| made by | call | first Tollgate frame | per 1000 calls |")
    print("|---|---|---|---:|")
    for (kind, what, site), n in by_site.most_common(top):
        print(f"| {kind} | {what} | `{site[:100]}` | {1000 * n / max(calls, 1):.2f} |")


if __name__ == "__main__":
    main()
