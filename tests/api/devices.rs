use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::support::{Hub, create_product, error_code, workdir};

/// The fields and JSON types of Tencent's `DescribeDevice` / `DeviceInfo`.
const INT_FIELDS: &[&str] = &[
    "Online",
    "LoginTime",
    "LastUpdateTime",
    "DeviceType",
    "Isp",
    "ConnIP",
    "LoraMoteType",
    "LogLevel",
    "FirstOnlineTime",
    "LastOfflineTime",
    "CreateTime",
    "CertState",
    "EnableState",
    "FirmwareUpdateTime",
    "CreateUserId",
];
const STR_FIELDS: &[&str] = &[
    "DeviceName",
    "Version",
    "DeviceCert",
    "DevicePsk",
    "Imei",
    "NbiotDeviceID",
    "LoraDevEui",
    "ClientIP",
    "NBIoTDeviceID",
];

fn assert_device_shape(d: &Value) {
    for f in INT_FIELDS {
        assert!(d[f].is_i64(), "{f} must be an integer in {d}");
    }
    for f in STR_FIELDS {
        assert!(d[f].is_string(), "{f} must be a string in {d}");
    }
    assert!(d["Tags"].is_array() && d["Labels"].is_array(), "{d}");
}

#[tokio::test]
async fn psk_device_lifecycle() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let api = hub.client();
    let pid = create_product(&api, "meters", "2").await;

    let created = api
        .call(
            "CreateDevice",
            &json!({ "ProductId": pid, "DeviceName": "m-1" }),
        )
        .await
        .unwrap();
    assert_eq!(created["DeviceName"], "m-1");
    let psk = created["DevicePsk"].as_str().unwrap().to_owned();
    assert_eq!(
        BASE64.decode(&psk).unwrap().len(),
        16,
        "a 16-byte random PSK"
    );
    assert_eq!(created["DeviceCert"], "");
    assert_eq!(created["DevicePrivateKey"], "");

    let described = api
        .call(
            "DescribeDevice",
            &json!({ "ProductId": pid, "DeviceName": "m-1" }),
        )
        .await
        .unwrap();
    assert_device_shape(&described);
    assert_eq!(described["DevicePsk"], psk.as_str());
    assert_eq!(described["Online"], 3, "never connected: inactive");
    assert_eq!(described["EnableState"], 1);
    assert!(described["CreateTime"].as_i64().unwrap() > 1_600_000_000);

    // DefinedPsk is kept as given.
    let defined = BASE64.encode(b"0123456789abcdef");
    let created = api
        .call(
            "CreateDevice",
            &json!({ "ProductId": pid, "DeviceName": "m-2", "DefinedPsk": defined }),
        )
        .await
        .unwrap();
    assert_eq!(created["DevicePsk"], defined.as_str());
    let bad_psk = api
        .call(
            "CreateDevice",
            &json!({ "ProductId": pid, "DeviceName": "m-3", "DefinedPsk": "not base64!" }),
        )
        .await;
    assert_eq!(error_code(bad_psk), "InvalidParameterValue");

    // Duplicate and malformed names.
    let dup = api
        .call(
            "CreateDevice",
            &json!({ "ProductId": pid, "DeviceName": "m-1" }),
        )
        .await;
    assert_eq!(error_code(dup), "InvalidParameterValue.DeviceAlreadyExist");
    let bad_name = api
        .call(
            "CreateDevice",
            &json!({ "ProductId": pid, "DeviceName": "a/b" }),
        )
        .await;
    assert_eq!(error_code(bad_name), "InvalidParameterValue");
    let too_long = api
        .call(
            "CreateDevice",
            &json!({ "ProductId": pid, "DeviceName": "x".repeat(49) }),
        )
        .await;
    assert_eq!(error_code(too_long), "InvalidParameterValue");
    let no_product = api
        .call(
            "CreateDevice",
            &json!({ "ProductId": "ZZZZZZZZZZ", "DeviceName": "m-1" }),
        )
        .await;
    assert_eq!(error_code(no_product), "ResourceNotFound.ProductNotExist");

    // Disable / enable, all or nothing.
    api.call(
        "UpdateDevicesEnableState",
        &json!({ "ProductId": pid, "DeviceNames": ["m-1", "m-2"], "Status": 0 }),
    )
    .await
    .unwrap();
    let d = api
        .call(
            "DescribeDevice",
            &json!({ "ProductId": pid, "DeviceName": "m-2" }),
        )
        .await
        .unwrap();
    assert_eq!(d["EnableState"], 0);
    let partial = api
        .call(
            "UpdateDevicesEnableState",
            &json!({ "ProductId": pid, "DeviceNames": ["m-1", "ghost"], "Status": 1 }),
        )
        .await;
    assert_eq!(error_code(partial), "ResourceNotFound.DeviceNotExist");
    let d = api
        .call(
            "DescribeDevice",
            &json!({ "ProductId": pid, "DeviceName": "m-1" }),
        )
        .await
        .unwrap();
    assert_eq!(d["EnableState"], 0, "a failed batch changes nothing");
    let disabled = api
        .call(
            "DescribeDevices",
            &json!({ "ProductId": pid, "Offset": 0, "Limit": 10, "EnableState": 0 }),
        )
        .await
        .unwrap();
    assert_eq!(disabled["TotalCount"], 2);

    // PSK rotation.
    let new_psk = BASE64.encode([7u8; 16]);
    api.call(
        "UpdateDevicePSK",
        &json!({ "ProductId": pid, "DeviceName": "m-1", "Psk": new_psk }),
    )
    .await
    .unwrap();
    let d = api
        .call(
            "DescribeDevice",
            &json!({ "ProductId": pid, "DeviceName": "m-1" }),
        )
        .await
        .unwrap();
    assert_eq!(d["DevicePsk"], new_psk.as_str());

    // Reset reports per device.
    let reset = api
        .call(
            "ResetDeviceState",
            &json!({ "ProductId": pid, "DeviceNames": ["m-1", "ghost"] }),
        )
        .await
        .unwrap();
    assert_eq!(reset["SuccessCount"], 1);
    assert_eq!(reset["ResetDeviceResults"][0]["Success"], true);
    assert_eq!(reset["ResetDeviceResults"][1]["DeviceName"], "ghost");
    assert_eq!(reset["ResetDeviceResults"][1]["Success"], false);

    // A product with devices cannot be deleted; after its devices go, it can.
    let busy = api
        .call("DeleteProduct", &json!({ "ProductId": pid }))
        .await;
    assert_eq!(
        error_code(busy),
        "UnauthorizedOperation.DevicesExistUnderProduct"
    );
    for name in ["m-1", "m-2"] {
        api.call(
            "DeleteDevice",
            &json!({ "ProductId": pid, "DeviceName": name }),
        )
        .await
        .unwrap();
    }
    let gone = api
        .call(
            "DescribeDevice",
            &json!({ "ProductId": pid, "DeviceName": "m-1" }),
        )
        .await;
    assert_eq!(error_code(gone), "ResourceNotFound.DeviceNotExist");
    let gone = api
        .call(
            "DeleteDevice",
            &json!({ "ProductId": pid, "DeviceName": "m-1" }),
        )
        .await;
    assert_eq!(error_code(gone), "ResourceNotFound.DeviceNotExist");
    api.call("DeleteProduct", &json!({ "ProductId": pid }))
        .await
        .unwrap();
}

