//! The crate's one error type. Variants say whose fault it is, as DataFusion's do:
//! `InvalidSql` is the rule author's (Tencent code `InvalidParameterValue.InvalidSQL`),
//! `Execution` is a batch that could not be evaluated, `Internal` is a bug in Eddy.

/// Why a rule could not be parsed, compiled or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The rule's SQL is not valid Tencent rule SQL. `line` and `column` are 1-based and
    /// point at the offending token; both are 0 when the parser gave no position.
    #[error("invalid SQL at line {line}, column {column}: {reason}")]
    InvalidSql {
        line: u64,
        column: u64,
        reason: String,
    },
    /// A batch could not be evaluated (for example a cast of a value that does not fit).
    #[error("rule evaluation failed: {0}")]
    Execution(String),
    /// A broken invariant inside the rule engine: likely a bug in Eddy.
    #[error("internal rule engine error (likely a bug in Eddy): {0}")]
    Internal(String),
}

impl RuleError {
    /// The Tencent Cloud API error code this error maps to.
    pub fn tencent_code(&self) -> &'static str {
        match self {
            Self::InvalidSql { .. } => "InvalidParameterValue.InvalidSQL",
            Self::Execution(_) | Self::Internal(_) => "InternalError",
        }
    }

    pub(crate) fn invalid(
        span: datafusion::sql::sqlparser::tokenizer::Span,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidSql {
            line: span.start.line,
            column: span.start.column,
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_nowhere(reason: impl Into<String>) -> Self {
        Self::InvalidSql {
            line: 0,
            column: 0,
            reason: reason.into(),
        }
    }

    /// Reads sqlparser's "… at Line: L, Column: C" suffix into a position.
    pub(crate) fn from_parser_message(message: &str) -> Self {
        let (reason, line, column) = match message.rfind(" at Line: ") {
            Some(at) => {
                let tail = &message[at + " at Line: ".len()..];
                let mut parts = tail.split(", Column: ");
                let line = parts.next().and_then(|l| l.trim().parse().ok());
                let column = parts.next().and_then(|c| c.trim().parse().ok());
                match (line, column) {
                    (Some(l), Some(c)) => (&message[..at], l, c),
                    _ => (message, 0, 0),
                }
            }
            None => (message, 0, 0),
        };
        let reason = reason
            .trim_start_matches("sql parser error: ")
            .trim_start_matches("SQL error: ")
            .to_owned();
        Self::InvalidSql {
            line,
            column,
            reason,
        }
    }
}

impl From<datafusion::error::DataFusionError> for RuleError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Self::Execution(e.to_string())
    }
}

impl From<arrow::error::ArrowError> for RuleError {
    fn from(e: arrow::error::ArrowError) -> Self {
        Self::Execution(e.to_string())
    }
}
