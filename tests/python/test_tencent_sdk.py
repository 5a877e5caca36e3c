"""Tencent's own, unmodified Cloud API SDK for Python manages Eddy.

Warnings are turned into errors: the SDK warns when a response carries a field its
models do not know ("fileds are useless"), so these tests also prove that every response
has exactly Tencent's field names.
"""

import base64
import json
import warnings

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iotcloud.v20210408 import iotcloud_client, models


@pytest.fixture(autouse=True)
def strict_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def client_for(hub, secret_id=None, secret_key=None, method="POST"):
    http = HttpProfile(endpoint=hub.endpoint, reqMethod=method)
    http.scheme = "http"
    cred = credential.Credential(secret_id or hub.secret_id, secret_key or hub.secret_key)
    return iotcloud_client.IotcloudClient(cred, "ap-guangzhou", ClientProfile(httpProfile=http))


def sdk_error(call):
    with pytest.raises(TencentCloudSDKException) as info:
        call()
    return info.value.get_code()


def create_product(client, name, encryption):
    req = models.CreateProductRequest()
    req.ProductName = name
    props = models.ProductProperties()
    props.EncryptionType = encryption
    props.ProductDescription = "made by the Tencent SDK"
    req.ProductProperties = props
    return client.CreateProduct(req)


def test_product_and_device_lifecycle(hub):
    client = client_for(hub)
    product = create_product(client, "sdk-key", "2")
    assert len(product.ProductId) == 10
    assert product.ProductProperties.EncryptionType == "2"
    assert product.ProductProperties.ProductDescription == "made by the Tencent SDK"

    req = models.DescribeProductRequest()
    req.ProductId = product.ProductId
    described = client.DescribeProduct(req)
    assert described.ProductName == "sdk-key"
    assert described.ProductMetadata.CreationDate > 1_600_000_000

    req = models.CreateDeviceRequest()
    req.ProductId = product.ProductId
    req.DeviceName = "sdk-dev-1"
    device = client.CreateDevice(req)
    assert len(base64.b64decode(device.DevicePsk)) == 16

    req = models.CreateDeviceRequest()
    req.ProductId = product.ProductId
    req.DeviceName = "sdk-dev-2"
    req.DefinedPsk = base64.b64encode(b"sixteen byte key").decode()
    assert client.CreateDevice(req).DevicePsk == req.DefinedPsk

    req = models.DescribeDeviceRequest()
    req.ProductId = product.ProductId
    req.DeviceName = "sdk-dev-1"
    d = client.DescribeDevice(req)
    assert d.DevicePsk == device.DevicePsk
    assert d.Online == 3 and d.EnableState == 1 and isinstance(d.CreateTime, int)

    req = models.DescribeDevicesRequest()
    req.ProductId = product.ProductId
    req.Offset = 0
    req.Limit = 10
    listed = client.DescribeDevices(req)
    assert listed.TotalCount == 2
    assert sorted(x.DeviceName for x in listed.Devices) == ["sdk-dev-1", "sdk-dev-2"]

    req = models.UpdateDevicesEnableStateRequest()
    req.ProductId = product.ProductId
    req.DeviceNames = ["sdk-dev-1"]
    req.Status = 0
    client.UpdateDevicesEnableState(req)

    req = models.UpdateDevicePSKRequest()
    req.ProductId = product.ProductId
    req.DeviceName = "sdk-dev-2"
    req.Psk = base64.b64encode(b"another 16b key!").decode()
    client.UpdateDevicePSK(req)

    req = models.ResetDeviceStateRequest()
    req.ProductId = product.ProductId
    req.DeviceNames = ["sdk-dev-1", "ghost"]
    reset = client.ResetDeviceState(req)
    assert reset.SuccessCount == 1
    assert [r.Success for r in reset.ResetDeviceResults] == [True, False]

    req = models.CreateTopicPolicyRequest()
    req.ProductId = product.ProductId
    req.TopicName = "custom/telemetry"
    req.Privilege = 1
    client.CreateTopicPolicy(req)
    req = models.UpdateTopicPolicyRequest()
    req.ProductId = product.ProductId
    req.TopicName = "custom/telemetry"
    req.NewTopicName = "custom/tele"
    req.Privilege = 3
    client.UpdateTopicPolicy(req)
    # Eddy's listing action, through the SDK's generic call.
    listed = client.call_json("DescribeTopicPolicies", {"ProductId": product.ProductId})
    names = [p["TopicName"] for p in listed["Response"]["TopicPolicies"]]
    assert f"{product.ProductId}/${{deviceName}}/custom/tele" in names

    req = models.UpdateProductDynamicRegisterRequest()
    req.ProductId = product.ProductId
    req.RegisterType = 1
    req.RegisterLimit = 10
    reg = client.UpdateProductDynamicRegister(req)
    assert reg.RegisterType == 1 and reg.RegisterLimit == 10
    assert reg.ProductSecret == product.ProductProperties.ProductSecret

    for name in ["sdk-dev-1", "sdk-dev-2"]:
        req = models.DeleteDeviceRequest()
        req.ProductId = product.ProductId
        req.DeviceName = name
        client.DeleteDevice(req)
    req = models.DeleteProductRequest()
    req.ProductId = product.ProductId
    client.DeleteProduct(req)

    req = models.DescribeProductsRequest()
    req.Offset = 0
    req.Limit = 10
    assert all(p.ProductId != product.ProductId for p in client.DescribeProducts(req).Products)


