"""Generic MQTT clients in open-broker mode: Debian's mosquitto_pub / mosquitto_sub and
paho-mqtt, MQTT 5, with no Tencent credentials at all."""

import queue
import subprocess
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from test_mqtt_clients import STEP_S, mosquitto


def test_mosquitto_retained_qos2_over_mqtt5(open_hub):
    sub_tool, pub_tool = mosquitto("mosquitto_sub"), mosquitto("mosquitto_pub")
    host, port = open_hub.mqtt_host, str(open_hub.mqtt_port)
    topic = f"plant/{uuid.uuid4().hex}/state"
    done = subprocess.run(
        [pub_tool, "-h", host, "-p", port, "-V", "mqttv5", "-q", "2", "-r",
         "-t", topic, "-m", "running"],
        capture_output=True, text=True, timeout=STEP_S,
    )
    assert done.returncode == 0, done.stderr
    # A later subscriber gets the retained message, flagged retained (%r).
    got = subprocess.run(
        [sub_tool, "-h", host, "-p", port, "-V", "mqttv5", "-q", "2",
         "-t", topic.rsplit("/", 1)[0] + "/+", "-C", "1", "-W", str(STEP_S),
         "-F", "%r %q %t %p"],
        capture_output=True, text=True, timeout=STEP_S,
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == f"1 2 {topic} running"


def test_paho_v5_properties_and_shared_subscription(open_hub):
    received = queue.Queue()

    def connect(client_id):
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        acks = queue.Queue()
        c.on_connect = lambda cl, ud, flags, rc, props: acks.put(("connack", rc))
        c.on_subscribe = lambda cl, ud, mid, rcs, props: acks.put(("suback", rcs))
        c.on_message = lambda cl, ud, msg: received.put((client_id, msg))
        c.connect(open_hub.mqtt_host, open_hub.mqtt_port, keepalive=60)
        c.loop_start()
        kind, rc = acks.get(timeout=STEP_S)
        assert (kind, rc.is_failure) == ("connack", False)
        return c, acks

    workers = []
    for name in ("w1", "w2"):
        c, acks = connect(name)
        c.subscribe(("$share/g/jobs/#", SubscribeOptions(qos=2)))
        kind, rcs = acks.get(timeout=STEP_S)
        assert kind == "suback" and rcs[0].value == 2
        workers.append(c)
    pub, _ = connect("boss")
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "replies/boss"
    props.CorrelationData = b"42"
    props.UserProperty = ("job", "yes")
    for i in range(6):
        pub.publish(f"jobs/{i}", f"job {i}", qos=2, properties=props).wait_for_publish(STEP_S)
    by_worker = {"w1": 0, "w2": 0}
    for _ in range(6):
        who, msg = received.get(timeout=STEP_S)
        by_worker[who] += 1
        assert msg.qos == 2
        assert msg.properties.ResponseTopic == "replies/boss"
        assert msg.properties.CorrelationData == b"42"
        assert ("job", "yes") in msg.properties.UserProperty
    assert by_worker == {"w1": 3, "w2": 3}
    assert received.empty()
    for c in workers + [pub]:
        c.loop_stop()
        c.disconnect()
