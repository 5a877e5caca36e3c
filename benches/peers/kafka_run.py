"""One MQTT → rule → Kafka run through Eddy (benches/peers/run.sh): eddy-bench publishes
JSON reports on benchk/in/N that a `SELECT * … WHERE` rule sends to a ckafka action; the
hub's `eddy_delivery_delivered_rows` metric (summed) says when the last row reached the
broker. Prints one JSON line: rows delivered per second from the first publish to the
last acknowledged record."""

import json
import re
import subprocess
import sys
import time
import urllib.request

bench, pid, duration, clients = sys.argv[1:5]
METRICS = "http://127.0.0.1:18880/metrics"


def metric(name):
    text = urllib.request.urlopen(METRICS, timeout=10).read().decode()
    pattern = re.compile(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


before = metric("eddy_delivery_delivered_rows_total")
failed_before = metric("eddy_delivery_failed_rows_total")
started = time.monotonic()
report = json.loads(
    subprocess.run(
        [bench, "--port", "18831", "--broker-pid", pid, "--json", "--scenario", "fan-in",
         "--clients", clients, "--qos", "0", "--json-payload", "--payload", "128",
         "--prefix", "benchk", "--duration", duration, "--drain", "10s"],
        check=True, capture_output=True, text=True,
    ).stdout
)
sent = report["sent"]
delivered = 0
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    delivered = metric("eddy_delivery_delivered_rows_total") - before
    if delivered >= sent:
        break
    time.sleep(0.2)
elapsed = time.monotonic() - started
print(json.dumps({
    "broker": "eddy", "label": "kafka", "scenario": "kafka",
    "sent": sent, "delivered_to_kafka": delivered,
    "failed_rows": metric("eddy_delivery_failed_rows_total") - failed_before,
    "seconds": elapsed, "kafka_rows_per_s": delivered / elapsed,
    "mqtt": report,
}))
