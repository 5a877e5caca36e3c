//! Compiling a parsed rule, once, into DataFusion physical expressions over the rule's
//! own input schema, and evaluating them on batches.
//!
//! ```text
//!  RuleSql ──rewrite──▶ SQL over input columns ──SqlToRel──▶ logical Expr
//!     (paths, Tencent functions → columns/UDFs)        │ coerce + create_physical_expr
//!                                                       ▼
//!  RecordBatch ──WHERE (filter_record_batch)──▶ SELECT items ──▶ output RecordBatch
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::execution::context::{SessionContext, SessionState};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::sqlparser::ast::Spanned;
use datafusion::sql::sqlparser::ast::{Expr, ExprWithAlias, SelectItem};
use datafusion::sql::sqlparser::tokenizer::Span;
use eddy_core::TopicFilter;

use crate::columns::{InputColumn, Meta, Repr};
use crate::input::PathPlan;
use crate::rewrite::{Resolver, as_path};
use crate::{RuleError, RuleSql, functions};

/// Field metadata key telling [`rows_as_json`](crate::rows_as_json) how to render a column.
pub const JSON_KIND_KEY: &str = "eddy.rules.json";
/// The column holds raw JSON text of a payload value, rendered as that JSON value.
pub const JSON_KIND_RAW: &str = "raw";
/// The column is the whole payload (`SELECT *`): a JSON object's fields are spread into
/// the row, anything else is rendered as `"payload": "<base64>"`.
pub const JSON_KIND_PAYLOAD: &str = "payload";

/// What a rule's decoding has met so far. Values that became NULL are counted here, so
/// a rule that silently forwards nulls can be seen in the stats.
#[derive(Debug, Default)]
pub(crate) struct RuleCounters {
    pub(crate) rows: AtomicU64,
    pub(crate) not_json: AtomicU64,
    pub(crate) missing_fields: AtomicU64,
    pub(crate) type_mismatches: AtomicU64,
}

/// A snapshot of a rule's decoding counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleStats {
    /// Messages decoded for this rule.
    pub rows: u64,
    /// Payloads that are not JSON while the rule references payload fields.
    pub not_json: u64,
    /// Referenced fields absent from a JSON payload (one per field per message).
    pub missing_fields: u64,
    /// Values of the wrong type for their use, e.g. an object compared with a number.
    pub type_mismatches: u64,
}

/// A rule compiled once: its input schema, its WHERE and SELECT as physical expressions,
/// and its output schema. Evaluation never plans.
#[derive(Debug)]
pub struct CompiledRule {
    sql: RuleSql,
    pub(crate) columns: Vec<InputColumn>,
    input_schema: SchemaRef,
    predicate: Option<Arc<dyn PhysicalExpr>>,
    projections: Vec<Arc<dyn PhysicalExpr>>,
    output_schema: SchemaRef,
    pub(crate) counters: RuleCounters,
    pub(crate) paths: PathPlan,
}

/// One SELECT item after rewriting.
struct Item {
    name: String,
    expr: Expr,
    span: Span,
    json_kind: Option<&'static str>,
}

/// The DataFusion session every rule is planned with: built once, with Tencent's UDFs in
/// its function registry, rather than once per rule. Planning only reads it.
fn session() -> &'static SessionState {
    static SESSION: OnceLock<SessionState> = OnceLock::new();
    SESSION.get_or_init(|| {
        let ctx = SessionContext::new();
        for udf in functions::all() {
            ctx.register_udf(udf);
        }
        ctx.state()
    })
}

impl CompiledRule {
    /// Resolves names, chooses column types and builds the physical expressions.
    pub fn compile(sql: &RuleSql) -> Result<Self, RuleError> {
        let state = session();
        let known = |name: &str| state.scalar_functions().contains_key(name);
        let mut resolver = Resolver::new(&known);

        let mut items = Vec::with_capacity(sql.items.len());
        for item in &sql.items {
            let span = item.span();
            match item {
                SelectItem::Wildcard(_) => {
                    let expr = resolver.column(InputColumn::Meta(Meta::Payload));
                    items.push(Item {
                        name: "payload".into(),
                        expr,
                        span,
                        json_kind: Some(JSON_KIND_PAYLOAD),
                    });
                }
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    let path = as_path(e)?;
                    let name = match (item, &path) {
                        (SelectItem::ExprWithAlias { alias, .. }, _) => alias.value.clone(),
                        (_, Some(p)) => p.output_name(),
                        _ => e.to_string(),
                    };
                    let mut expr = e.clone();
                    resolver.rewrite(&mut expr, Repr::Json)?;
                    items.push(Item {
                        name,
                        expr,
                        span,
                        json_kind: path.is_some().then_some(JSON_KIND_RAW),
                    });
                }
                SelectItem::QualifiedWildcard(..) | SelectItem::ExprWithAliases { .. } => {
                    return Err(RuleError::invalid(
                        span,
                        "only a bare * and single aliases are supported",
                    ));
                }
            }
        }
        let selection = match &sql.selection {
            Some(e) => {
                let span = e.span();
                let mut expr = e.clone();
                resolver.rewrite(&mut expr, Repr::Bool)?;
                Some((expr, span))
            }
            None => None,
        };

