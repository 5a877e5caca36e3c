//! Parsing Tencent's rule dialect: `SELECT <items> FROM '<topic filter>' [WHERE <cond>]`.
//!
//! The FROM clause names an MQTT topic filter in single quotes, which no SQL dialect
//! accepts as a table. So the SQL is tokenized first, the quoted filter after `FROM` is
//! taken out and replaced by a placeholder table name, and the tokens are then parsed by
//! DataFusion's bundled sqlparser with its generic dialect. Positions in errors are the
//! tokenizer's, so they point into the text the user wrote.

use datafusion::sql::sqlparser::ast::Spanned;
use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, SelectItem, SetExpr, Statement, TableFactor,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Span, Token, Tokenizer};
use eddy_core::TopicFilter;

use crate::RuleError;

/// The placeholder table the quoted topic filter is replaced with before parsing.
const FROM_PLACEHOLDER: &str = "__eddy_rule_source";

/// A parsed rule: what it selects, from which topic filter, and under which condition.
/// Parsing checks the shape of the statement; names are resolved by
/// [`CompiledRule::compile`](crate::CompiledRule::compile).
#[derive(Debug, Clone)]
pub struct RuleSql {
    sql: String,
    from: TopicFilter,
    pub(crate) items: Vec<SelectItem>,
    pub(crate) selection: Option<Expr>,
}

impl RuleSql {
    /// Parses one rule. Errors are [`RuleError::InvalidSql`] with the position of the
    /// offending token where one is known.
    pub fn parse(sql: &str) -> Result<Self, RuleError> {
        let dialect = GenericDialect {};
        let mut tokens = Tokenizer::new(&dialect, sql)
            .tokenize_with_location()
            .map_err(|e| RuleError::from_parser_message(&e.to_string()))?;
        let from = take_from_filter(&mut tokens)?;
        let end = end_of_input(&tokens);
        let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
        let mut statements = parser.parse_statements().map_err(|e| {
            match RuleError::from_parser_message(&e.to_string()) {
                // sqlparser has no position for "found: EOF"; the end of input is where
                // the rule stopped short.
                RuleError::InvalidSql {
                    line: 0, reason, ..
                } => RuleError::InvalidSql {
                    line: end.line,
                    column: end.column,
                    reason,
                },
                other => other,
            }
        })?;
        if statements.len() != 1 {
            return Err(RuleError::invalid_nowhere(format!(
                "a rule is exactly one SELECT statement, found {}",
                statements.len()
            )));
        }
        let Some(Statement::Query(query)) = statements.pop() else {
            return Err(RuleError::invalid_nowhere(
                "a rule must be a SELECT statement",
            ));
        };
        let query_span = query.span();
        if query.with.is_some() || query.order_by.is_some() || query.limit_clause.is_some() {
            return Err(RuleError::invalid(
                query_span,
                "WITH, ORDER BY and LIMIT are not supported in rules",
            ));
        }
        let SetExpr::Select(select) = *query.body else {
            return Err(RuleError::invalid(
                query_span,
                "a rule is a single SELECT (no UNION, VALUES or subqueries)",
            ));
        };
        let select = *select;
        let select_span = select.span();
        if select.distinct.is_some()
            || select.having.is_some()
            || !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
        {
            return Err(RuleError::invalid(
                select_span,
                "DISTINCT, GROUP BY and HAVING are not supported in rules",
            ));
        }
        match select.from.as_slice() {
            [table] if table.joins.is_empty() => match &table.relation {
                TableFactor::Table { name, .. } if name.to_string() == FROM_PLACEHOLDER => {}
                other => {
                    return Err(RuleError::invalid(
                        other.span(),
                        "FROM must be a single-quoted MQTT topic filter",
                    ));
                }
            },
            _ => {
                return Err(RuleError::invalid(
                    select_span,
                    "FROM must name exactly one single-quoted MQTT topic filter",
                ));
            }
        }
        if select.projection.is_empty() {
            return Err(RuleError::invalid(
                select_span,
                "SELECT needs at least one item",
            ));
        }
        Ok(Self {
            sql: sql.to_owned(),
            from,
            items: select.projection,
            selection: select.selection,
        })
    }

    /// The SQL as the user wrote it.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The MQTT topic filter of the FROM clause.
    pub fn topic_filter(&self) -> &TopicFilter {
        &self.from
    }
}

/// The position just past the last token that is not whitespace.
fn end_of_input(
    tokens: &[datafusion::sql::sqlparser::tokenizer::TokenWithSpan],
) -> datafusion::sql::sqlparser::tokenizer::Location {
    tokens
        .iter()
        .rev()
        .find(|t| !matches!(t.token, Token::Whitespace(_)))
        .map(|t| t.span.end)
        .unwrap_or(datafusion::sql::sqlparser::tokenizer::Location { line: 1, column: 1 })
}

/// Finds `FROM '<filter>'`, validates the filter and puts a placeholder table in its place.
fn take_from_filter(
    tokens: &mut [datafusion::sql::sqlparser::tokenizer::TokenWithSpan],
) -> Result<TopicFilter, RuleError> {
    let significant: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t.token, Token::Whitespace(_)))
        .map(|(i, _)| i)
        .collect();
    let from_at = significant
        .iter()
        .position(|&i| matches!(&tokens[i].token, Token::Word(w) if w.keyword == Keyword::FROM));
    let Some(from_at) = from_at else {
        let end = end_of_input(tokens);
        return Err(RuleError::invalid(
            Span::new(end, end),
            "missing FROM '<topic filter>'",
        ));
    };
    let Some(&filter_at) = significant.get(from_at + 1) else {
        let span = tokens[significant[from_at]].span;
        return Err(RuleError::invalid(
            Span::new(span.end, span.end),
            "FROM must be followed by a single-quoted MQTT topic filter",
        ));
    };
    let span = tokens[filter_at].span;
    let Token::SingleQuotedString(filter) = &tokens[filter_at].token else {
        return Err(RuleError::invalid(
            span,
            "FROM must be followed by a single-quoted MQTT topic filter",
        ));
    };
    let filter = TopicFilter::parse(filter)
        .map_err(|e| RuleError::invalid(span, format!("invalid topic filter: {e}")))?;
    tokens[filter_at].token = Token::make_word(FROM_PLACEHOLDER, None);
    Ok(filter)
}
