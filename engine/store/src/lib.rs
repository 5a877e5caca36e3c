//! # eddy-store — where metadata lives
//!
//! Products, devices and their credentials, topic policies, API keys and topic rules
//! and device shadows (later: firmware, tasks) sit behind one async trait, [`Store`]. The embedded default is
//! SQLite ([`SqliteStore`]: bundled, WAL, `synchronous=FULL`, versioned migrations under
//! `migrations/sqlite/`). For many hub nodes sharing one database there is PostgreSQL
//! ([`PgStore`], migrations under `migrations/postgres/`); the trait speaks only in
//! registry records and plain SQL-shaped operations, and `tests/conformance.rs` runs one
//! suite against both backends so they keep the same semantics.
//!
//! The store validates nothing about Tencent's rules (the registry does) and knows no
//! transport. It reports uniqueness clashes as [`StoreError::Conflict`] so callers can map
//! them to the API's error codes without string matching.

mod model;
mod postgres;
mod rows;
mod sqlite;

use async_trait::async_trait;
use eddy_core::{DeviceId, DeviceName, ProductId};

pub use model::{
    ApiKeyOrigin, ApiKeyRecord, Bound, CaRecord, DeviceFilter, DeviceRecord, FirmwareRecord,
    FirmwareTaskRecord, GroupRecord, OnlineState, Page, Paged, ProductRecord, Registered,
    ShadowRecord, TaskDeviceFilter, TaskDeviceRecord, TopicPolicyRecord, TopicRuleChange,
    TopicRuleRecord,
};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// What went wrong in the store, by whose fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key already exists (`what` names it: "product name", "device", …).
    #[error("{what} already exists")]
    Conflict { what: &'static str },
    /// A stored row no longer parses (hand-edited database or a bug).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Applying migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database itself failed (I/O, locked, full disk…).
    #[error("database error: {0}")]
    Backend(#[source] sqlx::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Result of [`Store::delete_product`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteProduct {
    Deleted,
    NotFound,
    /// The product still has devices; nothing was deleted.
    HasDevices,
}

/// The metadata store. Every method is one transaction.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// The newest applied migration.
    async fn schema_version(&self) -> Result<i64>;

    // Products.
    async fn insert_product(&self, product: &ProductRecord) -> Result<()>;
    async fn product(&self, id: &ProductId) -> Result<Option<ProductRecord>>;
    async fn list_products(&self, page: Page) -> Result<Paged<ProductRecord>>;
    async fn delete_product(&self, id: &ProductId) -> Result<DeleteProduct>;
    /// Returns false when the product does not exist.
    async fn update_product_registration(
        &self,
        id: &ProductId,
        register_type: i64,
        register_limit: i64,
    ) -> Result<bool>;

    // Devices.
    async fn insert_device(&self, device: &DeviceRecord) -> Result<()>;
    async fn device(&self, product: &ProductId, name: &DeviceName) -> Result<Option<DeviceRecord>>;
    async fn list_devices(
        &self,
        product: &ProductId,
        filter: &DeviceFilter,
        page: Page,
    ) -> Result<Paged<DeviceRecord>>;
    async fn delete_device(&self, product: &ProductId, name: &DeviceName) -> Result<bool>;
    /// Sets the enable state of the named devices, all or none: returns the names that do
    /// not exist, and changes nothing unless that list is empty.
    async fn set_devices_enabled(
        &self,
        product: &ProductId,
        names: &[DeviceName],
        enabled: bool,
    ) -> Result<Vec<DeviceName>>;
    async fn update_device_psk(
        &self,
        product: &ProductId,
        name: &DeviceName,
        psk_base64: &str,
    ) -> Result<bool>;
    /// Records a connection: online, `login_at`, the client's IP, and the first-online
    /// time if it has none. False when the device does not exist.
    async fn device_connected(
        &self,
        product: &ProductId,
        name: &DeviceName,
        client_ip: &str,
        at: i64,
    ) -> Result<bool>;
    /// Records the end of a connection: offline, `last_offline_at`.
    async fn device_disconnected(
        &self,
        product: &ProductId,
        name: &DeviceName,
        at: i64,
    ) -> Result<bool>;
    /// Returns the device to "never activated": offline, login history cleared.
    async fn reset_device_state(&self, product: &ProductId, name: &DeviceName) -> Result<bool>;

    // Topic policies (custom topic classes).
    async fn insert_topic_policy(&self, policy: &TopicPolicyRecord) -> Result<()>;
    /// Renames and/or re-privileges a policy; false when `old_suffix` does not exist.
    async fn update_topic_policy(
        &self,
        product: &ProductId,
        old_suffix: &str,
        new_suffix: &str,
        privilege: i64,
    ) -> Result<bool>;
    async fn list_topic_policies(&self, product: &ProductId) -> Result<Vec<TopicPolicyRecord>>;

    // API keys.
    async fn upsert_api_key(&self, key: &ApiKeyRecord) -> Result<()>;
    async fn api_key(&self, secret_id: &str) -> Result<Option<ApiKeyRecord>>;
    /// The key the hub generated for itself on first start, if any.
    async fn generated_api_key(&self) -> Result<Option<ApiKeyRecord>>;

    // Topic rules, ordered by creation time, then name.
    /// `Conflict { what: "topic rule" }` when the name is taken.
    async fn insert_topic_rule(&self, rule: &TopicRuleRecord) -> Result<()>;
    async fn topic_rule(&self, name: &str) -> Result<Option<TopicRuleRecord>>;
    async fn list_topic_rules(&self, page: Page) -> Result<Paged<TopicRuleRecord>>;
    /// Every rule, enabled and disabled: what the rule engine loads.
    async fn all_topic_rules(&self) -> Result<Vec<TopicRuleRecord>>;
    /// Replaces a rule's content (created_at stays); false when it does not exist.
    async fn replace_topic_rule(&self, name: &str, change: &TopicRuleChange) -> Result<bool>;
    /// False when the rule does not exist.
    async fn set_topic_rule_disabled(&self, name: &str, disabled: bool, at: i64) -> Result<bool>;
    /// False when the rule does not exist.
    async fn delete_topic_rule(&self, name: &str) -> Result<bool>;

    /// Dynamic registration: gives a device that never connected (since its creation or
    /// last reset) new credentials and marks it registered — if it was registered before,
    /// or fewer than `limit` devices of its product are. One transaction.
    async fn register_device(
        &self,
        product: &ProductId,
        name: &DeviceName,
        psk: Option<&str>,
        cert_pem: Option<&str>,
        limit: i64,
        at: i64,
    ) -> Result<Registered>;

    // Firmware and update tasks (OTA).
    async fn insert_firmware(&self, firmware: &FirmwareRecord) -> Result<()>;
    async fn firmware(&self, product: &ProductId, version: &str) -> Result<Option<FirmwareRecord>>;
    /// Newest first; one product's or every product's.
    async fn list_firmwares(
        &self,
        product: Option<&ProductId>,
        page: Page,
    ) -> Result<Paged<FirmwareRecord>>;
    /// Changes name, description and user-defined text; false if there is no such firmware.
    async fn edit_firmware(&self, firmware: &FirmwareRecord) -> Result<bool>;
    /// Records the firmware version a device reported; false if there is no such device.
    async fn set_device_firmware_version(
        &self,
        product: &ProductId,
        name: &DeviceName,
        version: &str,
        at: i64,
    ) -> Result<bool>;
    /// Creates a task and its devices in one transaction and returns the task id. Fails
    /// with `Conflict { what: "device in an update task" }` if one of the devices is in
    /// another task that has not ended for it (status 1–4).
    async fn create_firmware_task(
        &self,
        task: &FirmwareTaskRecord,
        devices: &[TaskDeviceRecord],
    ) -> Result<i64>;
    async fn firmware_task(&self, task_id: i64) -> Result<Option<FirmwareTaskRecord>>;
    /// Newest first.
    async fn list_firmware_tasks(
        &self,
        product: &ProductId,
        version: &str,
        page: Page,
    ) -> Result<Paged<FirmwareTaskRecord>>;
    /// Ordered by task, then device name.
    async fn task_devices(
        &self,
        product: &ProductId,
        filter: &TaskDeviceFilter,
        page: Page,
    ) -> Result<Paged<TaskDeviceRecord>>;
    /// The device's entry in the newest task that has not ended for it (status 1–4).
    async fn active_task_device(
        &self,
        product: &ProductId,
        name: &DeviceName,
    ) -> Result<Option<TaskDeviceRecord>>;
    /// Writes an entry's status, percent, retcode, message and time if its current status
    /// is one of `from`; false otherwise (or if there is no such entry).
    async fn update_task_device(&self, entry: &TaskDeviceRecord, from: &[i64]) -> Result<bool>;
    /// Marks timed out (10) every delivered, downloading or burning entry whose last
    /// change is more than its task's timeout before `now`; how many it marked.
    async fn time_out_task_devices(&self, now: i64) -> Result<u64>;
    /// How many task entries have each status: one task's, or a whole firmware version's.
    async fn task_status_counts(
        &self,
        product: &ProductId,
        version: &str,
        task_id: Option<i64>,
    ) -> Result<Vec<(i64, i64)>>;

    // Gateways and sub-devices.
    /// Binds `sub` to `gateway` unless it is bound to another one or the gateway already
    /// has `limit` sub-devices. One transaction.
    async fn bind_sub_device(
        &self,
        gateway: &DeviceId,
        sub: &DeviceId,
        limit: i64,
        at: i64,
    ) -> Result<Bound>;
    /// False if `sub` was not bound to `gateway`.
    async fn unbind_sub_device(&self, gateway: &DeviceId, sub: &DeviceId) -> Result<bool>;
    /// The gateway's sub-devices (of one product, or all), by product and name.
    async fn sub_devices(
        &self,
        gateway: &DeviceId,
        product: Option<&ProductId>,
        page: Page,
    ) -> Result<Paged<DeviceId>>;
    async fn gateway_of(&self, sub: &DeviceId) -> Result<Option<DeviceId>>;

    // Device groups.
    async fn insert_group(&self, group: &GroupRecord) -> Result<()>;
    /// False if there is no such group.
    async fn delete_group(&self, name: &str) -> Result<bool>;
    /// The group, with its member count.
    async fn group(&self, name: &str) -> Result<Option<GroupRecord>>;
    /// By name, with their member counts.
    async fn list_groups(&self, page: Page) -> Result<Paged<GroupRecord>>;
    /// Adds existing devices (already members are kept); false if there is no such group.
    async fn add_group_devices(&self, name: &str, devices: &[DeviceId]) -> Result<bool>;
    /// Removes members; how many were.
    async fn remove_group_devices(&self, name: &str, devices: &[DeviceId]) -> Result<u64>;
    /// Members (of one product, or all), by product and name.
    async fn group_devices(
        &self,
        name: &str,
        product: Option<&ProductId>,
        page: Page,
    ) -> Result<Paged<DeviceId>>;

    // Device shadows and per-device settings.
    async fn shadow(&self, product: &ProductId, name: &DeviceName) -> Result<Option<ShadowRecord>>;
    /// Writes `shadow` if the stored version is still `expected` (0: no shadow stored);
    /// false when another write came first (the caller reads again and retries). The
    /// device must exist.
    async fn put_shadow(&self, shadow: &ShadowRecord, expected: i64) -> Result<bool>;
    /// Deletes a device's shadow; false if it had none.
    async fn delete_shadow(&self, product: &ProductId, name: &DeviceName) -> Result<bool>;
    /// Sets the log level the device is told over `$log` (Tencent's UpdateDeviceLogLevel);
    /// false if there is no such device.
    async fn set_device_log_level(
        &self,
        product: &ProductId,
        name: &DeviceName,
        level: i64,
    ) -> Result<bool>;
}
