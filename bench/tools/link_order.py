"""The functions of a binary seen running, as a linker symbol-ordering list.

    link_order.py write BINARY LIST INPUT...   writes LIST: one symbol a line; first what the
                                               callgrind profiles saw, the most instructions
                                               first, then what only the samples saw, the most
                                               samples first
    link_order.py check BINARY LIST            how much of LIST the binary still has, and how
                                               far apart the listed functions lie

An INPUT is a callgrind profile written with --demangle=no and --compress-strings=no (names as
the binary's symbol table spells them), or a file of sampled symbol names, one sample a line
(the second field of `perf script --no-demangle -F ip,sym,dso`). Both modes print the code the
listed functions span in the binary and the 64 KiB windows it touches: the kernel maps a window
around each page first executed, so windows x 64 KiB is about what of the code is resident once
they have all run.
"""

import collections
import re
import subprocess
import sys

RECURSION = re.compile(r"'\d+$")  # callgrind's mark on a recursive call's cycle


def functions(binary):
    """Every function symbol of `binary`: name -> (address, size)."""
    out = subprocess.run(["nm", "-S", binary], capture_output=True, text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            syms[parts[3]] = (int(parts[0], 16), int(parts[1], 16))
    return syms


def executed(profile, binary):
    """Self instructions of each function of `binary` the profile saw (callees included)."""
    cost = collections.Counter()
    ob = cob = current = None
    with open(profile, errors="replace") as f:
        for line in f:
            key, _, value = line.partition("=")
            value = RECURSION.sub("", value.strip())
            if key == "ob":
                ob = value
            elif key == "fn":
                current = value if ob == binary else None
                if current:
                    cost[current] += 0
            elif key == "cob":
                cob = value
            elif key == "cfn":
                if (cob or ob) == binary:
                    cost[value] += 0
                cob = None
            elif current and line[:1].isdigit():
                parts = line.split()
                if len(parts) >= 2:
                    cost[current] += int(parts[1])
    return cost


def report(names, syms):
    spans = [syms[n] for n in names if n in syms]
    size = sum(s for _, s in spans)
    windows = {page // 16 for a, s in spans for page in range(a // 4096, (a + max(s, 1) - 1) // 4096 + 1)}
    print(f"listed functions in the binary: {len(spans)} of {len(names)}, {size / 1e6:.2f} MB of code")
    print(f"64 KiB windows they touch: {len(windows)} ({len(windows) * 65536 / 1e6:.2f} MB)")


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "write":
        binary, out = sys.argv[2:4]
        syms = functions(binary)
        cost, sampled = collections.Counter(), collections.Counter()
        for path in sys.argv[4:]:
            with open(path, errors="replace") as f:
                profile = f.readline().startswith("# callgrind format")
            if profile:
                cost.update(executed(path, binary))
            else:
                with open(path) as f:
                    sampled.update(line.strip() for line in f if line.strip())
        names = sorted((n for n in cost if n in syms), key=lambda n: (-cost[n], n))
        names += sorted((n for n in sampled if n in syms and n not in cost), key=lambda n: (-sampled[n], n))
        with open(out, "w") as f:
            f.writelines(n + "\n" for n in names)
        report(names, syms)
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        binary, listed = sys.argv[2:]
        with open(listed) as f:
            names = [line.strip() for line in f if line.strip()]
        report(names, functions(binary))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