#[tokio::test]
async fn device_pagination_and_filters() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let api = hub.client();
    let pid = create_product(&api, "fleet", "2").await;
    for i in 0..25 {
        api.call(
            "CreateDevice",
            &json!({ "ProductId": pid, "DeviceName": format!("car_{i:02}") }),
        )
        .await
        .unwrap();
    }
    let mut seen = BTreeSet::new();
    let mut page_sizes = Vec::new();
    for offset in [0, 10, 20] {
        let page = api
            .call(
                "DescribeDevices",
                &json!({ "ProductId": pid, "Offset": offset, "Limit": 10 }),
            )
            .await
            .unwrap();
        assert_eq!(page["TotalCount"], 25);
        let devices = page["Devices"].as_array().unwrap();
        page_sizes.push(devices.len());
        for d in devices {
            assert_device_shape(d);
            assert!(seen.insert(d["DeviceName"].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(page_sizes, [10, 10, 5]);
    assert_eq!(seen.len(), 25);

    // Name filter matches substrings, with `_` taken literally.
    let filtered = api
        .call(
            "DescribeDevices",
            &json!({ "ProductId": pid, "Offset": 0, "Limit": 50, "DeviceName": "r_1" }),
        )
        .await
        .unwrap();
    assert_eq!(filtered["TotalCount"], 10, "car_10 … car_19");
    let none = api
        .call(
            "DescribeDevices",
            &json!({ "ProductId": pid, "Offset": 0, "Limit": 50, "DeviceName": "%" }),
        )
        .await
        .unwrap();
    assert_eq!(none["TotalCount"], 0);
    let no_version = api
        .call(
            "DescribeDevices",
            &json!({ "ProductId": pid, "Offset": 0, "Limit": 10, "FirmwareVersion": "None-FirmwareVersion" }),
        )
        .await
        .unwrap();
    assert_eq!(no_version["TotalCount"], 25);

    for (limit, ok) in [(0, false), (1, true), (250, true), (251, false)] {
        let res = api
            .call(
                "DescribeDevices",
                &json!({ "ProductId": pid, "Offset": 0, "Limit": limit }),
            )
            .await;
        assert_eq!(res.is_ok(), ok, "Limit {limit}");
    }
    let negative = api
        .call(
            "DescribeDevices",
            &json!({ "ProductId": pid, "Offset": -1, "Limit": 10 }),
        )
        .await;
    assert_eq!(error_code(negative), "InvalidParameterValue");
}

#[tokio::test]
async fn certificate_devices_get_a_certificate_and_key() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let api = hub.client();
    let pid = create_product(&api, "cams", "1").await;
    let created = api
        .call(
            "CreateDevice",
            &json!({ "ProductId": pid, "DeviceName": "cam1" }),
        )
        .await
        .unwrap();
    assert_eq!(created["DevicePsk"], "");
    let cert_pem = created["DeviceCert"].as_str().unwrap();
    let key_pem = created["DevicePrivateKey"].as_str().unwrap();
    assert!(
        cert_pem.starts_with("-----BEGIN CERTIFICATE-----"),
        "{cert_pem}"
    );
    assert!(key_pem.contains("PRIVATE KEY-----"), "a PEM private key");

    // The certificate names the device and carries the returned key's public half.
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let cn = cert.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), format!("{pid}cam1"));
    let key = rcgen::KeyPair::from_pem(key_pem).unwrap();
    assert_eq!(
        cert.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
    );

    let described = api
        .call(
            "DescribeDevice",
            &json!({ "ProductId": pid, "DeviceName": "cam1" }),
        )
        .await
        .unwrap();
    assert_device_shape(&described);
    assert_eq!(described["DeviceCert"], cert_pem);
    assert_eq!(described["DevicePsk"], "");
    assert_eq!(described["CertState"], 1);

    // Key-only operations are refused on certificate products.
    let defined = api
        .call(
            "CreateDevice",
            &json!({ "ProductId": pid, "DeviceName": "cam2", "DefinedPsk": BASE64.encode(b"k") }),
        )
        .await;
    assert_eq!(
        error_code(defined),
        "UnauthorizedOperation.ProductNotSupportPSK"
    );
    let rotate = api
        .call(
            "UpdateDevicePSK",
            &json!({ "ProductId": pid, "DeviceName": "cam1", "Psk": BASE64.encode(b"k") }),
        )
        .await;
    assert_eq!(
        error_code(rotate),
        "UnauthorizedOperation.ProductNotSupportPSK"
    );
}
