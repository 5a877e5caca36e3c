-- Device groups (Eddy's: Tencent's iotcloud API has none): named sets of devices of any
-- products, used as the target of update tasks and broadcasts. Deleting a group or a
-- device removes its memberships. created_at is Unix seconds.

CREATE TABLE device_groups (
    group_name  TEXT    PRIMARY KEY,
    description TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE device_group_members (
    group_name  TEXT NOT NULL REFERENCES device_groups (group_name) ON DELETE CASCADE,
    product_id  TEXT NOT NULL,
    device_name TEXT NOT NULL,
    PRIMARY KEY (group_name, product_id, device_name),
    FOREIGN KEY (product_id, device_name)
        REFERENCES devices (product_id, device_name) ON DELETE CASCADE
) STRICT;