def test_certificate_product(hub):
    client = client_for(hub)
    product = create_product(client, "sdk-cert", "1")
    req = models.CreateDeviceRequest()
    req.ProductId = product.ProductId
    req.DeviceName = "cam"
    device = client.CreateDevice(req)
    assert device.DeviceCert.startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY-----" in device.DevicePrivateKey
    assert device.DevicePsk == ""


def test_errors_raise_with_tencents_codes(hub):
    client = client_for(hub)
    req = models.DescribeProductRequest()
    req.ProductId = "NOPE000000"
    assert sdk_error(lambda: client.DescribeProduct(req)) == "ResourceNotFound.ProductNotExist"

    product = create_product(client, "sdk-errors", "2")
    req = models.CreateDeviceRequest()
    req.ProductId = product.ProductId
    req.DeviceName = "twin"
    client.CreateDevice(req)
    assert sdk_error(lambda: client.CreateDevice(req)) == "InvalidParameterValue.DeviceAlreadyExist"

    req = models.DescribeDeviceRequest()
    req.ProductId = product.ProductId
    req.DeviceName = "missing"
    assert sdk_error(lambda: client.DescribeDevice(req)) == "ResourceNotFound.DeviceNotExist"

    req = models.PublishMessageRequest()
    req.ProductId = product.ProductId
    req.DeviceName = "twin"
    req.Topic = f"{product.ProductId}/twin/control"
    req.Payload = base64.b64encode(b"{}").decode()
    req.PayloadEncoding = "base64"
    req.Qos = 1
    assert sdk_error(lambda: client.PublishMessage(req)) == "FailedOperation.DeviceOffline"

    bad = client_for(hub, secret_key="wrong-key")
    req = models.DescribeProductsRequest()
    assert sdk_error(lambda: bad.DescribeProducts(req)) == "AuthFailure.SignatureFailure"
    unknown = client_for(hub, secret_id="AKIDunknown")
    assert sdk_error(lambda: unknown.DescribeProducts(req)) == "AuthFailure.SecretIdNotFound"


def test_get_requests(hub):
    """The SDK's GET mode: flattened query parameters, TC3-signed."""
    client = client_for(hub, method="GET")
    product = create_product(client_for(hub), "sdk-get", "2")
    req = models.DescribeDevicesRequest()
    req.ProductId = product.ProductId
    req.Offset = 0
    req.Limit = 10
    assert client.DescribeDevices(req).TotalCount == 0


