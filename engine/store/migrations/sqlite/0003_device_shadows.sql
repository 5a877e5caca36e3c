-- Device services: one shadow document per device (Tencent's device shadow).
-- `reported` and `desired` are JSON object texts. `version` is 1 after the first write and
-- grows by one with every write; a device without a row has version 0. `updated_at` is
-- Unix milliseconds. Deleting a device deletes its shadow.

CREATE TABLE device_shadows (
    product_id  TEXT    NOT NULL,
    device_name TEXT    NOT NULL,
    reported    TEXT    NOT NULL,
    desired     TEXT    NOT NULL,
    version     INTEGER NOT NULL CHECK (version > 0),
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (product_id, device_name),
    FOREIGN KEY (product_id, device_name)
        REFERENCES devices (product_id, device_name) ON DELETE CASCADE
) STRICT;
