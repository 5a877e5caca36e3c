"""Starts a real `eddy serve` for the Python tests.

The binary comes from TEST_EDDY_BIN (scripts/test sets it; a name outside the EDDY_
prefix, which `eddy serve` reads as configuration). Each test module gets its own hub
with a fresh data dir and an ephemeral API port read from the hub's stdout.
"""

import json
import os
import queue
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

START_TIMEOUT_S = 120


class Hub:
    def __init__(self, root: Path, extra_toml: str = ""):
        self.root = root
        self.data_dir = root / "data"
        config = root / "eddy.toml"
        config.write_text(
            f'data-dir = "{self.data_dir}"\n'
            '[api]\nlisten = "127.0.0.1:0"\n'
            '[mqtt]\nlisten = "127.0.0.1:0"\ndevice-connect-interval = "0s"\n'
            'tls-listen = "127.0.0.1:0"\nws-listen = "127.0.0.1:0"\nwss-listen = "127.0.0.1:0"\n'
            '[coap]\nlisten = "127.0.0.1:0"\ndtls-listen = "127.0.0.1:0"\n'
            + extra_toml
        )
        binary = os.environ.get("TEST_EDDY_BIN")
        if not binary or not Path(binary).is_file():
            raise RuntimeError(
                "TEST_EDDY_BIN must name the built eddy binary (scripts/test sets it)"
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDDY_")}
        self.log = open(root / "hub.log", "wb")
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        lines: "queue.Queue[str]" = queue.Queue()

        def pump():
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)  # the hub closed its stdout: it exited

        threading.Thread(target=pump, daemon=True).start()
        self.endpoint = None
        self.mqtt_host, self.mqtt_port = None, None
        # Other listeners by name ("tls", "ws", "wss", "coap", "coap-dtls"): (host, port).
        self.listeners = {}
        while self.endpoint is None:
            try:
                line = lines.get(timeout=START_TIMEOUT_S)
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                log = (self.root / "hub.log").read_text()
                raise RuntimeError(f"eddy serve did not report its API address; its log:\n{log}")
            if line.startswith("eddy: mqtt listening on "):
                host, port = line.strip().removeprefix("eddy: mqtt listening on ").rsplit(":", 1)
                self.mqtt_host, self.mqtt_port = host, int(port)
            elif line.startswith("eddy: ") and " listening on " in line:
                name, addr = line.strip().removeprefix("eddy: ").split(" listening on ", 1)
                if not addr.startswith("http"):
                    host, port = addr.rsplit(":", 1)
                    self.listeners[name.removeprefix("mqtt-")] = (host, int(port))
            if line.startswith("eddy: api listening on http://"):
                self.endpoint = line.strip().removeprefix("eddy: api listening on http://")
        creds = json.loads((self.data_dir / "admin-credentials.json").read_text())
        self.secret_id = creds["SecretId"]
        self.secret_key = creds["SecretKey"]

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def hub():
    with tempfile.TemporaryDirectory(prefix="eddy-py-") as root:
        h = Hub(Path(root))
        yield h
        h.stop()


# Open-broker mode: anonymous generic clients, every topic.
OPEN_BROKER = """
[mqtt.clients]
enabled = true
anonymous = true

[[mqtt.clients.acl]]
permission = "allow"
action = "all"
topics = ["#"]
"""


@pytest.fixture(scope="module")
def open_hub():
    with tempfile.TemporaryDirectory(prefix="eddy-py-open-") as root:
        h = Hub(Path(root), OPEN_BROKER)
        yield h
        h.stop()
