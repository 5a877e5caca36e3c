use serde_json::{Value, json};

use crate::support::{Hub, create_product, error_code, workdir};

#[tokio::test]
async fn topic_policy_lifecycle() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let api = hub.client();
    let pid = create_product(&api, "lamps", "2").await;

    // Both of Tencent's TopicName forms.
    api.call(
        "CreateTopicPolicy",
        &json!({ "ProductId": pid, "TopicName": "custom/up", "Privilege": 1 }),
    )
    .await
    .unwrap();
    api.call(
        "CreateTopicPolicy",
        &json!({ "ProductId": pid, "TopicName": format!("{pid}/${{deviceName}}/custom/down"), "Privilege": 2 }),
    )
    .await
    .unwrap();
    let dup = api
        .call(
            "CreateTopicPolicy",
            &json!({ "ProductId": pid, "TopicName": format!("{pid}/${{deviceName}}/custom/up"), "Privilege": 3 }),
        )
        .await;
    assert_eq!(
        error_code(dup),
        "InvalidParameterValue.TopicPolicyAlreadyExist"
    );
    for bad in [json!("a/+"), json!("a/#"), json!(""), json!("/lead")] {
        let res = api
            .call(
                "CreateTopicPolicy",
                &json!({ "ProductId": pid, "TopicName": bad, "Privilege": 1 }),
            )
            .await;
        assert_eq!(error_code(res), "InvalidParameterValue", "{bad}");
    }
    let res = api
        .call(
            "CreateTopicPolicy",
            &json!({ "ProductId": pid, "TopicName": "x", "Privilege": 4 }),
        )
        .await;
    assert_eq!(error_code(res), "InvalidParameterValue");

    api.call(
        "UpdateTopicPolicy",
        &json!({ "ProductId": pid, "TopicName": "custom/up", "NewTopicName": "custom/uplink", "Privilege": 3 }),
    )
    .await
    .unwrap();
    let missing = api
        .call(
            "UpdateTopicPolicy",
            &json!({ "ProductId": pid, "TopicName": "custom/up", "Privilege": 3 }),
        )
        .await;
    assert_eq!(error_code(missing), "ResourceNotFound.TopicPolicyNotExist");
    let clash = api
        .call(
            "UpdateTopicPolicy",
            &json!({ "ProductId": pid, "TopicName": "custom/uplink", "NewTopicName": "custom/down", "Privilege": 3 }),
        )
        .await;
    assert_eq!(
        error_code(clash),
        "InvalidParameterValue.TopicPolicyAlreadyExist"
    );

    let listed = api
        .call("DescribeTopicPolicies", &json!({ "ProductId": pid }))
        .await
        .unwrap();
    let policies = listed["TopicPolicies"].as_array().unwrap();
    assert_eq!(listed["TotalCount"], policies.len());
    let find = |name: String| -> &Value {
        policies
            .iter()
            .find(|p| p["TopicName"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} not in {listed}"))
    };
    let up = find(format!("{pid}/${{deviceName}}/custom/uplink"));
    assert_eq!(up["Privilege"], 3);
    assert_eq!(up["IsDefault"], false);
    assert_eq!(
        find(format!("{pid}/${{deviceName}}/custom/down"))["Privilege"],
        2
    );
    let event = find(format!("{pid}/${{deviceName}}/event"));
    assert_eq!(event["Privilege"], 1);
    assert_eq!(event["IsDefault"], true);
    assert_eq!(
        find(format!("$shadow/operation/result/{pid}/${{deviceName}}"))["Privilege"],
        2
    );

    let no_product = api
        .call(
            "DescribeTopicPolicies",
            &json!({ "ProductId": "NOPE000000" }),
        )
        .await;
    assert_eq!(error_code(no_product), "ResourceNotFound.ProductNotExist");
}
