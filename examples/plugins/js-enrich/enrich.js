// js-enrich — an example Eddy destination plugin, built with jco / ComponentizeJS.
//
// Configuration: {"topic": "<topic>"}. For every row of a batch it publishes, with QoS 1,
// {"id": <row id>, "by": "javascript", "row": <the row as JSON, or null when it is not JSON>}
// to `topic`, all rows in one `mqtt.publish` call. The Rust and Python examples next to
// this one do exactly the same.
//
// How jco maps the `destination` world of sdk-wit/wit/plugin.wit:
// * the world's exported functions `configure` and `deliver` are this module's exports;
// * a WIT `result<_, E>` is returned by returning normally (ok) or throwing E itself (err):
//   a string for `configure`, a `delivery-error` variant object for `deliver` (an object
//   with a `payload` property also works: its payload is E; a thrown `Error` traps);
// * imported interfaces are ES modules named by their WIT name
//   (`eddy:plugin/mqtt@0.1.0`…); an imported function returning a `result` throws on `err`,
//   with the error value in the exception's `payload`;
// * variants are `{ tag: 'kebab-name', val }`, enums are strings, records are objects with
//   camelCase fields, `list<u8>` is a Uint8Array, `u64` is a BigInt;
// * the imported resource `batch` arrives as an object whose methods call the host
//   (`rows()`, `metas()`, …). It is only borrowed for the call: do not keep it.

import { log } from 'eddy:plugin/log@0.1.0';
import { counterAdd } from 'eddy:plugin/metrics@0.1.0';
import { publish } from 'eddy:plugin/mqtt@0.1.0';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

let topic = null;

export function configure(config) {
  let parsed;
  try {
    parsed = JSON.parse(config);
  } catch (e) {
    throw `js-enrich configuration: ${e}`;
  }
  const t = parsed !== null && typeof parsed === 'object' ? parsed.topic : undefined;
  if (typeof t !== 'string' || t === '') {
    throw 'js-enrich configuration: "topic" (a non-empty string) is required';
  }
  topic = t;
}

function deliveryError(tag, val) {
  return { tag, val };
}

export function deliver(batch) {
  if (topic === null) {
    throw deliveryError('permanent', 'deliver called before configure');
  }
  const rows = batch.rows();
  const metas = batch.metas();
  const messages = [];
  for (let i = 0; i < rows.length; i++) {
    const meta = metas[i];
    let row = null;
    if (meta.json) {
      try {
        row = JSON.parse(decoder.decode(rows[i]));
      } catch (e) {
        throw deliveryError('permanent', `row ${meta.id}: not JSON: ${e}`);
      }
    }
    const out = { id: meta.id, by: 'javascript', row };
    messages.push({ topic, payload: encoder.encode(JSON.stringify(out)), qos: 1 });
  }
  if (messages.length > 0) {
    try {
      publish(messages);
    } catch (e) {
      const error = e && e.payload !== undefined ? e.payload : e;
      const why = error && error.val !== undefined ? error.val : String(error);
      switch (error && error.tag) {
        case 'unavailable':
          throw deliveryError('retry', why);
        case 'permission-denied':
          throw deliveryError('permanent', `permission denied: ${why}`);
        default:
          throw deliveryError('permanent', `invalid: ${why}`);
      }
    }
  }
  counterAdd('rows', BigInt(rows.length));
  log('info', `js-enrich: published ${rows.length} rows to ${topic}`);
}
