"""MQTT over TLS with Python's ssl module (server certificate + Tencent's HMAC password, as
Tencent's Python device SDK connects) and over WebSocket, plain (ws) and secure (wss), with
paho-mqtt's websockets transport, against a real hub."""

import queue
import socket
import ssl
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from test_mqtt_clients import STEP_S, credentials, new_device, publish_when_subscribed
from tencentcloud.iotcloud.v20210408 import models

from test_tencent_sdk import client_for, create_product


class Device:
    """A paho client over `transport` ("tcp" or "websockets"), optionally with TLS that
    trusts the hub's development CA, and optionally a client certificate."""

    def __init__(self, hub, creds, listener, transport="tcp", tls=False, ca=None, cert=None):
        client_id, username, password = creds
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            transport=transport,
        )
        self.client.username_pw_set(username, password)
        if transport == "websockets":
            self.client.ws_set_options(path="/mqtt")
        if tls:
            certfile, keyfile = cert if cert else (None, None)
            self.client.tls_set(
                ca_certs=str(ca or hub.data_dir / "tls" / "ca.pem"),
                certfile=certfile,
                keyfile=keyfile,
            )
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.messages = queue.Queue()
        self.reason = None

        def on_connect(_c, _u, _flags, reason_code, _props):
            self.reason = reason_code
            self.connected.set()

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        host, port = hub.listeners[listener]
        self.client.connect(host, port, keepalive=60)
        self.client.loop_start()
        assert self.connected.wait(STEP_S), "no CONNACK"

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def exchange(hub, api, pid, name, device):
    """Both directions: PublishMessage reaches the device, and its own QoS 1 publish on
    its data topic comes back to its subscription."""
    assert not device.reason.is_failure, device.reason
    control, data = f"{pid}/{name}/control", f"{pid}/{name}/data"
    device.client.subscribe([(control, 1), (data, 1)])
    assert device.subscribed.wait(STEP_S)
    publish_when_subscribed(api, pid, name, control, "down")
    msg = device.messages.get(timeout=STEP_S)
    assert (msg.topic, msg.payload) == (control, b"down")
    device.client.publish(data, b"up and back", qos=1).wait_for_publish(STEP_S)
    msg = device.messages.get(timeout=STEP_S)
    assert (msg.topic, msg.payload) == (data, b"up and back")


def test_tls_with_server_certificate_and_hmac_password(hub):
    api = client_for(hub)
    product = create_product(api, "py-tls", "2")
    pid = product.ProductId
    psk = new_device(api, pid, "dev")
    device = Device(hub, credentials(pid, "dev", psk), "tls", tls=True)
    try:
        assert device.client.socket().version() in ("TLSv1.2", "TLSv1.3")
        exchange(hub, api, pid, "dev", device)
    finally:
        device.close()
    # The HMAC password is still checked over TLS.
    wrong = Device(hub, credentials(pid, "dev", "d3Jvbmcga2V5IDE2Ynl0ZQ=="), "tls", tls=True)
    try:
        assert wrong.reason.is_failure and wrong.reason.value in (4, 134), wrong.reason
    finally:
        wrong.close()


def test_tls_server_certificate_is_checked_by_the_client(hub, tmp_path):
    """A client that trusts another CA refuses the hub (the hub really presents its
    configured certificate, not something any client would accept)."""
    other_ca = tmp_path / "other-ca.pem"
    # The plain listener's "certificate" does not exist; any self-made CA will do.
    import subprocess

    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(tmp_path / "k.pem"), "-out", str(other_ca),
         "-subj", "/CN=not the hub", "-days", "1"],
        check=True, capture_output=True,
    )
    context = ssl.create_default_context(cafile=str(other_ca))
    host, port = hub.listeners["tls"]
    with socket.create_connection((host, port), timeout=STEP_S) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(raw, server_hostname=host)


def new_cert_device(api, product_id, name, tmp_path):
    """CreateDevice in a certificate product; its certificate and key as files."""
    req = models.CreateDeviceRequest()
    req.ProductId = product_id
    req.DeviceName = name
    created = api.CreateDevice(req)
    cert = tmp_path / f"{product_id}-{name}.crt"
    key = tmp_path / f"{product_id}-{name}.key"
    cert.write_text(created.DeviceCert)
    key.write_text(created.DevicePrivateKey)
    return str(cert), str(key)


def test_tls_client_certificate_devices(hub, tmp_path):
    api = client_for(hub)
    pid = create_product(api, "py-cert", "1").ProductId
    other = create_product(api, "py-cert-other", "1").ProductId
    mine = new_cert_device(api, pid, "dev", tmp_path)
    foreign = new_cert_device(api, other, "dev", tmp_path)
    # Tencent's SDKs send a user name; for certificate devices the password is not checked.
    user = f"{pid}dev;12010126;x9Y2z;{int(time.time()) + 3600}"
    device = Device(hub, (f"{pid}dev", user, None), "tls", tls=True, cert=mine)
    try:
        exchange(hub, api, pid, "dev", device)
    finally:
        device.close()
    # Over wss too.
    device = Device(
        hub, (f"{pid}dev", user, None), "wss", transport="websockets", tls=True, cert=mine
    )
    try:
        assert not device.reason.is_failure, device.reason
    finally:
        device.close()
    # The same device name's certificate from another product, and no certificate.
    for cert in (foreign, None):
        refused = Device(hub, (f"{pid}dev", user, None), "tls", tls=True, cert=cert)
        try:
            assert refused.reason.is_failure and refused.reason.value in (5, 135), refused.reason
        finally:
            refused.close()


@pytest.mark.parametrize("listener", ["ws", "wss"])
def test_websocket(hub, listener):
    api = client_for(hub)
    product = create_product(api, f"py-{listener}", "2")
    pid = product.ProductId
    psk = new_device(api, pid, "dev")
    device = Device(
        hub, credentials(pid, "dev", psk), listener,
        transport="websockets", tls=(listener == "wss"),
    )
    try:
        exchange(hub, api, pid, "dev", device)
    finally:
        device.close()


def test_websocket_on_another_path_is_not_found(hub):
    host, port = hub.listeners["ws"]
    with socket.create_connection((host, port), timeout=STEP_S) as s:
        s.sendall(
            b"GET /elsewhere HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
        )
        status = s.recv(1024).split(b"\r\n", 1)[0]
    assert b" 404 " in status, status
