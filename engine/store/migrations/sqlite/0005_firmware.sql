-- OTA: firmware versions per product (the file itself lives under
-- <data-dir>/firmware/<product>/<version>), update tasks, and each device's state in a
-- task. Per-device status follows Tencent's numbers: 1 pending, 2 delivered, 3 downloading,
-- 4 burning, 5 failed, 6 done, 9 cancelled (Eddy's), 10 timed out. Times are Unix seconds.

CREATE TABLE firmwares (
    product_id   TEXT    NOT NULL REFERENCES products (product_id) ON DELETE CASCADE,
    version      TEXT    NOT NULL,
    name         TEXT    NOT NULL DEFAULT '',
    description  TEXT    NOT NULL DEFAULT '',
    user_defined TEXT    NOT NULL DEFAULT '',
    md5          TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (product_id, version)
) STRICT;

CREATE TABLE firmware_tasks (
    task_id          INTEGER PRIMARY KEY,
    product_id       TEXT    NOT NULL,
    version          TEXT    NOT NULL,
    original_version TEXT    NOT NULL DEFAULT '',
    upgrade_mode     TEXT    NOT NULL,
    task_type        INTEGER NOT NULL,
    timeout_secs     INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    FOREIGN KEY (product_id, version)
        REFERENCES firmwares (product_id, version) ON DELETE CASCADE
) STRICT;

CREATE TABLE firmware_task_devices (
    task_id     INTEGER NOT NULL REFERENCES firmware_tasks (task_id) ON DELETE CASCADE,
    product_id  TEXT    NOT NULL,
    device_name TEXT    NOT NULL,
    status      INTEGER NOT NULL,
    percent     INTEGER NOT NULL DEFAULT 0,
    retcode     INTEGER NOT NULL DEFAULT 0,
    message     TEXT    NOT NULL DEFAULT '',
    ori_version TEXT    NOT NULL DEFAULT '',
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (task_id, device_name)
) STRICT;

CREATE INDEX firmware_task_devices_by_device
    ON firmware_task_devices (product_id, device_name, status);
