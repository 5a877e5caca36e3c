-- Registry: products, devices and their credentials, topic policies, API keys.
-- Timestamps are Unix seconds. Secrets are stored as given (HMAC verification needs them).
--
-- The PostgreSQL twin of migrations/sqlite/0001_registry.sql: same tables, columns, keys
-- and checks. SQLite's 64-bit INTEGER is BIGINT here and its 0/1 flags are BOOLEAN.
-- Identifier columns use the "C" collation so that they compare and sort (ORDER BY suffix)
-- bytewise like SQLite's BINARY, whatever the database's locale.
-- Unique constraints are named because the store tells "product name" from "product id"
-- clashes by constraint name.
--
-- Products and devices carry a `seq` identity column (SQLite: INTEGER PRIMARY KEY) so that
-- both stores list in insertion order when created_at ties: `ORDER BY created_at, seq`.

CREATE TABLE products (
    seq              BIGINT  GENERATED ALWAYS AS IDENTITY,
    product_id       TEXT COLLATE "C" NOT NULL,
    product_name     TEXT COLLATE "C" NOT NULL,
    description      TEXT    NOT NULL DEFAULT '',
    encryption_type  BIGINT  NOT NULL CHECK (encryption_type IN (1, 2)),
    product_type     BIGINT  NOT NULL DEFAULT 0,
    format           TEXT    NOT NULL DEFAULT 'json',
    region           TEXT    NOT NULL DEFAULT '',
    register_type    BIGINT  NOT NULL DEFAULT 0 CHECK (register_type IN (0, 1, 2)),
    register_limit   BIGINT  NOT NULL DEFAULT 0,
    product_secret   TEXT    NOT NULL,
    ca_cert_pem      TEXT,
    ca_key_pem       TEXT,
    created_at       BIGINT  NOT NULL,
    CONSTRAINT products_pkey PRIMARY KEY (product_id),
    CONSTRAINT products_product_name_key UNIQUE (product_name)
);

CREATE TABLE devices (
    seq              BIGINT  GENERATED ALWAYS AS IDENTITY,
    product_id       TEXT COLLATE "C" NOT NULL
                     REFERENCES products (product_id) ON DELETE RESTRICT,
    device_name      TEXT COLLATE "C" NOT NULL,
    psk              TEXT,
    cert_pem         TEXT,
    enabled          BOOLEAN NOT NULL DEFAULT TRUE,
    online           BOOLEAN NOT NULL DEFAULT FALSE,
    first_online_at  BIGINT,
    login_at         BIGINT,
    last_offline_at  BIGINT,
    client_ip        TEXT,
    log_level        BIGINT  NOT NULL DEFAULT 0,
    firmware_version TEXT    NOT NULL DEFAULT '',
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    CONSTRAINT devices_pkey PRIMARY KEY (product_id, device_name)
);

CREATE TABLE topic_policies (
    product_id  TEXT COLLATE "C" NOT NULL
                REFERENCES products (product_id) ON DELETE CASCADE,
    suffix      TEXT COLLATE "C" NOT NULL,
    privilege   BIGINT  NOT NULL CHECK (privilege IN (1, 2, 3)),
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    CONSTRAINT topic_policies_pkey PRIMARY KEY (product_id, suffix)
);

CREATE TABLE api_keys (
    secret_id   TEXT COLLATE "C" NOT NULL,
    secret_key  TEXT    NOT NULL,
    origin      TEXT    NOT NULL CHECK (origin IN ('config', 'generated', 'created')),
    description TEXT    NOT NULL DEFAULT '',
    created_at  BIGINT  NOT NULL,
    CONSTRAINT api_keys_pkey PRIMARY KEY (secret_id)
);
