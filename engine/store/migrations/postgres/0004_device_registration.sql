-- Dynamic registration: when a device last fetched its credentials through
-- /device/register or /register/dev (Unix seconds; NULL if it never did). The devices
-- with a value count against their product's register_limit.
--
-- The PostgreSQL twin of migrations/sqlite/0004_device_registration.sql.

ALTER TABLE devices ADD COLUMN registered_at BIGINT;
