#!/usr/bin/env python3
"""Many concurrent SSE streams, each opened once (bench/streams.sh).

Opens --streams chat streams, their starts spread evenly over --ramp seconds, and reads each to
its end. Per stream: time to the response headers, time to the first SSE event (TTFB), total
time, events received, the longest gap between two reads, and whether it ended with
`data: [DONE]` after a 200. Also the most streams open at once. Writes one JSON object to --out
and prints a one-line summary.
"""
import argparse, asyncio, json, time

import aiohttp


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def one(sess, a, body, headers, delay, st):
    await asyncio.sleep(delay)
    t0 = time.perf_counter()
    rec = {"ok": False}
    st["open"] += 1
    st["peak_open"] = max(st["peak_open"], st["open"])
    try:
        async with sess.post(a.url, data=body, headers=headers) as r:
            rec["status"] = r.status
            rec["headers_s"] = time.perf_counter() - t0
            buf = bytearray()
            first = last = None
            gap = 0.0
            async for chunk in r.content.iter_any():
                now = time.perf_counter()
                if first is None:
                    first = now
                else:
                    gap = max(gap, now - last)
                last = now
                buf += chunk
                st["events"] += chunk.count(b"data: ")
            t1 = time.perf_counter()
            rec.update(ttfb_s=None if first is None else first - t0, total_s=t1 - t0, max_gap_s=gap,
                       events=buf.count(b"data: "),
                       ok=r.status == 200 and first is not None and buf.rstrip().endswith(b"data: [DONE]"))
            if not rec["ok"] and st["shown"] < 3:
                st["shown"] += 1
                print("bad stream:", r.status, bytes(buf[-300:]), flush=True)
    except Exception as e:  # noqa: BLE001
        rec["error"] = repr(e)
        if st["shown"] < 3:
            st["shown"] += 1
            print("stream error:", repr(e), flush=True)
    finally:
        st["open"] -= 1
    return rec


async def progress(st, t0, every):
    while True:
        await asyncio.sleep(every)
        print(f"  t={time.monotonic() - t0:5.0f}s open={st['open']} events={st['events']}", flush=True)


async def run(a):
    body = open(a.body, "rb").read()
    headers = {"Content-Type": "application/json"}
    for h in a.header:
        k, v = h.split(":", 1)
        headers[k.strip()] = v.strip()
    st = {"open": 0, "peak_open": 0, "events": 0, "shown": 0}
    conn = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=a.timeout)
    t0 = time.monotonic()
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as sess:
        prog = asyncio.create_task(progress(st, t0, a.progress))
        recs = await asyncio.gather(*[one(sess, a, body, headers, a.ramp * i / a.streams, st)
                                      for i in range(a.streams)])
        prog.cancel()
    wall = time.monotonic() - t0
    ok = [r for r in recs if r["ok"]]
    ms = lambda v: None if v is None else round(v * 1000, 2)  # noqa: E731
    out = dict(
        name=a.name, streams=a.streams, ramp_s=a.ramp, wall_s=round(wall, 1), completed=len(ok),
        failed=len(recs) - len(ok), peak_open=st["peak_open"],
        statuses={str(s): sum(1 for r in recs if r.get("status") == s) for s in {r.get("status") for r in recs}},
        errors=sorted({r["error"] for r in recs if "error" in r})[:5],
        events=sum(r.get("events", 0) for r in recs),
        events_per_stream_min=min((r["events"] for r in ok), default=None),
        events_per_stream_max=max((r["events"] for r in ok), default=None),
        headers_p50_ms=ms(pct([r["headers_s"] for r in ok], 50)),
        headers_p99_ms=ms(pct([r["headers_s"] for r in ok], 99)),
        ttfb_p50_ms=ms(pct([r["ttfb_s"] for r in ok], 50)),
        ttfb_p99_ms=ms(pct([r["ttfb_s"] for r in ok], 99)),
        ttfb_max_ms=ms(max((r["ttfb_s"] for r in ok), default=None)),
        total_p50_s=round(pct([r["total_s"] for r in ok], 50) or 0, 3),
        total_max_s=round(max((r["total_s"] for r in ok), default=0), 3),
        max_gap_p99_ms=ms(pct([r["max_gap_s"] for r in ok], 99)),
        max_gap_max_ms=ms(max((r["max_gap_s"] for r in ok), default=None)),
    )
    with open(a.out, "w") as f:
        json.dump(out, f)
    print(f"{a.name}: {out['completed']}/{a.streams} completed, peak open {out['peak_open']}, "
          f"TTFB p50/p99 {out['ttfb_p50_ms']}/{out['ttfb_p99_ms']} ms, events {out['events']}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--body", required=True)
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--streams", type=int, default=2000)
    ap.add_argument("--ramp", type=float, default=5)
    ap.add_argument("--timeout", type=float, default=180)
    ap.add_argument("--progress", type=float, default=10)
    ap.add_argument("--out", required=True)
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
