//! Dynamic registration end to end (Tencent §8): the signatures computed here as
//! Tencent's device SDKs compute them (Python/Java: `/device/register`; C: the legacy
//! `/register/dev`), the answer decrypted with AES-128-CBC (key: the first 16 bytes of
//! the product secret, IV: sixteen '0'), and the returned PSK used to connect. Refusals:
//! bad signature, replayed nonce, stale timestamp, registration off, pre-created mode
//! without the device, the register limit, an activated device.

use aes::cipher::{BlockDecryptMut as _, KeyIvInit as _, block_padding::NoPadding};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::device::TestDevice;
use crate::support::{self, Hub};
use crate::{NO_CONNECT_INTERVAL, connected, fresh};

/// What a registration answered: the decrypted credentials, or the error code.
type Answer = Result<Value, String>;

struct Registrar {
    endpoint: String,
    product: String,
    secret: String,
    http: reqwest::Client,
    nonce: u32,
}

impl Registrar {
    fn decrypt(&self, payload: &str, len: usize) -> Value {
        let bytes = BASE64.decode(payload).unwrap();
        let plain = cbc::Decryptor::<aes::Aes128>::new_from_slices(
            &self.secret.as_bytes()[..16],
            b"0000000000000000",
        )
        .unwrap()
        .decrypt_padded_vec_mut::<NoPadding>(&bytes)
        .unwrap();
        assert!(plain[len..].iter().all(|b| *b == 0), "zero padding");
        serde_json::from_slice(&plain[..len]).unwrap()
    }

    /// The Python SDK's request: its own JSON, the gateway name as the signed host.
    async fn register(&mut self, device: &str) -> Answer {
        self.nonce += 1;
        let nonce = self.nonce;
        self.register_as(
            device,
            support::now(),
            nonce,
            "ap-guangzhou.gateway.tencentdevices.com",
        )
        .await
    }

    async fn register_as(&self, device: &str, timestamp: i64, nonce: u32, host: &str) -> Answer {
        let body = format!(
            r#"{{"ProductId":"{}","DeviceName":"{device}"}}"#,
            self.product
        );
        let to_sign = format!(
            "POST\n{host}\n/device/register\n\nhmacsha256\n{timestamp}\n{nonce}\n{}",
            hex::encode(sha2::Sha256::digest(body.as_bytes()))
        );
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(self.secret.as_bytes()).unwrap();
        mac.update(to_sign.as_bytes());
        let signature = BASE64.encode(mac.finalize().into_bytes());
        let reply: Value = self
            .http
            .post(format!("{}/device/register", self.endpoint))
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-TC-Algorithm", "hmacsha256")
            .header("X-TC-Timestamp", timestamp.to_string())
            .header("X-TC-Nonce", nonce.to_string())
            .header("X-TC-Signature", signature)
            .body(body)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        let response = &reply["Response"];
        assert!(response["RequestId"].is_string(), "{reply}");
        if let Some(code) = response["Error"]["Code"].as_str() {
            assert!(response["Error"]["Message"].is_string());
            return Err(code.to_owned());
        }
        let len = usize::try_from(response["Len"].as_u64().unwrap()).unwrap();
        Ok(self.decrypt(response["Payload"].as_str().unwrap(), len))
    }

