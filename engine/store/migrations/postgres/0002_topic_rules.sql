-- Rule engine: Tencent's topic rules (CreateTopicRule and friends).
-- `sql` is the decoded statement (the API carries it base64-encoded); `actions` and
-- `error_actions` are the JSON texts as given (`error_actions` is '' when there are none).
-- Timestamps are Unix seconds. Listings order by created_at, then name.
--
-- The PostgreSQL twin of migrations/sqlite/0002_topic_rules.sql; the name uses the "C"
-- collation so that it compares and sorts bytewise like SQLite's BINARY.

CREATE TABLE topic_rules (
    rule_name     TEXT COLLATE "C" NOT NULL,
    sql           TEXT    NOT NULL,
    actions       TEXT    NOT NULL,
    error_actions TEXT    NOT NULL DEFAULT '',
    description   TEXT    NOT NULL DEFAULT '',
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT  NOT NULL,
    modified_at   BIGINT  NOT NULL,
    CONSTRAINT topic_rules_pkey PRIMARY KEY (rule_name)
);
