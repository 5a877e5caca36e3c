//! The input columns a compiled rule reads: message metadata, and payload paths decoded
//! into one of four representations. The schema of a rule's input batch holds only the
//! columns its SQL references, so the decoder touches nothing else.

use std::fmt;

use arrow::datatypes::DataType;

/// One step of a path into the JSON payload: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum PathSegment {
    Key(String),
    Index(usize),
}

/// A path into the JSON payload, as written in the SQL (`a.b[0].c`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct JsonPath(pub(crate) Vec<PathSegment>);

impl JsonPath {
    /// The name Tencent (like AWS IoT) gives an unaliased path in the output: its last key.
    pub(crate) fn output_name(&self) -> String {
        match self.0.last() {
            Some(PathSegment::Key(k)) => k.clone(),
            _ => self.to_string(),
        }
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSegment::Key(k) if i == 0 => write!(f, "{k}")?,
                PathSegment::Key(k) => write!(f, ".{k}")?,
                PathSegment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// How a payload value is typed in its column, chosen at compile time from where the SQL
/// uses the path (see the crate docs, "Type rules").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Repr {
    /// Selected as is: the raw JSON text, parsed back when rows become JSON.
    Json,
    /// Numeric context: Float64; numbers and numeric strings, anything else NULL.
    Num,
    /// Boolean context: JSON booleans and the strings "true"/"false".
    Bool,
    /// Anything else: strings unquoted, other values as their JSON text.
    Text,
}

/// Message metadata a rule may reference through Tencent's functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Meta {
    Topic,
    ProductId,
    DeviceName,
    ClientIp,
    Qos,
    TimestampMs,
    PayloadLen,
    Payload,
}

/// One column of a rule's input batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum InputColumn {
    Meta(Meta),
    Path(JsonPath, Repr),
}

impl InputColumn {
    /// The column's name in the input schema. The `$` prefix keeps these apart from
    /// anything a user can write unquoted.
    pub(crate) fn name(&self) -> String {
        match self {
            Self::Meta(m) => match m {
                Meta::Topic => "$topic",
                Meta::ProductId => "$product_id",
                Meta::DeviceName => "$device_name",
                Meta::ClientIp => "$client_ip",
                Meta::Qos => "$qos",
                Meta::TimestampMs => "$timestamp_ms",
                Meta::PayloadLen => "$payload_len",
                Meta::Payload => "$payload",
            }
            .to_owned(),
            Self::Path(p, r) => {
                let tag = match r {
                    Repr::Json => "json",
                    Repr::Num => "num",
                    Repr::Bool => "bool",
                    Repr::Text => "text",
                };
                format!("${tag}:{p}")
            }
        }
    }

    pub(crate) fn data_type(&self) -> DataType {
        match self {
            Self::Meta(Meta::Qos) => DataType::UInt8,
            Self::Meta(Meta::TimestampMs | Meta::PayloadLen) => DataType::Int64,
            Self::Meta(Meta::Payload) => DataType::Binary,
            Self::Meta(_) => DataType::Utf8,
            Self::Path(_, Repr::Num) => DataType::Float64,
            Self::Path(_, Repr::Bool) => DataType::Boolean,
            Self::Path(_, Repr::Json | Repr::Text) => DataType::Utf8,
        }
    }
}
