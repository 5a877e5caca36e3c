"""Independent MQTT clients connect to Eddy's broker with Tencent credentials computed here:
paho-mqtt (MQTT 3.1 "MQIsdp", 3.1.1 and 5) and Debian's mosquitto_pub / mosquitto_sub.
Messages reach devices through Tencent's PublishMessage, called with Tencent's SDK."""

import base64
import hashlib
import hmac
import os
import queue
import shutil
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
    TencentCloudSDKException,
)
from tencentcloud.iotcloud.v20210408 import models

from test_tencent_sdk import client_for, create_product

STEP_S = 60


def credentials(product_id, device_name, psk_b64, method="hmacsha1", millis=True):
    """What Tencent's device SDKs compute (the Python SDK: expiry in milliseconds)."""
    client_id = f"{product_id}{device_name}"
    expiry = int(time.time()) + 3600
    username = f"{client_id};21010406;x9Y2z;{expiry * 1000 if millis else expiry}"
    digest = hashlib.sha1 if method == "hmacsha1" else hashlib.sha256
    sig = hmac.new(base64.b64decode(psk_b64), username.encode(), digest).hexdigest()
    return client_id, username, f"{sig};{method}"


def new_device(client, product_id, name):
    req = models.CreateDeviceRequest()
    req.ProductId = product_id
    req.DeviceName = name
    return client.CreateDevice(req).DevicePsk


def publish_message(client, product_id, name, topic, payload):
    req = models.PublishMessageRequest()
    req.ProductId = product_id
    req.DeviceName = name
    req.Topic = topic
    req.Payload = payload
    req.Qos = 1
    client.PublishMessage(req)


def publish_when_subscribed(client, product_id, name, topic, payload):
    """PublishMessage, retried while the device is not yet connected and subscribed: the
    hub's own answer is the readiness signal."""
    deadline = time.monotonic() + STEP_S
    while True:
        try:
            return publish_message(client, product_id, name, topic, payload)
        except TencentCloudSDKException as err:
            waiting = err.get_code() in (
                "FailedOperation.DeviceOffline",
                "FailedOperation.DeviceNoSubscription",
            )
            if not waiting or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Paho:
    def __init__(self, hub, creds, protocol):
        client_id, username, password = creds
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol
        )
        self.client.username_pw_set(username, password)
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.messages = queue.Queue()
        self.reason = None
        self.granted = None

        def on_connect(_c, _u, _flags, reason_code, _props):
            self.reason = reason_code
            self.connected.set()

        def on_subscribe(_c, _u, _mid, reason_codes, _props):
            self.granted = reason_codes
            self.subscribed.set()

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.connect(hub.mqtt_host, hub.mqtt_port, keepalive=60)
        self.client.loop_start()
        assert self.connected.wait(STEP_S), "no CONNACK"

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.parametrize(
    "protocol, method",
    [
        (mqtt.MQTTv31, "hmacsha1"),
        (mqtt.MQTTv311, "hmacsha1"),
        (mqtt.MQTTv5, "hmacsha256"),
    ],
)
def test_paho_connects_subscribes_and_receives(hub, protocol, method):
    api = client_for(hub)
    product = create_product(api, f"paho-{protocol}", "2")
    psk = new_device(api, product.ProductId, "dev")
    device = Paho(hub, credentials(product.ProductId, "dev", psk, method), protocol)
    try:
        assert not device.reason.is_failure, device.reason
        topic = f"{product.ProductId}/dev/control"
        device.client.subscribe(topic, qos=1)
        assert device.subscribed.wait(STEP_S)
        assert not device.granted[0].is_failure
        publish_message(api, product.ProductId, "dev", topic, "to the device")
        msg = device.messages.get(timeout=STEP_S)
        assert (msg.topic, msg.payload, msg.qos) == (topic, b"to the device", 1)
        # Another device's topic is refused in the SUBACK.
        device.subscribed.clear()
        device.client.subscribe(f"{product.ProductId}/other/control", qos=1)
        assert device.subscribed.wait(STEP_S)
        assert device.granted[0].is_failure
    finally:
        device.close()


def test_paho_refusals(hub):
    api = client_for(hub)
    product = create_product(api, "paho-refusals", "2")
    psk = new_device(api, product.ProductId, "dev")
    wrong = base64.b64encode(b"not the right key").decode()
    for protocol in (mqtt.MQTTv311, mqtt.MQTTv5):
        bad = Paho(hub, credentials(product.ProductId, "dev", wrong), protocol)
        assert bad.reason.is_failure
        assert bad.reason.value in (4, 134), bad.reason  # bad user name or password
        bad.close()
        ghost = Paho(hub, credentials(product.ProductId, "ghost", psk), protocol)
        assert ghost.reason.is_failure
        assert ghost.reason.value in (5, 135), ghost.reason  # not authorized
        ghost.close()


def mosquitto(tool):
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is missing (Debian mosquitto-clients; scripts/test installs it)")
        pytest.skip(f"{tool} is not installed (Debian mosquitto-clients)")
    return path


def test_mosquitto_clients(hub):
    sub_tool, pub_tool = mosquitto("mosquitto_sub"), mosquitto("mosquitto_pub")
    api = client_for(hub)
    product = create_product(api, "mosquitto", "2")
    pid = product.ProductId
    psk_a = new_device(api, pid, "a")
    psk_b = new_device(api, pid, "b")
    host, port = hub.mqtt_host, str(hub.mqtt_port)

    cid, user, pw = credentials(pid, "a", psk_a)
    topic = f"{pid}/a/control"
    sub = subprocess.Popen(
        [sub_tool, "-h", host, "-p", port, "-i", cid, "-u", user, "-P", pw,
         "-t", topic, "-q", "1", "-C", "1", "-W", str(STEP_S)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        publish_when_subscribed(api, pid, "a", topic, "hello mosquitto")
        out, err = sub.communicate(timeout=STEP_S)
    finally:
        sub.kill()
    assert sub.returncode == 0, err
    assert out.strip() == "hello mosquitto"

    # mosquitto_pub as device b, MQTT 3.1.1 and MQTT 3.1 (-V mqttv31 sends "MQIsdp").
    for version in ("mqttv311", "mqttv31"):
        cid, user, pw = credentials(pid, "b", psk_b)
        done = subprocess.run(
            [pub_tool, "-h", host, "-p", port, "-i", cid, "-u", user, "-P", pw,
             "-V", version, "-t", f"{pid}/b/event", "-q", "1", "-m", "up"],
            capture_output=True, text=True, timeout=STEP_S,
        )
        assert done.returncode == 0, done.stderr
    cid, user, pw = credentials(pid, "b", base64.b64encode(b"wrong key 16byte").decode())
    refused = subprocess.run(
        [pub_tool, "-h", host, "-p", port, "-i", cid, "-u", user, "-P", pw,
         "-t", f"{pid}/b/event", "-q", "1", "-m", "up"],
        capture_output=True, text=True, timeout=STEP_S,
    )
    assert refused.returncode != 0
    assert "not authorised" in refused.stderr.lower() or "bad user name" in refused.stderr.lower(), refused.stderr
