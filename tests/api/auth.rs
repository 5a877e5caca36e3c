//! TC3 signature checks as the hub applies them.

use eddy::client::Credentials;
use serde_json::json;

use crate::support::{Hub, create_product, error_code, now, raw_request, signed_headers, workdir};

#[tokio::test]
async fn signature_failures_get_tencents_codes() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let good = hub.credentials();
    let params = json!({ "Offset": 0, "Limit": 10 });

    // A signed request works…
    hub.client()
        .call("DescribeProducts", &params)
        .await
        .unwrap();

    // …the right SecretId with the wrong key does not.
    let wrong_key = hub.client_with(Credentials::new(good.secret_id.clone(), "not-the-key"));
    let res = wrong_key.call("DescribeProducts", &params).await;
    assert_eq!(error_code(res), "AuthFailure.SignatureFailure");

    // An unknown SecretId.
    let unknown = hub.client_with(Credentials::new("AKIDnobody", "whatever"));
    let res = unknown.call("DescribeProducts", &params).await;
    assert_eq!(error_code(res), "AuthFailure.SecretIdNotFound");

    // Timestamps more than five minutes off, either way.
    let api = hub.client();
    for skew in [-600, 600] {
        let res = api.call_at("DescribeProducts", &params, now() + skew).await;
        assert_eq!(
            error_code(res),
            "AuthFailure.SignatureExpire",
            "skew {skew}"
        );
    }
    // Within the window is fine.
    api.call_at("DescribeProducts", &params, now() - 120)
        .await
        .unwrap();
}

#[tokio::test]
async fn tampering_and_missing_headers_are_refused() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let creds = hub.credentials();
    let url = format!("{}/", hub.endpoint);
    let body = br#"{"Offset":0,"Limit":10}"#.to_vec();
    let headers = signed_headers(&hub.endpoint, &creds, "DescribeProducts", &body, now());

    let ok = raw_request(reqwest::Method::POST, &url, &headers, body.clone()).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["Response"]["TotalCount"], 0, "{}", ok.body);

    // The body changed after signing.
    let tampered = raw_request(
        reqwest::Method::POST,
        &url,
        &headers,
        br#"{"Offset":0,"Limit":11}"#.to_vec(),
    )
    .await;
    assert_eq!(tampered.error_code(), "AuthFailure.SignatureFailure");

    // The action changed after signing is not covered by the signature (Tencent signs
    // content-type;host only), but the Host header is.
    let mut other_host = headers.clone();
    other_host[0].1 = "evil.example:1".into();
    let res = raw_request(reqwest::Method::POST, &url, &other_host, body.clone()).await;
    assert_eq!(res.error_code(), "AuthFailure.SignatureFailure");

    // No Authorization header at all.
    let unsigned: Vec<_> = headers
        .iter()
        .filter(|(k, _)| k != "Authorization")
        .cloned()
        .collect();
    let res = raw_request(reqwest::Method::POST, &url, &unsigned, body.clone()).await;
    assert_eq!(res.error_code(), "AuthFailure.InvalidAuthorization");
    assert_eq!(res.status, 200);
    assert_eq!(res.content_type, "application/json");

    // A garbled Authorization header.
    let mut garbled = headers.clone();
    garbled[2].1 = "TC3-HMAC-SHA256 Credential=x".into();
    let res = raw_request(reqwest::Method::POST, &url, &garbled, body.clone()).await;
    assert_eq!(res.error_code(), "AuthFailure.InvalidAuthorization");

    // Missing timestamp / version / action.
    for (header, code) in [
        ("X-TC-Timestamp", "MissingParameter"),
        ("X-TC-Version", "MissingParameter"),
        ("X-TC-Action", "MissingParameter"),
    ] {
        let without: Vec<_> = headers
            .iter()
            .filter(|(k, _)| k != header)
            .cloned()
            .collect();
        let res = raw_request(reqwest::Method::POST, &url, &without, body.clone()).await;
        assert_eq!(res.error_code(), code, "without {header}");
    }
    let mut old_version = headers.clone();
    old_version[4].1 = "2018-06-14".into();
    let res = raw_request(reqwest::Method::POST, &url, &old_version, body.clone()).await;
    assert_eq!(res.error_code(), "NoSuchVersion");

    // The credential date must be the timestamp's date.
    let mut mismatched = headers.clone();
    mismatched[2].1 = mismatched[2].1.replacen("/20", "/19", 1);
    let res = raw_request(reqwest::Method::POST, &url, &mismatched, body).await;
    assert_eq!(res.error_code(), "AuthFailure.InvalidAuthorization");
}

#[tokio::test]
async fn signed_get_requests_with_query_parameters() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let creds = hub.credentials();
    let api = hub.client();
    let pid = create_product(&api, "getter", "2").await;
    for name in ["a", "b"] {
        api.call(
            "CreateDevice",
            &json!({ "ProductId": pid, "DeviceName": name }),
        )
        .await
        .unwrap();
    }

    // Tencent's GET form: parameters in the query, signed as the canonical query string,
    // an empty body, Content-Type application/x-www-form-urlencoded.
    use eddy_core::secret::ExposeSecret;
    let query = format!("DeviceNames.0=a&DeviceNames.1=b&ProductId={pid}&Status=0");
    let host = hub.endpoint.trim_start_matches("http://").to_owned();
    let ts = now();
    let date = eddy_api::tc3::date_of(ts).unwrap();
    let ct = "application/x-www-form-urlencoded";
    let canonical = eddy_api::tc3::canonical_request(
        "GET",
        &query,
        &[("content-type", ct), ("host", &host)],
        &eddy_api::tc3::sha256_hex(b""),
    );
    let to_sign = eddy_api::tc3::string_to_sign(ts, &date, "iotcloud", &canonical);
    let sig = eddy_api::tc3::signature(
        creds.secret_key.expose_secret(),
        &date,
        "iotcloud",
        &to_sign,
    );
    let headers = vec![
        ("Host".to_owned(), host),
        ("Content-Type".to_owned(), ct.to_owned()),
        (
            "Authorization".to_owned(),
            format!(
                "TC3-HMAC-SHA256 Credential={}/{date}/iotcloud/tc3_request, SignedHeaders=content-type;host, Signature={sig}",
                creds.secret_id
            ),
        ),
        (
            "X-TC-Action".to_owned(),
            "UpdateDevicesEnableState".to_owned(),
        ),
        ("X-TC-Version".to_owned(), "2021-04-08".to_owned()),
        ("X-TC-Timestamp".to_owned(), ts.to_string()),
    ];
    let res = raw_request(
        reqwest::Method::GET,
        &format!("{}/?{query}", hub.endpoint),
        &headers,
        Vec::new(),
    )
    .await;
    assert!(res.body["Response"]["Error"].is_null(), "{}", res.body);
    for name in ["a", "b"] {
        let d = api
            .call(
                "DescribeDevice",
                &json!({ "ProductId": pid, "DeviceName": name }),
            )
            .await
            .unwrap();
        assert_eq!(d["EnableState"], 0);
    }
}
