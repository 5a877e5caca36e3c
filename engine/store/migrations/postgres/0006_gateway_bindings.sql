-- Gateways and their sub-devices (Tencent §6): which gateway device a sub-device is bound
-- to (at most one). Deleting either device deletes the binding. bound_at is Unix seconds.
--
-- The PostgreSQL twin of migrations/sqlite/0006_gateway_bindings.sql.

CREATE TABLE gateway_bindings (
    product_id          TEXT COLLATE "C" NOT NULL,
    device_name         TEXT COLLATE "C" NOT NULL,
    gateway_product_id  TEXT COLLATE "C" NOT NULL,
    gateway_device_name TEXT COLLATE "C" NOT NULL,
    bound_at            BIGINT NOT NULL,
    CONSTRAINT gateway_bindings_pkey PRIMARY KEY (product_id, device_name),
    CONSTRAINT gateway_bindings_device_fkey FOREIGN KEY (product_id, device_name)
        REFERENCES devices (product_id, device_name) ON DELETE CASCADE,
    CONSTRAINT gateway_bindings_gateway_fkey FOREIGN KEY (gateway_product_id, gateway_device_name)
        REFERENCES devices (product_id, device_name) ON DELETE CASCADE
);

CREATE INDEX gateway_bindings_by_gateway
    ON gateway_bindings (gateway_product_id, gateway_device_name);
