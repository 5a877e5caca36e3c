-- Gateways and their sub-devices (Tencent §6): which gateway device a sub-device is bound
-- to (at most one). Deleting either device deletes the binding. bound_at is Unix seconds.

CREATE TABLE gateway_bindings (
    product_id          TEXT    NOT NULL,
    device_name         TEXT    NOT NULL,
    gateway_product_id  TEXT    NOT NULL,
    gateway_device_name TEXT    NOT NULL,
    bound_at            INTEGER NOT NULL,
    PRIMARY KEY (product_id, device_name),
    FOREIGN KEY (product_id, device_name)
        REFERENCES devices (product_id, device_name) ON DELETE CASCADE,
    FOREIGN KEY (gateway_product_id, gateway_device_name)
        REFERENCES devices (product_id, device_name) ON DELETE CASCADE
) STRICT;

CREATE INDEX gateway_bindings_by_gateway
    ON gateway_bindings (gateway_product_id, gateway_device_name);
