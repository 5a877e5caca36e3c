-- Device services: one shadow document per device (Tencent's device shadow).
-- `reported` and `desired` are JSON object texts. `version` is 1 after the first write and
-- grows by one with every write; a device without a row has version 0. `updated_at` is
-- Unix milliseconds. Deleting a device deletes its shadow.
--
-- The PostgreSQL twin of migrations/sqlite/0003_device_shadows.sql.

CREATE TABLE device_shadows (
    product_id  TEXT COLLATE "C" NOT NULL,
    device_name TEXT COLLATE "C" NOT NULL,
    reported    TEXT   NOT NULL,
    desired     TEXT   NOT NULL,
    version     BIGINT NOT NULL CHECK (version > 0),
    updated_at  BIGINT NOT NULL,
    CONSTRAINT device_shadows_pkey PRIMARY KEY (product_id, device_name),
    CONSTRAINT device_shadows_device_fkey FOREIGN KEY (product_id, device_name)
        REFERENCES devices (product_id, device_name) ON DELETE CASCADE
);
