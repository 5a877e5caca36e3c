"""python-enrich — an example Eddy destination plugin, built with componentize-py.

Configuration: {"topic": "<topic>"}. For every row of a batch it publishes, with QoS 1,
{"id": <row id>, "by": "python", "row": <the row as JSON, or null when it is not JSON>}
to `topic`, all rows in one `mqtt.publish` call. The Rust and JavaScript examples next to
this one do exactly the same.

How componentize-py maps the `destination` world of sdk-wit/wit/plugin.wit:

* the world's exported functions `configure` and `deliver` are methods of a class named
  `WitWorld` that this module defines, subclassing the generated `wit_world.WitWorld`;
* a WIT `result<_, E>` is returned by returning normally (ok) or raising
  `componentize_py_types.Err(E)`;
* imported interfaces are modules: `wit_world.imports.mqtt`, `.log`, `.metrics`, `.types`;
* the imported resource `batch` arrives as a `types.Batch` object whose methods call the
  host (`rows()`, `metas()`, ...). It is only borrowed for the call: do not keep it.

The class may be instantiated per call, so state lives at module level.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import log, metrics, mqtt, types

_topic = None


class WitWorld(wit_world.WitWorld):
    def configure(self, config: str) -> None:
        global _topic
        try:
            parsed = json.loads(config)
        except ValueError as e:
            raise Err(f"python-enrich configuration: {e}")
        topic = parsed.get("topic") if isinstance(parsed, dict) else None
        if not isinstance(topic, str) or not topic:
            raise Err('python-enrich configuration: "topic" (a non-empty string) is required')
        _topic = topic

    def deliver(self, batch: types.Batch) -> None:
        if _topic is None:
            raise Err(types.DeliveryError_Permanent("deliver called before configure"))
        rows = batch.rows()
        metas = batch.metas()
        messages = []
        for payload, meta in zip(rows, metas):
            if meta.json:
                try:
                    row = json.loads(payload)
                except ValueError as e:
                    raise Err(types.DeliveryError_Permanent(f"row {meta.id}: not JSON: {e}"))
            else:
                row = None
            out = {"id": meta.id, "by": "python", "row": row}
            messages.append(
                mqtt.Message(
                    topic=_topic,
                    payload=json.dumps(out, separators=(",", ":")).encode(),
                    qos=1,
                )
            )
        if messages:
            try:
                mqtt.publish(messages)
            except Err as e:
                error = e.value
                if isinstance(error, types.ConnectorError_Unavailable):
                    raise Err(types.DeliveryError_Retry(error.value))
                if isinstance(error, types.ConnectorError_PermissionDenied):
                    raise Err(types.DeliveryError_Permanent(f"permission denied: {error.value}"))
                raise Err(types.DeliveryError_Permanent(f"invalid: {error.value}"))
        metrics.counter_add("rows", len(rows))
        log.log(log.Level.INFO, f"python-enrich: published {len(rows)} rows to {_topic}")
