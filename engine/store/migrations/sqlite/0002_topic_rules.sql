-- Rule engine: Tencent's topic rules (CreateTopicRule and friends).
-- `sql` is the decoded statement (the API carries it base64-encoded); `actions` and
-- `error_actions` are the JSON texts as given (`error_actions` is '' when there are none).
-- Timestamps are Unix seconds. Listings order by created_at, then name.

CREATE TABLE topic_rules (
    rule_name     TEXT    PRIMARY KEY,
    sql           TEXT    NOT NULL,
    actions       TEXT    NOT NULL,
    error_actions TEXT    NOT NULL DEFAULT '',
    description   TEXT    NOT NULL DEFAULT '',
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    modified_at   INTEGER NOT NULL
) STRICT;