    /// The C SDK's legacy request; errors come back as their numeric code.
    async fn register_legacy(&mut self, device: &str, secret: &str) -> Answer {
        self.nonce += 1;
        let (nonce, timestamp) = (self.nonce, support::now());
        let text = format!(
            "deviceName={device}&nonce={nonce}&productId={}&timestamp={timestamp}",
            self.product
        );
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(text.as_bytes());
        let signature = BASE64.encode(hex::encode(mac.finalize().into_bytes()));
        let reply: Value = self
            .http
            .post(format!("{}/register/dev", self.endpoint))
            // What the C SDK sends, JSON body notwithstanding.
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(
                json!({"deviceName": device, "nonce": nonce, "productId": self.product,
                       "timestamp": timestamp, "signature": signature})
                .to_string(),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match reply["code"].as_i64().unwrap() {
            0 => {
                assert_eq!(reply["message"], "");
                let len = usize::try_from(reply["len"].as_u64().unwrap()).unwrap();
                Ok(self.decrypt(reply["payload"].as_str().unwrap(), len))
            }
            code => {
                assert!(reply["message"].is_string() && reply["requestId"].is_string());
                Err(code.to_string())
            }
        }
    }
}

async fn product(
    hub: &Hub,
    name: &str,
    encryption: &str,
    register_type: i64,
    limit: i64,
) -> Registrar {
    let api = hub.client();
    let pid = support::create_product(&api, name, encryption).await;
    let set = api
        .call(
            "UpdateProductDynamicRegister",
            &json!({"ProductId": pid, "RegisterType": register_type, "RegisterLimit": limit}),
        )
        .await
        .unwrap();
    Registrar {
        endpoint: hub.endpoint.clone(),
        product: pid,
        secret: set["ProductSecret"].as_str().unwrap().to_owned(),
        http: reqwest::Client::new(),
        nonce: 1000,
    }
}

fn psk_of(answer: Answer) -> String {
    let answer = answer.unwrap();
    assert_eq!(answer["encryptionType"], 2, "{answer}");
    answer["psk"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn auto_created_devices_register_and_connect() {
    let dir = support::workdir();
    let hub = Hub::start_with(dir.path(), "", NO_CONNECT_INTERVAL);
    let mut reg = product(&hub, "dynreg-auto", "2", 2, 3).await;

    // New endpoint: the device is created and its PSK works.
    let psk = psk_of(reg.register("sensor-1").await);
    assert_eq!(BASE64.decode(&psk).unwrap().len(), 16);
    let mut dev = TestDevice::connect(&hub, &fresh(&reg.product, "sensor-1", &psk)).await;
    dev.subscribe(&format!("{}/sensor-1/control", reg.product))
        .await;
    drop(dev);
    // Once it connected, it cannot fetch credentials again.
    assert_eq!(
        reg.register("sensor-1").await.unwrap_err(),
        "FailedOperation.DeviceAlreadyActivated"
    );

    // Legacy endpoint (C SDK): the same answer inside.
    let secret = reg.secret.clone();
    let psk2 = psk_of(reg.register_legacy("sensor-2", &secret).await);
    connected(&hub, &fresh(&reg.product, "sensor-2", &psk2)).await;
    assert_eq!(
        reg.register_legacy("sensor-3", "wrong-secret-wrong-secret")
            .await
            .unwrap_err(),
        "1010"
    );

    // Registering again before connecting replaces the PSK: the old one stops working.
    let first = psk_of(reg.register("sensor-3").await);
    let second = psk_of(reg.register("sensor-3").await);
    assert_ne!(first, second);
    let (_c, mut events) = crate::client(&hub, &fresh(&reg.product, "sensor-3", &first));
    assert!(
        !matches!(
            crate::next_incoming(&mut events).await,
            Ok(rumqttc::Packet::ConnAck(rumqttc::ConnAck {
                code: rumqttc::ConnectReturnCode::Success,
                ..
            }))
        ),
        "the replaced PSK must not connect"
    );
    connected(&hub, &fresh(&reg.product, "sensor-3", &second)).await;

    // The limit (3) is reached: a fourth device is refused and not left behind.
    assert_eq!(
        reg.register("sensor-4").await.unwrap_err(),
        "LimitExceeded.DeviceRegisterLimit"
    );
    let listed = hub
        .client()
        .call(
            "DescribeDevices",
            &json!({"ProductId": reg.product, "Limit": 100}),
        )
        .await
        .unwrap();
    assert_eq!(listed["TotalCount"], 3, "{listed}");
}

#[tokio::test]
async fn registration_refusals() {
    let dir = support::workdir();
    let hub = Hub::start_with(dir.path(), "", NO_CONNECT_INTERVAL);
    let api = hub.client();
    let mut reg = product(&hub, "dynreg-pre", "2", 1, 10).await;
    support::create_device(&api, &reg.product, "made").await;

    // Pre-created mode: only devices that exist.
    assert_eq!(
        reg.register("unknown").await.unwrap_err(),
        "ResourceNotFound.DeviceNotExist"
    );
    let psk = psk_of(reg.register("made").await);
    connected(&hub, &fresh(&reg.product, "made", &psk)).await;

    // The Host header (without port) is accepted as the signed host too.
    support::create_device(&api, &reg.product, "other").await;
    let host = reg
        .endpoint
        .trim_start_matches("http://")
        .rsplit_once(':')
        .unwrap()
        .0
        .to_owned();
    psk_of(reg.register_as("other", support::now(), 7, &host).await);
    // The same nonce again is a replay; a stale or future timestamp is refused.
    assert_eq!(
        reg.register_as("other", support::now(), 7, &host)
            .await
            .unwrap_err(),
        "AuthFailure.NonceReused"
    );
    assert_eq!(
        reg.register_as("other", support::now() - 3600, 8, &host)
            .await
            .unwrap_err(),
        "AuthFailure.SignatureExpire"
    );
    assert_eq!(
        reg.register_as("other", support::now() + 3600, 9, &host)
            .await
            .unwrap_err(),
        "AuthFailure.SignatureExpire"
    );
    // A signature over another host, or under another secret, is refused.
    assert_eq!(
        reg.register_as("other", support::now(), 10, "elsewhere.example")
            .await
            .unwrap_err(),
        "AuthFailure.SignatureFailure"
    );
    let good_secret = std::mem::replace(&mut reg.secret, "x".repeat(24));
    assert_eq!(
        reg.register("other").await.unwrap_err(),
        "AuthFailure.SignatureFailure"
    );
    reg.secret = good_secret;

    // Registration switched off.
    api.call(
        "UpdateProductDynamicRegister",
        &json!({"ProductId": reg.product, "RegisterType": 0}),
    )
    .await
    .unwrap();
    assert_eq!(
        reg.register("other").await.unwrap_err(),
        "UnauthorizedOperation.DynamicRegisterDisabled"
    );
    let secret = reg.secret.clone();
    assert_eq!(
        reg.register_legacy("other", &secret).await.unwrap_err(),
        "1020"
    );
}

#[tokio::test]
async fn certificate_products_get_a_certificate_and_key() {
    let dir = support::workdir();
    let hub = Hub::start_with(dir.path(), "", NO_CONNECT_INTERVAL);
    let mut reg = product(&hub, "dynreg-cert", "1", 2, 5).await;
    let answer = reg.register("cam-1").await.unwrap();
    assert_eq!(answer["encryptionType"], 1, "{answer}");
    let cert = answer["clientCert"].as_str().unwrap();
    assert!(
        answer["clientKey"]
            .as_str()
            .unwrap()
            .contains("PRIVATE KEY-----")
    );
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
    let parsed = pem.parse_x509().unwrap();
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(cn, format!("{}cam-1", reg.product));
    let key = rcgen::KeyPair::from_pem(answer["clientKey"].as_str().unwrap()).unwrap();
    assert_eq!(
        parsed.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice(),
        "the key is the certificate's"
    );
    // The hub keeps the new certificate as the device's.
    let described = hub
        .client()
        .call(
            "DescribeDevice",
            &json!({"ProductId": reg.product, "DeviceName": "cam-1"}),
        )
        .await
        .unwrap();
    assert_eq!(described["DeviceCert"], cert);
}
