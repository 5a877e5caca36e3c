//! State survives restarts, kill -9 included; secrets stay out of the log.

use std::os::unix::fs::PermissionsExt as _;

use eddy::client::Credentials;
use serde_json::json;

use crate::support::{Hub, create_device, create_product, workdir};

#[tokio::test]
async fn registry_survives_kill_9() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let creds_path = hub.data_dir.join("admin-credentials.json");
    let creds_before = std::fs::read_to_string(&creds_path).unwrap();
    let mode = std::fs::metadata(&creds_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "admin credentials must be private");
    let data_mode = std::fs::metadata(&hub.data_dir)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(data_mode & 0o077, 0, "the data dir must be private");

    let api = hub.client();
    let pid = create_product(&api, "durable", "2").await;
    let psk = create_device(&api, &pid, "d1").await["DevicePsk"]
        .as_str()
        .unwrap()
        .to_owned();
    api.call(
        "UpdateDevicesEnableState",
        &json!({ "ProductId": pid, "DeviceNames": ["d1"], "Status": 0 }),
    )
    .await
    .unwrap();
    api.call(
        "CreateTopicPolicy",
        &json!({ "ProductId": pid, "TopicName": "custom/x", "Privilege": 3 }),
    )
    .await
    .unwrap();
    // The last write was acknowledged; now the process dies without any shutdown.
    hub.kill9();

    let hub = Hub::start(dir.path());
    assert_eq!(
        std::fs::read_to_string(&creds_path).unwrap(),
        creds_before,
        "the admin key is kept across restarts"
    );
    let api = hub.client();
    let d = api
        .call(
            "DescribeDevice",
            &json!({ "ProductId": pid, "DeviceName": "d1" }),
        )
        .await
        .unwrap();
    assert_eq!(d["DevicePsk"], psk.as_str());
    assert_eq!(d["EnableState"], 0);
    let policies = api
        .call("DescribeTopicPolicies", &json!({ "ProductId": pid }))
        .await
        .unwrap();
    assert!(
        policies["TopicPolicies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["TopicName"] == format!("{pid}/${{deviceName}}/custom/x").as_str()),
        "{policies}"
    );

    // A lost credentials file is written again with the same key.
    drop(hub);
    std::fs::remove_file(&creds_path).unwrap();
    let hub = Hub::start(dir.path());
    assert_eq!(std::fs::read_to_string(&creds_path).unwrap(), creds_before);
    hub.client()
        .call("DescribeProduct", &json!({ "ProductId": pid }))
        .await
        .unwrap();
}

#[tokio::test]
async fn configured_admin_key_and_env_overrides() {
    let dir = workdir();
    // The key comes from the environment (EDDY_API__…); the config file has none.
    let hub = Hub::start_with(
        dir.path(),
        "",
        &[
            ("EDDY_API__ADMIN_SECRET_ID", "AKIDconfiguredadmin"),
            ("EDDY_API__ADMIN_SECRET_KEY", "configured-admin-secret-key"),
            ("EDDY_NOT_A_SETTING", "1"),
        ],
    );
    assert!(
        hub.log().contains("EDDY_NOT_A_SETTING"),
        "a stray EDDY_ variable is reported, not silently dropped:\n{}",
        hub.log()
    );
    assert!(
        !hub.data_dir.join("admin-credentials.json").exists(),
        "no key is generated when one is configured"
    );
    let api = hub.client_with(Credentials::new(
        "AKIDconfiguredadmin",
        "configured-admin-secret-key",
    ));
    api.call("DescribeProducts", &json!({})).await.unwrap();
    drop(hub);

    // Only one half of the pair is a configuration error, not a silent fallback.
    let mut command = std::process::Command::new(crate::support::eddy_bin());
    command
        .args(["serve", "--config"])
        .arg(dir.path().join("eddy.toml"))
        .env("EDDY_API__ADMIN_SECRET_ID", "AKIDonlyhalf");
    let out = crate::support::output_within(command);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("admin-secret-id and api.admin-secret-key"),
        "{stderr}"
    );
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let creds = hub.credentials();
    let api = hub.client();
    let product = api
        .call(
            "CreateProduct",
            &json!({ "ProductName": "quiet", "ProductProperties": { "EncryptionType": "2" } }),
        )
        .await
        .unwrap();
    let pid = product["ProductId"].as_str().unwrap().to_owned();
    let product_secret = product["ProductProperties"]["ProductSecret"]
        .as_str()
        .unwrap()
        .to_owned();
    let psk = create_device(&api, &pid, "d").await["DevicePsk"]
        .as_str()
        .unwrap()
        .to_owned();
    let cert_pid = create_product(&api, "quiet-cert", "1").await;
    let key = create_device(&api, &cert_pid, "c").await["DevicePrivateKey"]
        .as_str()
        .unwrap()
        .to_owned();
    // A failing call with a secret in its body must not echo it either.
    let _ = api
        .call(
            "UpdateDevicePSK",
            &json!({ "ProductId": pid, "DeviceName": "ghost", "Psk": "c2VjcmV0LXBzay12YWx1ZQ==" }),
        )
        .await;
    drop(hub); // flush and stop

    let log = std::fs::read_to_string(dir.path().join(format!("hub-{}.log", std::process::id())))
        .unwrap();
    assert!(
        log.contains("api ok"),
        "the hub logged at debug level:\n{log}"
    );
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    use eddy_core::secret::ExposeSecret;
    for (what, secret) in [
        ("admin secret key", creds.secret_key.expose_secret()),
        ("product secret", product_secret.as_str()),
        ("device PSK", psk.as_str()),
        ("device private key", key_body.as_str()),
        ("rejected PSK", "c2VjcmV0LXBzay12YWx1ZQ=="),
    ] {
        assert!(
            !log.contains(secret),
            "the {what} appears in the log:\n{log}"
        );
    }
}
