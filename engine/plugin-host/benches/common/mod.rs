//! What the plugin-host benches deliver: a batch of N rule rows, each a 120-byte JSON
//! report from one device.

use eddy_core::destination::{Envelope, Row, RowMeta};

pub fn envelope(rows: usize) -> Envelope {
    Envelope {
        columns: vec!["temp".into(), "dev".into()],
        rows: (0..rows)
            .map(|i| Row {
                id: format!("0123456789abcdef-{i}"),
                payload: format!(
                    r#"{{"temp":{},"dev":"device-{:04}","humidity":50,"status":{{"switch":1}},"n":{i:08}}}"#,
                    20 + i % 10,
                    i % 1000
                )
                .into_bytes(),
                json: true,
                meta: RowMeta {
                    topic: "PRODUCT01/device-0001/event".into(),
                    product_id: "PRODUCT01".into(),
                    device_name: "device-0001".into(),
                    qos: 1,
                    seq: i as u64,
                    timestamp_ms: 1_700_000_000_000,
                },
            })
            .collect(),
    }
}
