-- Device groups (Eddy's: Tencent's iotcloud API has none): named sets of devices of any
-- products, used as the target of update tasks and broadcasts. Deleting a group or a
-- device removes its memberships. created_at is Unix seconds.
--
-- The PostgreSQL twin of migrations/sqlite/0007_device_groups.sql.

CREATE TABLE device_groups (
    group_name  TEXT COLLATE "C" NOT NULL,
    description TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    CONSTRAINT device_groups_pkey PRIMARY KEY (group_name)
);

CREATE TABLE device_group_members (
    group_name  TEXT COLLATE "C" NOT NULL
                REFERENCES device_groups (group_name) ON DELETE CASCADE,
    product_id  TEXT COLLATE "C" NOT NULL,
    device_name TEXT COLLATE "C" NOT NULL,
    CONSTRAINT device_group_members_pkey PRIMARY KEY (group_name, product_id, device_name),
    CONSTRAINT device_group_members_device_fkey FOREIGN KEY (product_id, device_name)
        REFERENCES devices (product_id, device_name) ON DELETE CASCADE
);
