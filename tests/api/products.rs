use serde_json::json;

use crate::support::{Hub, error_code, workdir};

#[tokio::test]
async fn product_lifecycle_with_tencent_shapes() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let api = hub.client();

    let created = api
        .call(
            "CreateProduct",
            &json!({
                "ProductName": "thermo",
                "ProductProperties": { "EncryptionType": "2", "ProductDescription": "room sensors" }
            }),
        )
        .await
        .unwrap();
    let pid = created["ProductId"].as_str().unwrap().to_owned();
    assert_eq!(pid.len(), 10);
    assert!(
        pid.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        "{pid}"
    );
    assert_eq!(created["ProductName"], "thermo");
    let props = &created["ProductProperties"];
    assert_eq!(props["EncryptionType"], "2", "EncryptionType is a string");
    assert_eq!(props["ProductDescription"], "room sensors");
    assert_eq!(props["ProductType"], 0);
    assert_eq!(props["RegisterType"], 0);
    assert_eq!(props["ProductSecret"].as_str().unwrap().len(), 24);

    let described = api
        .call("DescribeProduct", &json!({ "ProductId": pid }))
        .await
        .unwrap();
    assert_eq!(described["ProductId"], pid.as_str());
    assert_eq!(described["ProductName"], "thermo");
    assert!(
        described["ProductMetadata"]["CreationDate"]
            .as_i64()
            .unwrap()
            > 1_600_000_000
    );
    assert_eq!(described["ProductProperties"], created["ProductProperties"]);

    // Same name again is refused.
    let dup = api
        .call("CreateProduct", &json!({ "ProductName": "thermo" }))
        .await;
    assert_eq!(error_code(dup), "InvalidParameterValue.ProductAlreadyExist");

    // Without ProductProperties Tencent's default EncryptionType is "1" (certificate).
    let cert = api
        .call("CreateProduct", &json!({ "ProductName": "cams" }))
        .await
        .unwrap();
    assert_eq!(cert["ProductProperties"]["EncryptionType"], "1");

    let listed = api
        .call("DescribeProducts", &json!({ "Offset": 0, "Limit": 10 }))
        .await
        .unwrap();
    assert_eq!(listed["TotalCount"], 2);
    let names: Vec<_> = listed["Products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ProductName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["thermo", "cams"]);

    let reg = api
        .call(
            "UpdateProductDynamicRegister",
            &json!({ "ProductId": pid, "RegisterType": 2, "RegisterLimit": 50 }),
        )
        .await
        .unwrap();
    assert_eq!(reg["RegisterType"], 2);
    assert_eq!(reg["RegisterLimit"], 50);
    assert_eq!(reg["ProductSecret"], props["ProductSecret"]);
    let bad_reg = api
        .call(
            "UpdateProductDynamicRegister",
            &json!({ "ProductId": pid, "RegisterType": 7 }),
        )
        .await;
    assert_eq!(error_code(bad_reg), "InvalidParameterValue");

    api.call("DeleteProduct", &json!({ "ProductId": pid }))
        .await
        .unwrap();
    let gone = api
        .call("DescribeProduct", &json!({ "ProductId": pid }))
        .await;
    assert_eq!(error_code(gone), "ResourceNotFound.ProductNotExist");
    let again = api
        .call("DeleteProduct", &json!({ "ProductId": pid }))
        .await;
    assert_eq!(error_code(again), "ResourceNotFound.ProductNotExist");
}

#[tokio::test]
async fn product_pagination() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let api = hub.client();
    for i in 0..12 {
        api.call(
            "CreateProduct",
            &json!({ "ProductName": format!("p{i:02}"), "ProductProperties": { "EncryptionType": "2" } }),
        )
        .await
        .unwrap();
    }
    let first = api
        .call("DescribeProducts", &json!({ "Offset": 0, "Limit": 10 }))
        .await
        .unwrap();
    let second = api
        .call("DescribeProducts", &json!({ "Offset": 10, "Limit": 10 }))
        .await
        .unwrap();
    assert_eq!(first["TotalCount"], 12);
    assert_eq!(second["TotalCount"], 12);
    assert_eq!(first["Products"].as_array().unwrap().len(), 10);
    assert_eq!(second["Products"].as_array().unwrap().len(), 2);
    assert_eq!(second["Products"][1]["ProductName"], "p11");
}