def test_topic_rule_lifecycle(hub):
    """Tencent's iotcloud models for the rule actions, field for field (warnings are errors)."""
    client = client_for(hub)
    sql = "SELECT temp FROM 'PRODUCT01/+/event' WHERE temp > 30"

    def payload(sql_text, disabled=False):
        p = models.TopicRulePayload()
        p.Sql = base64.b64encode(sql_text.encode()).decode()
        p.Actions = '[{"republish":{"topic":"PRODUCT01/dev/out"}}]'
        p.Description = "sdk rule"
        p.RuleDisabled = disabled
        return p

    req = models.CreateTopicRuleRequest()
    req.RuleName = "sdk_rule"
    req.TopicRulePayload = payload(sql)
    client.CreateTopicRule(req)
    assert sdk_error(lambda: client.CreateTopicRule(req)) == (
        "InvalidParameterValue.TopicRuleAlreadyExist"
    )

    req = models.ListTopicRulesRequest()
    req.PageNum, req.PageSize = 1, 10
    listed = client.ListTopicRules(req)
    assert listed.TotalCnt == 1
    rule = listed.Rules[0]
    assert (rule.RuleName, rule.RuleDisabled, rule.TopicPattern) == (
        "sdk_rule",
        False,
        "PRODUCT01/+/event",
    )
    assert rule.Description == "sdk rule" and rule.CreatedAt > 1_600_000_000

    req = models.DisableTopicRuleRequest()
    req.RuleName = "sdk_rule"
    client.DisableTopicRule(req)
    assert sdk_error(lambda: client.DisableTopicRule(req)) == "FailedOperation.RuleAlreadyDisabled"
    req = models.EnableTopicRuleRequest()
    req.RuleName = "sdk_rule"
    client.EnableTopicRule(req)

    req = models.ReplaceTopicRuleRequest()
    req.RuleName = "sdk_rule"
    req.TopicRulePayload = payload("SELECT * FROM 'PRODUCT01/dev/data'", disabled=True)
    client.ReplaceTopicRule(req)
    req = models.ListTopicRulesRequest()
    req.PageNum, req.PageSize = 1, 10
    rule = client.ListTopicRules(req).Rules[0]
    assert (rule.RuleDisabled, rule.TopicPattern) == (True, "PRODUCT01/dev/data")

    bad = models.CreateTopicRuleRequest()
    bad.RuleName = "no_actions"
    bad.TopicRulePayload = payload(sql)
    bad.TopicRulePayload.Actions = "[]"
    assert sdk_error(lambda: client.CreateTopicRule(bad)) == "InvalidParameterValue.ActionNil"

    req = models.DeleteTopicRuleRequest()
    req.RuleName = "sdk_rule"
    client.DeleteTopicRule(req)
    assert sdk_error(lambda: client.DeleteTopicRule(req)) == "ResourceNotFound.TopicRuleNotExist"


def test_device_shadow_and_services_actions(hub):
    """The shadow, log-level, RRPC and broadcast actions with the SDK's own models."""
    client = client_for(hub)
    product = create_product(client, "sdk-shadow", "2")
    req = models.CreateDeviceRequest()
    req.ProductId = product.ProductId
    req.DeviceName = "twin"
    client.CreateDevice(req)

    req = models.DescribeDeviceShadowRequest()
    req.ProductId, req.DeviceName = product.ProductId, "twin"
    shadow = json.loads(client.DescribeDeviceShadow(req).Data)
    assert shadow["type"] == "get" and shadow["result"] == 0
    assert shadow["payload"]["version"] == 0
    assert shadow["payload"]["state"] == {"reported": {}}

    req = models.UpdateDeviceShadowRequest()
    req.ProductId, req.DeviceName = product.ProductId, "twin"
    req.State = json.dumps({"desired": {"color": "red"}})
    req.ShadowVersion = 0
    updated = json.loads(client.UpdateDeviceShadow(req).Data)
    assert updated["type"] == "update" and updated["result"] == 0
    assert updated["payload"]["version"] == 1
    assert updated["payload"]["state"] == {"desired": {"color": "red"}}
    assert sdk_error(lambda: client.UpdateDeviceShadow(req)) == "FailedOperation.UpdateVersionNotMatch"

    req = models.DescribeDeviceShadowRequest()
    req.ProductId, req.DeviceName = product.ProductId, "twin"
    shadow = json.loads(client.DescribeDeviceShadow(req).Data)
    assert shadow["payload"]["state"]["delta"] == {"color": "red"}

    req = models.DeleteDeviceShadowRequest()
    req.ProductId, req.DeviceName = product.ProductId, "twin"
    client.DeleteDeviceShadow(req)
    assert sdk_error(lambda: client.DeleteDeviceShadow(req)) == "ResourceNotFound.DeviceShadowNotExist"

    req = models.UpdateDeviceLogLevelRequest()
    req.ProductId, req.DeviceName, req.LogLevel = product.ProductId, "twin", 4
    client.UpdateDeviceLogLevel(req)
    req = models.DescribeDeviceRequest()
    req.ProductId, req.DeviceName = product.ProductId, "twin"
    assert client.DescribeDevice(req).LogLevel == 4

    req = models.PublishRRPCMessageRequest()
    req.ProductId, req.DeviceName, req.Payload = product.ProductId, "twin", "ping"
    assert sdk_error(lambda: client.PublishRRPCMessage(req)) == "FailedOperation.DeviceOffline"

    req = models.PublishBroadcastMessageRequest()
    req.ProductId, req.Payload, req.Qos = product.ProductId, "hello all", 0
    assert isinstance(client.PublishBroadcastMessage(req).TaskId, int)
