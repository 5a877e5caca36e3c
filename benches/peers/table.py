"""Markdown tables from eddy-bench's JSON reports (one per line, tagged with broker and
label by benches/peers/run.sh): medians per scenario and broker, Eddy/peer ratios, and the
count check of every run."""

import json
import statistics
import sys

strict = "--strict" in sys.argv[1:]
path = [a for a in sys.argv[1:] if a != "--strict"][0]
# Runs made only to profile Eddy are not part of the table.
rows = [json.loads(line) for line in open(path) if line.strip()]
rows = [r for r in rows if not r["label"].startswith("perf")]
med = statistics.median


def groups(pred):
    out = {}
    for r in rows:
        if pred(r):
            out.setdefault(r["label"], {}).setdefault(r["broker"], []).append(r)
    return out


def fmt(x, digits=0):
    return f"{x:,.{digits}f}" if x is not None else "—"


messages = groups(lambda r: "sent" in r and "latency_ms" in r and not r["label"].startswith("rules"))
if messages:
    print("| scenario | broker | in msg/s | out msg/s | lost (of expected) | dup | p50 ms | p99 ms | CPU % | RSS MiB | count check | Eddy / peer (out) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for label, by in messages.items():
    eddy = med([r["out_per_s"] for r in by["eddy"]]) if "eddy" in by else None
    for broker, rs in by.items():
        out = med([r["out_per_s"] for r in rs])
        lost = sum(r["lost"] for r in rs)
        expected = sum(r["expected"] for r in rs)
        share = f"{lost:,} ({100 * lost / expected:.2f} %)" if expected else "—"
        checks = {r["count_check"] for r in rs}
        ratio = "" if broker == "eddy" or eddy is None or not out else f"{eddy / out:.2f}×"
        print(
            f"| {label} | {broker} | {fmt(med([r['in_per_s'] for r in rs]))} | {fmt(out)} | {share} "
            f"| {sum(r['duplicates'] for r in rs)} | {med([r['latency_ms']['p50'] for r in rs]):.2f} "
            f"| {med([r['latency_ms']['p99'] for r in rs]):.2f} | {fmt(med([r['broker_cpu_percent'] or 0 for r in rs]))} "
            f"| {fmt(med([(r['broker_rss_kb'] or 0) / 1024 for r in rs]))} | {'/'.join(sorted(checks))} ({len(rs)} runs) | {ratio} |"
        )

connects = groups(lambda r: r.get("scenario") == "connect")
if connects:
    print("\n| connect storm | broker | connects/s | failed | p50 ms | p99 ms | Eddy / peer |")
    print("|---|---|---|---|---|---|---|")
    for label, by in connects.items():
        eddy = med([r["connects_per_s"] for r in by["eddy"]]) if "eddy" in by else None
        for broker, rs in by.items():
            cps = med([r["connects_per_s"] for r in rs])
            ratio = "" if broker == "eddy" or eddy is None or not cps else f"{eddy / cps:.2f}×"
            print(
                f"| {label} | {broker} | {fmt(cps)} | {sum(r['failed'] for r in rs)} "
                f"| {med([r['latency_ms']['p50'] for r in rs]):.2f} | {med([r['latency_ms']['p99'] for r in rs]):.2f} | {ratio} |"
            )

idle = [r for r in rows if r.get("scenario") == "idle"]
if idle:
    print("\n| idle connections | broker | asked | open | failed | RSS before MiB | RSS after MiB | bytes per connection |")
    print("|---|---|---|---|---|---|---|---|")
    for r in idle:
        per = r["broker_bytes_per_connection"]
        print(
            f"| {r['label']} | {r['broker']} | {r['clients']:,} | {r['open']:,} | {r['failed']:,} "
            f"| {fmt((r['broker_rss_kb_before'] or 0) / 1024, 1)} | {fmt((r['broker_rss_kb_after'] or 0) / 1024, 1)} "
            f"| {fmt(per)} |"
        )

rules = groups(lambda r: r["label"].startswith("rules"))
if rules:
    print("\n| Eddy, rule pipeline | out msg/s | lost | p50 ms | p99 ms | CPU % | count check | on / off |")
    print("|---|---|---|---|---|---|---|---|")
    off = None
    for label, by in rules.items():
        rs = by.get("eddy", [])
        out = med([r["out_per_s"] for r in rs])
        off = out if label.startswith("rules off") else off
        ratio = f"{out / off:.0%}" if off and not label.startswith("rules off") else ""
        print(
            f"| {label} | {fmt(out)} | {sum(r['lost'] for r in rs):,} | {med([r['latency_ms']['p50'] for r in rs]):.2f} "
            f"| {med([r['latency_ms']['p99'] for r in rs]):.2f} | {fmt(med([r['broker_cpu_percent'] or 0 for r in rs]))} "
            f"| {'/'.join(sorted({r['count_check'] for r in rs}))} | {ratio} |"
        )

kafka = [r for r in rows if r.get("scenario") == "kafka"]
if kafka:
    print("\n| Eddy, MQTT → rule → Kafka | published | delivered to Kafka | failed | seconds | rows/s into Kafka |")
    print("|---|---|---|---|---|---|")
    for r in kafka:
        print(
            f"| fan-in QoS 0 JSON → `SELECT * … WHERE` → ckafka | {r['sent']:,} | {r['delivered_to_kafka']:,.0f} "
            f"| {r['failed_rows']:,.0f} | {r['seconds']:.1f} | {fmt(r['kafka_rows_per_s'])} |"
        )

# A run is bad when its count does not add up, a client failed, or nothing got through.
bad = [
    r for r in rows
    if r.get("count_check", "ok") != "ok" or r.get("errors") or r.get("failed")
    or r.get("received", 1) == 0 or r.get("connected", 1) == 0 or r.get("delivered_to_kafka", 1) == 0
]
for r in bad:
    print(
        f"run with a problem: {r['broker']} / {r['label']}: check {r.get('count_check')}, "
        f"errors {r.get('errors') or r.get('first_error')}",
        file=sys.stderr,
    )
sys.exit(1 if strict and bad else 0)
