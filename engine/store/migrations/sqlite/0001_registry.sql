-- Registry: products, devices and their credentials, topic policies, API keys.
-- Timestamps are Unix seconds. Secrets are stored as given (HMAC verification needs them).
-- `seq` (an alias of SQLite's rowid, which VACUUM keeps because it is declared) orders
-- listings by insertion when created_at ties.

CREATE TABLE products (
    seq              INTEGER PRIMARY KEY,
    product_id       TEXT    NOT NULL UNIQUE,
    product_name     TEXT    NOT NULL UNIQUE,
    description      TEXT    NOT NULL DEFAULT '',
    encryption_type  INTEGER NOT NULL CHECK (encryption_type IN (1, 2)),
    product_type     INTEGER NOT NULL DEFAULT 0,
    format           TEXT    NOT NULL DEFAULT 'json',
    region           TEXT    NOT NULL DEFAULT '',
    register_type    INTEGER NOT NULL DEFAULT 0 CHECK (register_type IN (0, 1, 2)),
    register_limit   INTEGER NOT NULL DEFAULT 0,
    product_secret   TEXT    NOT NULL,
    ca_cert_pem      TEXT,
    ca_key_pem       TEXT,
    created_at       INTEGER NOT NULL
) STRICT;

CREATE TABLE devices (
    seq              INTEGER PRIMARY KEY,
    product_id       TEXT    NOT NULL REFERENCES products (product_id) ON DELETE RESTRICT,
    device_name      TEXT    NOT NULL,
    psk              TEXT,
    cert_pem         TEXT,
    enabled          INTEGER NOT NULL DEFAULT 1,
    online           INTEGER NOT NULL DEFAULT 0,
    first_online_at  INTEGER,
    login_at         INTEGER,
    last_offline_at  INTEGER,
    client_ip        TEXT,
    log_level        INTEGER NOT NULL DEFAULT 0,
    firmware_version TEXT    NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (product_id, device_name)
) STRICT;

CREATE TABLE topic_policies (
    product_id  TEXT    NOT NULL REFERENCES products (product_id) ON DELETE CASCADE,
    suffix      TEXT    NOT NULL,
    privilege   INTEGER NOT NULL CHECK (privilege IN (1, 2, 3)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (product_id, suffix)
) STRICT;

CREATE TABLE api_keys (
    secret_id   TEXT    PRIMARY KEY,
    secret_key  TEXT    NOT NULL,
    origin      TEXT    NOT NULL CHECK (origin IN ('config', 'generated', 'created')),
    description TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
) STRICT;
