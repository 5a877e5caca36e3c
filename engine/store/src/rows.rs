//! What both SQL backends share: turning result rows into records, and the small helpers
//! around errors, `LIKE` patterns and page bounds. The schemas keep the same column names
//! and compatible types, so one generic mapping serves SQLite and PostgreSQL.

use eddy_core::secret::secret;
use eddy_core::{DeviceName, EncryptionType, ProductId, ProductName};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::{
    ApiKeyOrigin, ApiKeyRecord, CaRecord, DeviceRecord, FirmwareRecord, FirmwareTaskRecord,
    ProductRecord, Result, ShadowRecord, StoreError, TaskDeviceRecord, TopicPolicyRecord,
    TopicRuleRecord,
};

pub(crate) fn backend(err: sqlx::Error) -> StoreError {
    StoreError::Backend(err)
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A `LIKE … ESCAPE '\'` pattern matching values that contain `value` literally
/// (`%`, `_` and `\` escaped), lower-cased in ASCII: both backends compare ASCII-case-
/// insensitively (SQLite's `LIKE`; PostgreSQL lower-cases the column under `"C"`).
pub(crate) fn contains_pattern(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('%');
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c.to_ascii_lowercase());
    }
    out.push('%');
    out
}

/// Reads one column, as either backend's row.
fn get<'r, R, T>(row: &'r R, column: &'r str) -> Result<T>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(column).map_err(backend)
}

pub(crate) fn product<R>(row: &R) -> Result<ProductRecord>
where
    R: Row,
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database>,
    for<'r> i64: Decode<'r, R::Database>,
    String: Type<R::Database>,
    i64: Type<R::Database>,
{
    let id: String = get(row, "product_id")?;
    let name: String = get(row, "product_name")?;
    let encryption: i64 = get(row, "encryption_type")?;
    let ca_cert: Option<String> = get(row, "ca_cert_pem")?;
    let ca_key: Option<String> = get(row, "ca_key_pem")?;
    let product_secret: String = get(row, "product_secret")?;
    Ok(ProductRecord {
        id: ProductId::parse(&id).map_err(corrupt)?,
        name: ProductName::parse(&name).map_err(corrupt)?,
        description: get(row, "description")?,
        encryption: EncryptionType::from_code(&encryption.to_string()).map_err(corrupt)?,
        product_type: get(row, "product_type")?,
        format: get(row, "format")?,
        region: get(row, "region")?,
        register_type: get(row, "register_type")?,
        register_limit: get(row, "register_limit")?,
        secret: secret(product_secret),
        ca: match (ca_cert, ca_key) {
            (Some(cert_pem), Some(key_pem)) => Some(CaRecord {
                cert_pem,
                key_pem: secret(key_pem),
            }),
            _ => None,
        },
        created_at: get(row, "created_at")?,
    })
}

