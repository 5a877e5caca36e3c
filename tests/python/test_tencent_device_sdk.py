"""Tencent's own, unmodified Python DEVICE SDK (PyPI `tencent-iot-device`, GitHub
tencentyun/iot-device-python, module `hub`) talks to Eddy's device services: shadow,
$sys time, $log level, RRPC and broadcast. Tencent's Cloud API SDK drives the cloud side.

Why the device SDK runs in its own process, from its own install:
- it pins paho-mqtt==1.5.1 and calls `loop(timeout, max_packets)`, which paho 2.x no
  longer has, while this venv keeps paho-mqtt 2.2.0 for the broker tests; and it pins
  pycrypto==2.6.1, which no longer builds on Python 3.11+. So `DEVICE_SDK_PINS` are
  installed once with `pip --no-deps --target` next to this venv (pycryptodome provides
  the same `Crypto.Cipher.AES` that pycrypto did) and put first on the helper's path.
- its QcloudHub, connection and logger are process-wide singletons: one device per process.

How it reaches the hub: the SDK connects to `{ProductId}.iotcloud.tencentdevices.com`,
port 1883 when built with its documented `tls=False` (the host comes from the product id
plus its `domain` parameter; the port is fixed). The helper maps exactly that name and
port to the hub's MQTT address at the resolver (`socket.getaddrinfo`), as a hosts-file
entry plus a port forward would. The SDK's own code is not touched.
"""

import base64
import hashlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import pytest
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iotcloud.v20210408 import iotcloud_client, models

# tencent-iot-device 1.0.0 is the only release; its own pins are paho-mqtt==1.5.1 and
# pycrypto==2.6.1 (replaced by pycryptodome, see above).
DEVICE_SDK_PINS = ["tencent-iot-device==1.0.0", "paho-mqtt==1.5.1", "pycryptodome==3.23.0"]
WAIT_S = 60


