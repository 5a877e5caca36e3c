//! Bad input gets Tencent's error envelope, naming the problem — never a 500 or an empty body.

use serde_json::json;

use crate::support::{Hub, error_of, now, raw_request, signed_headers, signed_headers_as, workdir};

#[tokio::test]
async fn malformed_bodies_get_a_clear_envelope() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let creds = hub.credentials();
    let url = format!("{}/", hub.endpoint);

    for (body, needle) in [
        (&b"{\"ProductName\": "[..], "not valid JSON"),
        (&b"[1, 2, 3]"[..], "must be a JSON object"),
        (&b"\xff\xfe"[..], "not valid JSON"),
    ] {
        let headers = signed_headers(&hub.endpoint, &creds, "CreateProduct", body, now());
        let res = raw_request(reqwest::Method::POST, &url, &headers, body.to_vec()).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.content_type, "application/json");
        assert_eq!(res.error_code(), "InvalidParameter");
        assert!(res.error_message().contains(needle), "{}", res.body);
        assert!(res.body["Response"]["RequestId"].as_str().unwrap().len() >= 32);
    }

    // A POST that is not JSON (correctly signed as such).
    let body = b"Offset=0".to_vec();
    let headers = signed_headers_as(
        &hub.endpoint,
        &creds,
        "DescribeProducts",
        &body,
        now(),
        "text/plain",
    );
    let res = raw_request(reqwest::Method::POST, &url, &headers, body).await;
    assert_eq!(res.error_code(), "UnsupportedProtocol");
    assert!(
        res.error_message().contains("application/json"),
        "{}",
        res.body
    );

    // A body over the limit is refused before anything else.
    let huge = vec![b' '; eddy_api::MAX_BODY_BYTES + 1];
    let headers = signed_headers(&hub.endpoint, &creds, "DescribeProducts", &huge, now());
    let res = raw_request(reqwest::Method::POST, &url, &headers, huge).await;
    assert_eq!(res.error_code(), "RequestSizeLimitExceeded");

    // Other methods and paths.
    let res = raw_request(reqwest::Method::PUT, &url, &[], Vec::new()).await;
    assert_eq!(res.error_code(), "UnsupportedRequestMethod");
    let res = raw_request(
        reqwest::Method::POST,
        &format!("{}/v2/things", hub.endpoint),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(res.status, 404);
    assert_eq!(res.content_type, "application/json");
    assert_eq!(res.error_code(), "ResourceNotFound");
}

#[tokio::test]
async fn parameters_are_checked_by_name_and_type() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let api = hub.client();

    let (code, message) = error_of(api.call("DescribeEverything", &json!({})).await);
    assert_eq!(code, "InvalidAction");
    assert!(message.contains("DescribeEverything"), "{message}");

    let (code, message) = error_of(api.call("CreateProduct", &json!({})).await);
    assert_eq!(code, "MissingParameter");
    assert!(message.contains("`ProductName`"), "{message}");

    let (code, message) = error_of(
        api.call("CreateProduct", &json!({ "ProductName": 42 }))
            .await,
    );
    assert_eq!(code, "InvalidParameterValue");
    assert!(
        message.contains("`ProductName`") && message.contains("string"),
        "{message}"
    );

    let (code, message) = error_of(
        api.call(
            "CreateProduct",
            &json!({ "ProductName": "p", "ProductProperties": { "EncryptionType": 2 } }),
        )
        .await,
    );
    assert_eq!(code, "InvalidParameterValue");
    assert!(
        message.contains("`ProductProperties.EncryptionType`"),
        "{message}"
    );

    let (code, message) = error_of(
        api.call(
            "CreateProduct",
            &json!({ "ProductName": "p", "ProductProperties": { "EncryptionType": "3" } }),
        )
        .await,
    );
    assert_eq!(code, "InvalidParameterValue");
    assert!(message.contains("EncryptionType"), "{message}");

    let (code, message) = error_of(
        api.call("CreateProduct", &json!({ "ProductName": "bad name!" }))
            .await,
    );
    assert_eq!(code, "InvalidParameterValue");
    assert!(message.contains("`ProductName`"), "{message}");

    let (code, message) = error_of(
        api.call("DescribeProducts", &json!({ "Limit": 10, "Ofset": 0 }))
            .await,
    );
    assert_eq!(code, "UnknownParameter");
    assert!(message.contains("`Ofset`"), "{message}");

    let (code, message) = error_of(
        api.call(
            "UpdateDevicesEnableState",
            &json!({ "ProductId": "ABCDEFGHIJ", "DeviceNames": "d1", "Status": 1 }),
        )
        .await,
    );
    assert_eq!(code, "InvalidParameterValue");
    assert!(message.contains("`DeviceNames`"), "{message}");

    // Null counts as absent, as Tencent's SDKs send unset fields as null.
    let created = api
        .call(
            "CreateProduct",
            &json!({ "ProductName": "nulls", "Skey": null, "ProductProperties": { "EncryptionType": "2", "Region": null } }),
        )
        .await
        .unwrap();
    assert_eq!(created["ProductName"], "nulls");
}