pub(crate) fn device<R>(row: &R) -> Result<DeviceRecord>
where
    R: Row,
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database>,
    for<'r> i64: Decode<'r, R::Database>,
    for<'r> bool: Decode<'r, R::Database>,
    String: Type<R::Database>,
    i64: Type<R::Database>,
    bool: Type<R::Database>,
{
    let product: String = get(row, "product_id")?;
    let name: String = get(row, "device_name")?;
    let psk: Option<String> = get(row, "psk")?;
    Ok(DeviceRecord {
        product_id: ProductId::parse(&product).map_err(corrupt)?,
        name: DeviceName::parse(&name).map_err(corrupt)?,
        psk: psk.map(secret),
        cert_pem: get(row, "cert_pem")?,
        enabled: get(row, "enabled")?,
        online: get(row, "online")?,
        first_online_at: get(row, "first_online_at")?,
        login_at: get(row, "login_at")?,
        last_offline_at: get(row, "last_offline_at")?,
        client_ip: get(row, "client_ip")?,
        log_level: get(row, "log_level")?,
        firmware_version: get(row, "firmware_version")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

pub(crate) fn topic_policy<R>(row: &R) -> Result<TopicPolicyRecord>
where
    R: Row,
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database>,
    for<'r> i64: Decode<'r, R::Database>,
    String: Type<R::Database>,
    i64: Type<R::Database>,
{
    let product: String = get(row, "product_id")?;
    Ok(TopicPolicyRecord {
        product_id: ProductId::parse(&product).map_err(corrupt)?,
        suffix: get(row, "suffix")?,
        privilege: get(row, "privilege")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

pub(crate) fn api_key<R>(row: &R) -> Result<ApiKeyRecord>
where
    R: Row,
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database>,
    for<'r> i64: Decode<'r, R::Database>,
    String: Type<R::Database>,
    i64: Type<R::Database>,
{
    let origin: String = get(row, "origin")?;
    let key: String = get(row, "secret_key")?;
    Ok(ApiKeyRecord {
        secret_id: get(row, "secret_id")?,
        secret_key: secret(key),
        origin: ApiKeyOrigin::parse(&origin)
            .ok_or_else(|| corrupt(format!("unknown API key origin {origin:?}")))?,
        description: get(row, "description")?,
        created_at: get(row, "created_at")?,
    })
}

pub(crate) fn topic_rule<R>(row: &R) -> Result<TopicRuleRecord>
where
    R: Row,
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database>,
    for<'r> i64: Decode<'r, R::Database>,
    for<'r> bool: Decode<'r, R::Database>,
    String: Type<R::Database>,
    i64: Type<R::Database>,
    bool: Type<R::Database>,
{
    Ok(TopicRuleRecord {
        name: get(row, "rule_name")?,
        sql: get(row, "sql")?,
        actions: get(row, "actions")?,
        error_actions: get(row, "error_actions")?,
        description: get(row, "description")?,
        disabled: get(row, "disabled")?,
        created_at: get(row, "created_at")?,
        modified_at: get(row, "modified_at")?,
    })
}

pub(crate) fn shadow<R>(row: &R) -> Result<ShadowRecord>
where
    R: Row,
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database>,
    for<'r> i64: Decode<'r, R::Database>,
    String: Type<R::Database>,
    i64: Type<R::Database>,
{
    let product: String = get(row, "product_id")?;
    let name: String = get(row, "device_name")?;
    Ok(ShadowRecord {
        product_id: ProductId::parse(&product).map_err(corrupt)?,
        name: DeviceName::parse(&name).map_err(corrupt)?,
        reported: get(row, "reported")?,
        desired: get(row, "desired")?,
        version: get(row, "version")?,
        updated_at_ms: get(row, "updated_at")?,
    })
}

pub(crate) fn firmware<R>(row: &R) -> Result<FirmwareRecord>
where
    R: Row,
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database>,
    for<'r> i64: Decode<'r, R::Database>,
    String: Type<R::Database>,
    i64: Type<R::Database>,
{
    let product: String = get(row, "product_id")?;
    Ok(FirmwareRecord {
        product_id: ProductId::parse(&product).map_err(corrupt)?,
        version: get(row, "version")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        user_defined: get(row, "user_defined")?,
        md5: get(row, "md5")?,
        size: get(row, "size")?,
        created_at: get(row, "created_at")?,
    })
}

pub(crate) fn firmware_task<R>(row: &R) -> Result<FirmwareTaskRecord>
where
    R: Row,
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database>,
    for<'r> i64: Decode<'r, R::Database>,
    String: Type<R::Database>,
    i64: Type<R::Database>,
{
    let product: String = get(row, "product_id")?;
    Ok(FirmwareTaskRecord {
        task_id: get(row, "task_id")?,
        product_id: ProductId::parse(&product).map_err(corrupt)?,
        version: get(row, "version")?,
        original_version: get(row, "original_version")?,
        upgrade_mode: get(row, "upgrade_mode")?,
        task_type: get(row, "task_type")?,
        timeout_secs: get(row, "timeout_secs")?,
        created_at: get(row, "created_at")?,
    })
}

pub(crate) fn task_device<R>(row: &R) -> Result<TaskDeviceRecord>
where
    R: Row,
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database>,
    for<'r> i64: Decode<'r, R::Database>,
    String: Type<R::Database>,
    i64: Type<R::Database>,
{
    let product: String = get(row, "product_id")?;
    let name: String = get(row, "device_name")?;
    Ok(TaskDeviceRecord {
        task_id: get(row, "task_id")?,
        product_id: ProductId::parse(&product).map_err(corrupt)?,
        device_name: DeviceName::parse(&name).map_err(corrupt)?,
        status: get(row, "status")?,
        percent: get(row, "percent")?,
        retcode: get(row, "retcode")?,
        message: get(row, "message")?,
        ori_version: get(row, "ori_version")?,
        updated_at: get(row, "updated_at")?,
    })
}
