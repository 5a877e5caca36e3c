//! The command line, declared with clap. `eddy --help` and each subcommand's `--help` are
//! generated from the doc comments here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Eddy: a self-hosted IoT hub, wire-compatible with Tencent Cloud IoT Hub.
#[derive(Debug, Parser)]
#[command(name = "eddy", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML). Defaults are embedded; see `eddy config default`.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "EDDY_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub.
    Serve,
    /// Work with the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage products.
    #[command(subcommand)]
    Product(ProductCommand),
    /// Manage devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Manage a product's custom topic classes.
    #[command(subcommand, name = "topic-policy")]
    TopicPolicy(TopicPolicyCommand),
    /// Manage topic rules (the rule engine's SQL rules and their actions).
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Rule action queues and their dead letters: list, show, redrive.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Firmware versions for OTA: upload, list.
    #[command(subcommand)]
    Firmware(FirmwareCommand),
    /// OTA update tasks: start one, watch its progress, cancel or retry a device.
    #[command(subcommand)]
    Ota(OtaCommand),
    /// Device groups (Eddy's): named sets of devices, targets of `ota start --group` and
    /// of broadcasts.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Device logs: SQL over what devices did.
    #[command(subcommand)]
    Logs(LogsCommand),
    /// Hash a password for a generic MQTT client ([[mqtt.clients.users]]).
    ///
    /// Prints the argon2id PHC string to paste as the user's password-hash. The password is
    /// read from the terminal, twice and without echo; when standard input is not a
    /// terminal, pass --password-stdin. Needs no configuration and no running hub.
    Passwd(PasswdArgs),
    /// TLS certificates for development.
    #[command(subcommand)]
    Cert(CertCommand),
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Write a development CA and a server certificate it signs (ca.pem, ca.key,
    /// server.pem, server.key) for the MQTT TLS listeners.
    ///
    /// The server certificate names localhost, 127.0.0.1, ::1 and every --host. Point
    /// mqtt.tls-cert / mqtt.tls-key at server.pem / server.key and give clients ca.pem to
    /// trust. Needs no configuration and no running hub. Not for production.
    Dev {
        /// Directory to write into (created if missing; existing files are replaced).
        #[arg(long, value_name = "DIR")]
        out: std::path::PathBuf,
        /// Another DNS name or IP address the server certificate should hold (repeatable).
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// Read the password from standard input instead of the terminal: everything up to
    /// the end of input, without one trailing newline, and on one line.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the embedded default configuration, fully commented.
    Default,
}

/// How the CLI reaches and signs in to the API.
#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// API endpoint, e.g. http://127.0.0.1:8080 [default: from the config's api.listen]
    #[arg(long, env = "EDDY_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// API SecretId [default: the config's admin key, else <data-dir>/admin-credentials.json]
    #[arg(long, env = "EDDY_SECRET_ID", requires = "secret_key")]
    pub secret_id: Option<String>,
    /// API SecretKey (prefer the EDDY_SECRET_KEY variable: arguments show in `ps`)
    #[arg(
        long,
        env = "EDDY_SECRET_KEY",
        hide_env_values = true,
        requires = "secret_id"
    )]
    pub secret_key: Option<String>,
    /// Print the API's JSON response instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// How a product's devices authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthKind {
    /// A pre-shared key per device (Tencent EncryptionType "2").
    Key,
    /// An X.509 certificate per device, signed by the product's CA (EncryptionType "1").
    Cert,
}