@pytest.fixture(autouse=True)
def strict_warnings():
    """The Cloud API SDK warns on response fields its models do not know."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def client_for(hub):
    http = HttpProfile(endpoint=hub.endpoint)
    http.scheme = "http"
    cred = credential.Credential(hub.secret_id, hub.secret_key)
    return iotcloud_client.IotcloudClient(cred, "ap-guangzhou", ClientProfile(httpProfile=http))


@pytest.fixture(scope="session")
def device_sdk_path():
    """A `pip --target` install of DEVICE_SDK_PINS beside this venv, made once."""
    key = hashlib.sha256(" ".join(DEVICE_SDK_PINS).encode()).hexdigest()[:12]
    target = Path(sys.prefix) / "tencent-device-sdk" / key
    if not (target / ".complete").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="staging-", dir=target.parent))
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "--no-deps", "--target", str(staging), *DEVICE_SDK_PINS],
            check=True,
        )
        (staging / ".complete").write_text("\n".join(DEVICE_SDK_PINS) + "\n")
        try:
            staging.rename(target)
        except OSError:  # another run finished first
            pass
    return target


# The device side: Tencent's SDK as its own samples use it (hub/sample/*), driven by JSON
# lines on stdin; every callback and result goes back as a JSON line on stdout.
DEVICE_HELPER = r'''
import json, socket, sys, threading, time

config = json.loads(sys.argv[1])
tencent_host = config["productId"] + ".iotcloud.tencentdevices.com"
_getaddrinfo = socket.getaddrinfo

def getaddrinfo(host, port, *args, **kwargs):
    if host == tencent_host and int(port) == 1883:
        host, port = config["hub_host"], config["hub_port"]
    return _getaddrinfo(host, port, *args, **kwargs)

socket.getaddrinfo = getaddrinfo

from hub.hub import QcloudHub

out_lock = threading.Lock()
def emit(**event):
    with out_lock:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

acked = {}
acked_cv = threading.Condition()
def on_subscribe(qos, mid, userdata):
    with acked_cv:
        acked[mid] = qos
        acked_cv.notify_all()

def await_suback(rc, mid):
    if rc != 0:
        return {"rc": rc}
    with acked_cv:
        acked_cv.wait_for(lambda: mid in acked, timeout=60)
        return {"rc": rc, "granted_qos": acked.get(mid)}

qcloud = QcloudHub(device_file=config["device_file"], tls=False).hub
signed_at = time.time()  # the SDK signs its MQTT username once, in the constructor
qcloud.logInit(qcloud.LoggerLevel.DEBUG, config["log_file"], 10 * 1024 * 1024, 1, enable=True)
pid, dn = qcloud.getProductID(), qcloud.getDeviceName()
connected = threading.Event()
qcloud.registerMqttCallback(
    lambda flags, rc, ud: (emit(event="connect", rc=rc), rc == 0 and connected.set()),
    lambda rc, ud: (connected.clear(), emit(event="disconnect", rc=rc)),
    lambda topic, qos, payload, ud: emit(event="message", topic=topic, payload=payload),
    lambda mid, ud: None,
    on_subscribe,
    lambda mid, ud: None,
)
qcloud.connect()
if not connected.wait(60):
    emit(event="fatal", error="no CONNACK within 60 s")
    sys.exit(1)

def on_shadow(topic, qos, payload, ud):
    emit(event="shadow", topic=topic, payload=payload)

def on_rrpc(topic, qos, payload, ud):
    emit(event="rrpc", topic=topic, payload=payload)
    qcloud.rrpcReply(pid, dn, rrpc_reply, len(rrpc_reply))

def on_broadcast(topic, qos, payload, ud):
    emit(event="broadcast", topic=topic, payload=payload)

def on_user_topic(topic, qos, payload, ud):
    emit(event="user", topic=topic, payload=payload)

def prop(key, value):
    p = qcloud.device_property()
    p.key, p.data = key, value
    p.type = "string" if isinstance(value, str) else "int"
    return p

rrpc_reply = "ok"
for line in sys.stdin:
    cmd = json.loads(line)
    op, result = cmd["op"], None
    if op == "shadow_init":
        result = await_suback(*qcloud.shadowInit(pid, dn, on_shadow))
    elif op == "shadow_get":
        result = {"rc": qcloud.getShadow(pid, dn)[0]}
    elif op == "shadow_report":
        doc = qcloud.shadowJsonConstructReport(
            pid, dn, *[prop(k, v) for k, v in cmd["reported"].items()])
        result = {"rc": qcloud.shadowUpdate(pid, dn, doc, len(doc))[0], "doc": doc}
    elif op == "shadow_desired_null":
        doc = qcloud.shadowJsonConstructDesireAllNull(pid, dn)
        result = {"rc": qcloud.shadowUpdate(pid, dn, doc, len(doc))[0], "doc": doc}
    elif op == "ntp":
        before = time.time()
        result = {"ntp_ms": qcloud.getNtpAccurateTime(), "before": before, "after": time.time()}
    elif op == "user_subscribe":
        qcloud.registerUserCallback(cmd["topic"], on_user_topic)
        result = await_suback(*qcloud.subscribe(cmd["topic"], 0))
    elif op == "publish":
        result = {"rc": qcloud.publish(cmd["topic"], cmd["payload"], 0)[0]}
    elif op == "rrpc_init":
        rrpc_reply = cmd["reply"]
        result = await_suback(*qcloud.rrpcInit(pid, dn, on_rrpc))
    elif op == "reconnect":
        qcloud.disconnect()
        # The condition under test, not a synchronisation: the CONNECT goes out at least
        # two seconds after the SDK signed the username it keeps reusing.
        time.sleep(max(0.0, signed_at + 2 - time.time()))
        started = time.time() - signed_at
        qcloud.connect()
        result = {"connected": connected.wait(60), "started_after_s": started,
                  "gave_up_after_s": time.time() - signed_at}
    elif op == "broadcast_init":
        result = await_suback(*qcloud.broadcastInit(pid, dn, on_broadcast))
    emit(event="done", op=op, result=result)
'''


class Device:
    """Tencent's device SDK in a child process, with its events in a queue."""

    def __init__(self, hub, sdk_path, product_id, device_name, psk):
        self.hub, self.product_id, self.device_name = hub, product_id, device_name
        root = Path(hub.root)
        device_file = root / f"device-{device_name}.json"
        device_file.write_text(json.dumps({
            "auth_mode": "KEY",
            "productId": product_id,
            "productSecret": "",
            "deviceName": device_name,
            "key_deviceinfo": {"deviceSecret": psk},
            "cert_deviceinfo": {"devCaFile": "", "devCertFile": "", "devPrivateKeyFile": ""},
            "region": "china",
        }))
        script = root / "tencent_device_helper.py"
        script.write_text(DEVICE_HELPER)
        self.sdk_log = root / f"device-{device_name}.sdk.log"
        self.stderr_path = root / f"device-{device_name}.stderr"
        self.stderr = open(self.stderr_path, "wb")
        config = {
            "productId": product_id,
            "hub_host": hub.mqtt_host,
            "hub_port": hub.mqtt_port,
            "device_file": str(device_file),
            "log_file": str(self.sdk_log),
        }
        env = dict(os.environ, PYTHONPATH=str(sdk_path))
        self.proc = subprocess.Popen(
            [sys.executable, str(script), json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            text=True, env=env, cwd=root,
        )
        self.events: "queue.Queue[dict]" = queue.Queue()
        self.backlog: list = []

        def pump():
            for line in self.proc.stdout:
                self.events.put(json.loads(line))
            self.events.put({"event": "exit"})

        self.pump = threading.Thread(target=pump, daemon=True)
        self.pump.start()

    def connected(self):
        self.wait(lambda e: e["event"] == "connect" and e["rc"] == 0, "the SDK's MQTT connect")

    def evidence(self):
        def tail(path, n=4000):
            return path.read_text(errors="replace")[-n:] if path.exists() else "(none)"
        self.stderr.flush()
        return (f"\n--- device SDK log ---\n{tail(self.sdk_log)}"
                f"\n--- device stderr ---\n{tail(self.stderr_path)}"
                f"\n--- hub log ---\n{tail(Path(self.hub.root) / 'hub.log')}")

    def wait(self, match, what, timeout=WAIT_S):
        """The first event (kept or new) that `match` accepts; others stay for later."""
        for i, event in enumerate(self.backlog):
            if match(event):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                event = self.events.get(timeout=max(left, 0))
            except queue.Empty:
                seen = json.dumps(self.backlog, indent=1)[-3000:]
                pytest.fail(f"no {what} within {timeout} s; other events: {seen}{self.evidence()}")
            if event["event"] in ("exit", "fatal"):
                pytest.fail(f"the device SDK process ended waiting for {what}: "
                            f"{event}{self.evidence()}")
            if match(event):
                return event
            self.backlog.append(event)

    def call(self, op, timeout=WAIT_S, **args):
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        done = self.wait(lambda e: e["event"] == "done" and e["op"] == op, f"result of {op}",
                         timeout)
        return done["result"]

    def subscribe_ok(self, op, **args):
        result = self.call(op, **args)
        assert result["rc"] == 0 and result["granted_qos"] == 0, (op, result, self.evidence())

    def shadow_reply(self, reply_type):
        event = self.wait(
            lambda e: e["event"] == "shadow" and e["payload"].get("type") == reply_type,
            f"a '{reply_type}' message on $shadow/operation/result",
        )
        assert event["topic"] == f"$shadow/operation/result/{self.product_id}/{self.device_name}"
        return event["payload"]

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.pump.join()
        for f in (self.proc.stdin, self.proc.stdout, self.stderr):
            f.close()


@pytest.fixture(scope="module")
def product(hub):
    req = models.CreateProductRequest()
    req.ProductName = "device-sdk"
    props = models.ProductProperties()
    props.EncryptionType = "2"  # key authentication
    req.ProductProperties = props
    return client_for(hub).CreateProduct(req).ProductId


@pytest.fixture
def device(request, hub, product, device_sdk_path):
    """A fresh device per test, connected through Tencent's device SDK."""
    name = request.node.name.removeprefix("test_")[:40].replace("_", "-")
    req = models.CreateDeviceRequest()
    req.ProductId = product
    req.DeviceName = name
    psk = client_for(hub).CreateDevice(req).DevicePsk
    d = Device(hub, device_sdk_path, product, name, psk)
    try:
        d.connected()
        yield d
    finally:
        d.close()


def test_shadow_get_on_empty_shadow(device):
    device.subscribe_ok("shadow_init")
    assert device.call("shadow_get")["rc"] == 0
    reply = device.shadow_reply("get")
    assert reply["clientToken"] == f"{device.product_id}-0"
    assert reply["result"] == 0
    assert reply["payload"]["version"] == 0
    assert reply["payload"]["state"].get("reported", {}) == {}
    assert "desired" not in reply["payload"]["state"]
    assert isinstance(reply["timestamp"], int)


def test_shadow_report_then_get(device):
    device.subscribe_ok("shadow_init")
    sent = device.call("shadow_report", reported={"updateCount": 1, "updateCount12": "shadow"})
    assert sent["rc"] == 0
    assert sent["doc"]["type"] == "update" and "version" not in sent["doc"]
    updated = device.shadow_reply("update")
    assert updated["clientToken"] == sent["doc"]["clientToken"]
    assert updated["result"] == 0
    version = updated["payload"]["version"]
    assert isinstance(version, int) and version >= 1
    assert updated["payload"]["state"]["reported"] == {"updateCount": 1, "updateCount12": "shadow"}

    assert device.call("shadow_get")["rc"] == 0
    got = device.shadow_reply("get")
    assert got["result"] == 0
    assert got["payload"]["version"] == version
    assert got["payload"]["state"]["reported"] == {"updateCount": 1, "updateCount12": "shadow"}


def test_cloud_desired_reaches_the_device_as_delta(device, hub):
    device.subscribe_ok("shadow_init")
    device.call("shadow_report", reported={"color": "blue"})
    version = device.shadow_reply("update")["payload"]["version"]

    client = client_for(hub)
    req = models.DescribeDeviceShadowRequest()
    req.ProductId, req.DeviceName = device.product_id, device.device_name
    described = json.loads(client.DescribeDeviceShadow(req).Data)
    assert described["payload"]["version"] == version

    req = models.UpdateDeviceShadowRequest()
    req.ProductId, req.DeviceName = device.product_id, device.device_name
    req.State = json.dumps({"desired": {"color": "red"}})
    req.ShadowVersion = version
    data = json.loads(client.UpdateDeviceShadow(req).Data)
    assert data["payload"]["version"] > version

    delta = device.shadow_reply("delta")
    # Tencent's C and Java SDKs read the delta keys flat under payload.state.
    assert delta["payload"]["state"]["color"] == "red"
    assert delta["payload"]["version"] == data["payload"]["version"]

    # The SDK's sample answers a delta by clearing desired.
    cleared = device.call("shadow_desired_null")
    assert cleared["doc"]["state"] == {"desired": None}
    reply = device.shadow_reply("update")
    assert reply["clientToken"] == cleared["doc"]["clientToken"] and reply["result"] == 0


def test_ntp_time(device):
    result = device.call("ntp")
    # getNtpAccurateTime answers -1 when no `{"type":"get","time":..,"ntptime1":..,
    # "ntptime2":..}` came back on $sys/operation/result within its own 1.5 s.
    assert result["ntp_ms"] != -1, device.evidence()
    assert result["before"] - 5 <= result["ntp_ms"] / 1000 <= result["after"] + 5


def test_log_level_get_and_push(device, hub):
    """Version 1.0.0 of the Python SDK has no log-level API: this uses its generic
    subscribe/publish with the request Tencent's C SDK sends."""
    pid, dn = device.product_id, device.device_name
    result_topic = f"$log/operation/result/{pid}/{dn}"
    device.subscribe_ok("user_subscribe", topic=result_topic)
    request = {"type": "get_log_level", "clientToken": f"{pid}-1"}
    assert device.call("publish", topic=f"$log/operation/{pid}/{dn}", payload=request)["rc"] == 0
    got = device.wait(lambda e: e["event"] == "user" and e["topic"] == result_topic,
                      "the get_log_level reply")["payload"]
    assert got["type"] == "get_log_level" and got["clientToken"] == f"{pid}-1"
    assert got["result"] == 0 and got["log_level"] in range(5)

    req = models.UpdateDeviceLogLevelRequest()
    req.ProductId, req.DeviceName, req.LogLevel = pid, dn, 4
    client_for(hub).UpdateDeviceLogLevel(req)
    pushed = device.wait(lambda e: e["event"] == "user" and e["topic"] == result_topic,
                         "the log level push")["payload"]
    assert pushed["log_level"] == 4


def test_rrpc(device, hub):
    device.subscribe_ok("rrpc_init", reply="ok")  # the reply of the SDK's sample
    req = models.PublishRRPCMessageRequest()
    req.ProductId, req.DeviceName = device.product_id, device.device_name
    # The SDK JSON-decodes every payload it receives, so the request is JSON.
    req.Payload = json.dumps({"action": "open"})
    answer = client_for(hub).PublishRRPCMessage(req)

    request = device.wait(lambda e: e["event"] == "rrpc", "the RRPC request")
    # The SDK hands its callback the topic without the trailing processId.
    assert request["topic"] == f"$rrpc/rxd/{device.product_id}/{device.device_name}"
    assert request["payload"] == {"action": "open"}
    assert isinstance(answer.MessageId, int) and answer.MessageId > 0
    # rrpcReply JSON-encodes the reply: "ok" goes out as the 4 bytes "ok" with quotes.
    assert base64.b64decode(answer.PayloadBase64) == b'"ok"'


def test_broadcast(device, hub):
    device.subscribe_ok("broadcast_init")
    req = models.PublishBroadcastMessageRequest()
    req.ProductId = device.product_id
    req.Payload = json.dumps({"notice": "maintenance"})
    req.Qos = 0
    task = client_for(hub).PublishBroadcastMessage(req)
    assert isinstance(task.TaskId, int)

    got = device.wait(lambda e: e["event"] == "broadcast", "the broadcast")
    assert got["topic"] == f"$broadcast/rxd/{device.product_id}/{device.device_name}"
    assert got["payload"] == {"notice": "maintenance"}


def test_reconnect_reuses_the_sdk_credentials(device):
    """The SDK signs `{ClientId};21010406;{connid};{now in ms}` once, when it is built, and
    sends that same username on every later (re)connect, so the last field is the signing
    time, not an expiry: a reconnect seconds (or days) later must still be accepted."""
    result = device.call("reconnect", timeout=WAIT_S + 30)  # the helper waits WAIT_S
    assert result["connected"], (
        f"the SDK's reconnect, {result['started_after_s']:.1f} s after it signed its "
        f"username, was still refused {result['gave_up_after_s']:.1f} s after{device.evidence()}"
    )
    device.subscribe_ok("shadow_init")
    assert device.call("shadow_get")["rc"] == 0
    assert device.shadow_reply("get")["result"] == 0