        let columns = resolver.columns;
        let input_schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(c.name(), c.data_type(), true))
                .collect::<Vec<_>>(),
        ));
        let df_schema = DFSchema::try_from(input_schema.as_ref().clone())
            .map_err(|e| RuleError::Internal(e.to_string()))?;
        let df_schema_ref = Arc::new(df_schema.clone());
        // Simplification rewrites functions such as coalesce/nvl that DataFusion only
        // executes in their simplified (CASE) form; volatile calls are never folded.
        let simplifier = ExprSimplifier::new(
            SimplifyContext::builder()
                .with_schema(df_schema_ref)
                .with_config_options(Arc::clone(state.config_options()))
                .build(),
        );
        let plan = |expr: Expr, span: Span| -> Result<Arc<dyn PhysicalExpr>, RuleError> {
            let logical = state
                .create_logical_expr_from_sql_expr(ExprWithAlias { expr, alias: None }, &df_schema)
                .and_then(|e| simplifier.coerce(e, &df_schema))
                .and_then(|e| simplifier.simplify(e))
                .map_err(|e| RuleError::invalid(span, e.message().to_string()))?;
            state
                .create_physical_expr(logical, &df_schema)
                .map_err(|e| RuleError::invalid(span, e.message().to_string()))
        };

        let predicate = match selection {
            Some((expr, span)) => {
                let p = plan(expr, span)?;
                let t = p
                    .data_type(&input_schema)
                    .map_err(|e| RuleError::invalid(span, e.to_string()))?;
                if t != DataType::Boolean && t != DataType::Null {
                    return Err(RuleError::invalid(
                        span,
                        format!("WHERE must be a condition, this is a {t}"),
                    ));
                }
                Some(p)
            }
            None => None,
        };
        let mut projections = Vec::with_capacity(items.len());
        let mut fields = Vec::with_capacity(items.len());
        for item in items {
            let p = plan(item.expr, item.span)?;
            let t = p
                .data_type(&input_schema)
                .map_err(|e| RuleError::invalid(item.span, e.to_string()))?;
            let mut field = Field::new(item.name, t, true);
            if let Some(kind) = item.json_kind {
                field = field
                    .with_metadata(HashMap::from([(JSON_KIND_KEY.to_owned(), kind.to_owned())]));
            }
            fields.push(field);
            projections.push(p);
        }
        Ok(Self {
            sql: sql.clone(),
            columns: columns.clone(),
            input_schema,
            predicate,
            projections,
            output_schema: Arc::new(Schema::new(fields)),
            counters: RuleCounters::default(),
            paths: PathPlan::new(&columns),
        })
    }

    /// Parses and compiles in one step.
    pub fn from_sql(sql: &str) -> Result<Self, RuleError> {
        Self::compile(&RuleSql::parse(sql)?)
    }

    pub fn sql(&self) -> &RuleSql {
        &self.sql
    }

    /// The topic filter messages must match to be fed to this rule.
    pub fn topic_filter(&self) -> &TopicFilter {
        self.sql.topic_filter()
    }

    /// The schema [`decode`](Self::decode) produces: only the columns the rule references.
    pub fn input_schema(&self) -> &SchemaRef {
        &self.input_schema
    }

    /// The schema [`evaluate`](Self::evaluate) produces: one column per SELECT item.
    pub fn output_schema(&self) -> &SchemaRef {
        &self.output_schema
    }

    pub fn stats(&self) -> RuleStats {
        let c = &self.counters;
        RuleStats {
            rows: c.rows.load(Ordering::Relaxed),
            not_json: c.not_json.load(Ordering::Relaxed),
            missing_fields: c.missing_fields.load(Ordering::Relaxed),
            type_mismatches: c.type_mismatches.load(Ordering::Relaxed),
        }
    }

    /// Applies WHERE, then the SELECT items, to a batch of [`input_schema`](Self::input_schema).
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<RecordBatch, RuleError> {
        self.evaluate_selecting(batch).map(|(output, _)| output)
    }

    /// [`evaluate`](Self::evaluate), also returning WHERE's mask over the input rows
    /// (`None` without a WHERE: every row passes), so callers can line output rows up
    /// with what they came from. A NULL in the mask counts as false, as in the output.
    pub fn evaluate_selecting(
        &self,
        batch: &RecordBatch,
    ) -> Result<(RecordBatch, Option<BooleanArray>), RuleError> {
        if batch.schema().fields() != self.input_schema.fields() {
            return Err(RuleError::Internal(
                "batch does not have the rule's input schema".into(),
            ));
        }
        let filtered;
        let mut selection = None;
        let batch = match &self.predicate {
            Some(p) => {
                let mask = p.evaluate(batch)?.into_array(batch.num_rows())?;
                let mask = mask
                    .as_boolean_opt()
                    .ok_or_else(|| RuleError::Internal("WHERE did not yield booleans".into()))?;
                filtered = filter_record_batch(batch, mask)?;
                selection = Some(mask.clone());
                &filtered
            }
            None => batch,
        };
        let rows = batch.num_rows();
        let columns = self
            .projections
            .iter()
            .map(|p| Ok(p.evaluate(batch)?.into_array(rows)?))
            .collect::<Result<Vec<ArrayRef>, RuleError>>()?;
        let output = RecordBatch::try_new_with_options(
            Arc::clone(&self.output_schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        Ok((output, selection))
    }
}