#[derive(Debug, Subcommand)]
pub enum ProductCommand {
    /// Create a product.
    Create {
        /// Product name: 1-32 characters [a-zA-Z0-9:_-].
        name: String,
        /// How its devices authenticate.
        #[arg(long, value_enum, default_value_t = AuthKind::Key)]
        auth: AuthKind,
        /// Free-text description.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List products.
    List {
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Page size, 1-250.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show one product.
    Show {
        product_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Delete a product (it must have no devices).
    Delete {
        product_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Create a device; prints its PSK, or its certificate and private key.
    Create {
        product_id: String,
        /// Device name: 1-48 characters [a-zA-Z0-9:_-].
        device_name: String,
        /// Use this PSK (base64) instead of a generated one (key products only).
        #[arg(long, value_name = "BASE64")]
        psk: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List a product's devices.
    List {
        product_id: String,
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Page size, 1-250.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Only devices whose name contains this.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show one device.
    Show {
        product_id: String,
        device_name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Delete a device.
    Delete {
        product_id: String,
        device_name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Disable devices: they can no longer connect.
    Disable {
        product_id: String,
        #[arg(required = true)]
        device_names: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Enable devices.
    Enable {
        product_id: String,
        #[arg(required = true)]
        device_names: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// What a topic class allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrivilegeArg {
    Pub,
    Sub,
    Both,
}

impl PrivilegeArg {
    pub fn code(self) -> i64 {
        match self {
            Self::Pub => 1,
            Self::Sub => 2,
            Self::Both => 3,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TopicPolicyCommand {
    /// Add a custom topic class `${productId}/${deviceName}/<TOPIC>`.
    Create {
        product_id: String,
        /// Suffix after `${productId}/${deviceName}/`, e.g. `custom/up`.
        topic: String,
        #[arg(long, value_enum)]
        privilege: PrivilegeArg,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List a product's topic classes, defaults and custom.
    List {
        product_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// A rule's SQL and actions, as `rule create` and `rule replace` take them.
#[derive(Debug, Args)]
pub struct RuleContentArgs {
    /// The rule's SQL, plain (the CLI base64-encodes it for the API), e.g.
    /// "SELECT temp FROM 'PRODUCTID/+/event' WHERE temp > 30".
    #[arg(long, value_name = "SQL")]
    pub sql: String,
    /// One action as a JSON object keyed by its type, e.g. '{"republish":{"topic":"p/d/x"}}';
    /// repeat for more (at most 5).
    #[arg(long = "action", value_name = "JSON", conflicts_with = "actions")]
    pub action: Vec<String>,
    /// All actions as one JSON array, as Tencent's TopicRulePayload.Actions carries them.
    #[arg(long, value_name = "JSON-ARRAY")]
    pub actions: Option<String>,
    /// Actions to run when an action fails, as a JSON array.
    #[arg(long, value_name = "JSON-ARRAY")]
    pub error_actions: Option<String>,
    /// Free-text description.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Store the rule disabled: it runs only after `eddy rule enable`.
    #[arg(long)]
    pub disabled: bool,
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Create a rule; the hub refuses it unless it has at least one action.
    Create {
        /// Rule name: 1-32 characters [A-Za-z0-9_].
        name: String,
        #[command(flatten)]
        content: RuleContentArgs,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Replace a rule's SQL, actions and description (it stays enabled or disabled
    /// unless --disabled is given).
    Replace {
        name: String,
        #[command(flatten)]
        content: RuleContentArgs,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List rules.
    List {
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Page size, 1-250.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show one rule: its SQL, actions, state and, when the engine runs, its counters.
    Show {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Enable a rule.
    Enable {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Disable a rule: it stays stored but no longer runs.
    Disable {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Delete a rule.
    Delete {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Dry-run SQL against one message: prints whether the topic matches FROM, the output
    /// rows, and what each action would send, with no side effect (TestTopicRule).
    Test {
        /// The SQL, plain.
        #[arg(long, value_name = "SQL")]
        sql: String,
        /// The topic the message is published on.
        #[arg(long)]
        topic: String,
        /// The message payload, as text.
        #[arg(long)]
        payload: String,
        /// The publisher's ClientId (a device's is ${ProductId}${DeviceName}).
        #[arg(long)]
        client_id: Option<String>,
        /// The publisher's IP address, for clientip().
        #[arg(long)]
        client_ip: Option<String>,
        /// An action to preview, as a JSON object (repeatable), e.g.
        /// '{"republish":{"topic":"PID/dev/out"}}'.
        #[arg(long, value_name = "JSON")]
        action: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Every rule action queue (rule/<rule>/<action index>, rule/<rule>/error/<index>):
    /// rows waiting, dead letters, whether a destination is attached.
    Queues {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List dead letters, oldest first: batches an action gave up on after its retries
    /// (or rows a destination rejected), with the last error.
    List {
        /// Only this queue's, e.g. rule/alerts/0.
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Page size, 1-100.
        #[arg(long, default_value_t = 20)]
        limit: u64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show one dead letter with its rows.
    Show {
        queue: String,
        seq: u64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Move a dead letter back to the end of its queue to be delivered again; without SEQ,
    /// every dead letter of the queue.
    Redrive {
        queue: String,
        seq: Option<u64>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum FirmwareCommand {
    /// Upload a firmware file as a new version of a product (GetCOSURL, an HTTP PUT with
    /// a progress bar, then UploadFirmware with the file's MD5 and size).
    Upload {
        product_id: String,
        /// The version devices will report once updated, e.g. 1.2.0.
        #[arg(value_name = "VERSION")]
        firmware_version: String,
        file: PathBuf,
        /// A name for the firmware.
        #[arg(long, default_value = "")]
        name: String,
        /// Free-text description.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List firmware versions, of one product or all.
    List {
        product_id: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum OtaCommand {
    /// Start an update task: the named devices, or every device now on --from-version,
    /// are told to update (offline ones when they next report their version).
    Start {
        product_id: String,
        /// The firmware version to update to (uploaded with `eddy firmware upload`).
        #[arg(value_name = "VERSION")]
        firmware_version: String,
        /// Devices to update.
        #[arg(long, value_delimiter = ',', required_unless_present_any = ["from_version", "group"])]
        devices: Vec<String>,
        /// Update every device of the product that runs this version.
        #[arg(long, conflicts_with_all = ["devices", "group"])]
        from_version: Option<String>,
        /// Update every device of the product in this device group.
        #[arg(long, conflicts_with = "devices")]
        group: Option<String>,
        /// Seconds a device may take once the update reached it (60-3600).
        #[arg(long, default_value_t = 3600)]
        timeout: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a task's devices and totals; --watch keeps a live progress view until every
    /// device has finished, failed or been cancelled.
    Status {
        product_id: String,
        #[arg(value_name = "VERSION")]
        firmware_version: String,
        task_id: i64,
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Cancel one device's update in a task.
    Cancel {
        product_id: String,
        #[arg(value_name = "VERSION")]
        firmware_version: String,
        task_id: i64,
        device_name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Retry one device's failed, timed-out or cancelled update.
    Retry {
        product_id: String,
        #[arg(value_name = "VERSION")]
        firmware_version: String,
        task_id: i64,
        device_name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Run a SQL query over the `logs` table, e.g.
    /// "SELECT scene, COUNT(*) FROM logs WHERE device_name = 'd1' GROUP BY scene".
    /// Columns: time_ms, request_id, scene (CONNECT, DISCONNECT, AUTH, SUBSCRIBE, PUBLISH,
    /// SDK), result, product_id, device_name, client_id, client_ip, topic, content, payload,
    /// source, level. Read-only.
    Query {
        sql: String,
        /// Only logs from this time on (Unix milliseconds): fewer files to read.
        #[arg(long, value_name = "MS")]
        since: Option<i64>,
        /// Only logs up to this time (Unix milliseconds).
        #[arg(long, value_name = "MS")]
        until: Option<i64>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group: 1-32 characters [a-zA-Z0-9:_-].
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List groups with their device counts.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List a group's devices.
    Show {
        name: String,
        /// Only devices of this product.
        #[arg(long)]
        product: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Add devices of one product to a group.
    Add {
        name: String,
        product_id: String,
        #[arg(required = true)]
        device_names: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Remove devices of one product from a group.
    Remove {
        name: String,
        product_id: String,
        #[arg(required = true)]
        device_names: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Delete a group (its devices stay).
    Delete {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// clap's own consistency checks (unique names, valid requirements…), which it
    /// otherwise runs only when a command is used.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
