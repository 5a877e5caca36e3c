//! Eddy's rule engine core: Tencent rule SQL compiled once onto DataFusion and evaluated
//! on Arrow micro-batches. In ARCHITECTURE.md's diagram this is the "DataFusion SQL rules"
//! box: it sees batches of accepted messages, never connections, and knows nothing of the
//! broker, the API or the actions.
//!
//! ```text
//!  "SELECT temp, deviceName() AS dev FROM 'PID/+/data' WHERE temp > 30"
//!        │ RuleSql::parse           (sqlparser; FROM is a quoted MQTT topic filter)
//!        ▼
//!  RuleSql ──CompiledRule::compile──▶ input schema ($num:temp, $json:temp, $device_name)
//!                                     + physical WHERE / SELECT expressions (planned once)
//!  [Message] ──MessageBatchBuilder──▶ MessageBatch (metadata columns + payload, shared)
//!        ──CompiledRule::decode──▶ RecordBatch (only referenced columns; metadata zero-copy)
//!        ──CompiledRule::evaluate──▶ output RecordBatch ──rows_as_json──▶ forwarded JSON
//!  (CompiledRule::run = decode + evaluate)
//! ```
//!
//! # The dialect
//! `SELECT <items> FROM '<topic filter>' [WHERE <condition>]`. Items are `*`, payload
//! fields (`temp`, `device_status.switch`, `a.b[0].c`), expressions, `AS` aliases and
//! function calls. No joins, grouping, ordering, subqueries or windows (yet).
//! An unaliased field is named by its last key (`device_status.switch` → `switch`), an
//! unaliased expression by its SQL text.
//!
//! # Type rules
//! The input schema is fixed at compile time, so each payload path gets a column typed by
//! how the SQL uses it; a path used in several ways gets one column per use, all filled
//! from the same single pass over the payload:
//! - **selected as is** (`SELECT temp`): the value's raw JSON text, written back as the same
//!   JSON value (a number stays a number, an object stays an object);
//! - **numeric** (compared with a number, arithmetic, BETWEEN/IN with numbers, numeric
//!   functions, `CAST(x AS INT…)`): Float64. JSON numbers, and strings holding a number
//!   (`"31"`, Tencent-like leniency: `temp > 30` is true for `"temp":"31"`); anything
//!   else is NULL and a type mismatch;
//! - **boolean** (operand of AND/OR/NOT, the whole WHERE, compared with TRUE/FALSE):
//!   JSON booleans and the strings `"true"`/`"false"`; anything else NULL, a mismatch;
//! - **text** (everything else: string functions, comparison with a string, LIKE, IS NULL):
//!   strings unquoted; numbers, booleans, objects and arrays as their JSON text.
//!
//! A missing field, JSON `null`, or a payload that is not JSON gives NULL; the first and
//! last are counted ([`RuleStats`]). Nothing in a payload can make decoding fail or panic.
//! A payload is read only as far as the last referenced value: it is "not JSON" when it
//! breaks JSON's grammar before that point, and what follows is not looked at. A repeated
//! key keeps its first value; a referenced value that is not valid UTF-8 is a mismatch.
//! SQL three-valued logic then applies: `WHERE temp > 30` drops rows whose temp is NULL.
//!
//! # Functions
//! Tencent's: `productId()`, `deviceName()`, `topic()`, `topic(n)`, `clientip()` (Eddy),
//! `timestamp()` (seconds the broker accepted the message), `payloadLen()`, `upper`,
//! `lower`, `concat`, `replace`, `substring(s, start[, len])` (1-based), `to_hex`,
//! `bin_to_dec`, `crypto(x, 'MD5|SHA1|SHA256|SHA384|SHA512')`, `randint([n])`, `newuuid()`,
//! `requestId()`. How each is implemented is listed in the `functions` module.
//!
//! DataFusion's scalar functions of these families are available as well: string
//! (`ltrim`, `btrim`, `split_part`, `starts_with`, `repeat`, `octet_length`, `uuid`, …),
//! unicode (`length`, `left`, `right`, `lpad`, `rpad`, `reverse`, `strpos`, …), math
//! (`abs`, `round`, `floor`, `ceil`, `sqrt`, `power`, `ln`, `log10`, …), crypto (`md5`,
//! `sha224`, `sha256`, `sha384`, `sha512`, `digest`), encoding (`encode`, `decode`) and
//! the core ones (`coalesce`, `nullif`, `CASE`, `CAST`). Date/time, regex, array and
//! aggregate functions are not built in (their DataFusion features are off).

mod batch;
mod columns;
mod compile;
mod error;
mod functions;
mod input;
mod output;
mod rewrite;
pub mod runtime;
mod scan;
mod sql;

pub use batch::{MessageBatch, MessageBatchBuilder};
pub use compile::{CompiledRule, JSON_KIND_KEY, JSON_KIND_PAYLOAD, JSON_KIND_RAW, RuleStats};
pub use error::RuleError;
pub use output::rows_as_json;
pub use runtime::{
    Action, DestinationFactory, DestinationFuture, EngineSettings, RULE_PUBLISHER_PREFIX,
    RuleDefinition, RuleEngine,
};
pub use sql::RuleSql;
