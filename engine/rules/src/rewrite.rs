//! The compile-time rewrite of a rule's SQL AST into SQL DataFusion can plan.
//!
//! Payload paths (`temp`, `a.b.c`, `arr[0]`) become references to typed input columns,
//! and Tencent's metadata functions become references to metadata columns or to
//! DataFusion built-ins. Each path's column type is chosen from the context it is used in
//! (a comparison with a number makes it numeric, `AND`/`OR`/`NOT` make it boolean, a bare
//! SELECT item keeps its JSON value), so the schema is fixed before any message is seen.
//!
//! The walk is a whitelist: an expression kind not handled here is refused with its
//! position, rather than passed to DataFusion to fail later with a less useful message.

use datafusion::sql::sqlparser::ast::Spanned;
use datafusion::sql::sqlparser::ast::{
    AccessExpr, BinaryOperator, DataType as SqlType, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, ObjectName, ObjectNamePart, Subscript, UnaryOperator, Value,
};
use datafusion::sql::sqlparser::tokenizer::Span;

use crate::RuleError;
use crate::columns::{InputColumn, JsonPath, Meta, PathSegment, Repr};

/// Algorithms `crypto(field, 'ALGO')` accepts (Tencent's list).
pub(crate) const CRYPTO_ALGORITHMS: [&str; 5] = ["MD5", "SHA1", "SHA256", "SHA384", "SHA512"];

/// DataFusion functions whose arguments are numbers, so a path passed to them is decoded
/// as Float64.
const NUMERIC_FUNCTIONS: &[&str] = &[
    "abs", "ceil", "floor", "round", "trunc", "sqrt", "cbrt", "power", "pow", "exp", "ln", "log",
    "log2", "log10", "signum", "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "degrees",
    "radians", "greatest", "least", "to_hex", "randint",
];

/// Collects the input columns a rule references while rewriting its expressions.
pub(crate) struct Resolver<'a> {
    pub(crate) columns: Vec<InputColumn>,
    /// Whether a function name (lower case) is known to the planner.
    is_function: &'a dyn Fn(&str) -> bool,
}

impl std::fmt::Debug for Resolver<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("columns", &self.columns)
            .finish()
    }
}

impl<'a> Resolver<'a> {
    pub(crate) fn new(is_function: &'a dyn Fn(&str) -> bool) -> Self {
        Self {
            columns: Vec::new(),
            is_function,
        }
    }

    /// Registers a column (once) and returns the quoted identifier that names it.
    pub(crate) fn column(&mut self, column: InputColumn) -> Expr {
        let name = column.name();
        if !self.columns.contains(&column) {
            self.columns.push(column);
        }
        Expr::Identifier(Ident::with_quote('"', name))
    }

    /// Rewrites `expr` in place, used in context `ctx`.
    pub(crate) fn rewrite(&mut self, expr: &mut Expr, ctx: Repr) -> Result<(), RuleError> {
        if let Some(path) = as_path(expr)? {
            *expr = self.column(InputColumn::Path(path, ctx));
            return Ok(());
        }
        let span = expr.span();
        match expr {
            Expr::Value(_) => Ok(()),
            // A parenthesised path is an expression, not a field selected as is.
            Expr::Nested(inner) => {
                let ctx = if ctx == Repr::Json { Repr::Text } else { ctx };
                self.rewrite(inner, ctx)
            }
            Expr::BinaryOp { left, op, right } => {
                let (l, r) = match op {
                    BinaryOperator::And | BinaryOperator::Or | BinaryOperator::Xor => {
                        (Repr::Bool, Repr::Bool)
                    }
                    BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::Lt
                    | BinaryOperator::LtEq
                    | BinaryOperator::Gt
                    | BinaryOperator::GtEq => (comparison_ctx(right), comparison_ctx(left)),
                    BinaryOperator::Plus
                    | BinaryOperator::Minus
                    | BinaryOperator::Multiply
                    | BinaryOperator::Divide
                    | BinaryOperator::Modulo => (Repr::Num, Repr::Num),
                    _ => (Repr::Text, Repr::Text),
                };
                self.rewrite(left, l)?;
                self.rewrite(right, r)
            }
            Expr::UnaryOp { op, expr } => match op {
                UnaryOperator::Not => self.rewrite(expr, Repr::Bool),
                UnaryOperator::Minus | UnaryOperator::Plus => self.rewrite(expr, Repr::Num),
                _ => Err(RuleError::invalid(
                    span,
                    format!("unsupported operator {op}"),
                )),
            },
            Expr::IsNull(e) | Expr::IsNotNull(e) => self.rewrite(e, Repr::Text),
            Expr::IsTrue(e) | Expr::IsFalse(e) | Expr::IsNotTrue(e) | Expr::IsNotFalse(e) => {
                self.rewrite(e, Repr::Bool)
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                let c = if is_string_literal(low) || is_string_literal(high) {
                    Repr::Text
                } else {
                    Repr::Num
                };
                self.rewrite(expr, c)?;
                self.rewrite(low, c)?;
                self.rewrite(high, c)
            }
            Expr::InList { expr, list, .. } => {
                let c = if list.iter().any(is_string_literal) {
                    Repr::Text
                } else {
                    Repr::Num
                };
                self.rewrite(expr, c)?;
                list.iter_mut().try_for_each(|e| self.rewrite(e, c))
            }
            Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => {
                self.rewrite(expr, Repr::Text)?;
                self.rewrite(pattern, Repr::Text)
            }
            Expr::Cast {
                expr, data_type, ..
            } => {
                let c = if is_numeric_type(data_type) {
                    Repr::Num
                } else {
                    Repr::Text
                };
                self.rewrite(expr, c)
            }
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                self.rewrite(expr, Repr::Text)?;
                for e in [substring_from, substring_for].into_iter().flatten() {
                    self.rewrite(e, Repr::Num)?;
                }
                Ok(())
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let cond_ctx = if let Some(op) = operand {
                    self.rewrite(op, Repr::Text)?;
                    Repr::Text
                } else {
                    Repr::Bool
                };
                for when in conditions.iter_mut() {
                    self.rewrite(&mut when.condition, cond_ctx)?;
                    self.rewrite(&mut when.result, Repr::Text)?;
                }
                if let Some(e) = else_result {
                    self.rewrite(e, Repr::Text)?;
                }
                Ok(())
            }
            Expr::Function(f) => {
                if let Some(replacement) = self.rewrite_function(f, span)? {
                    *expr = replacement;
                }
                Ok(())
            }
            other => Err(RuleError::invalid(
                span,
                format!("unsupported expression in a rule: {other}"),
            )),
        }
    }

    /// Rewrites a call's arguments in place, or returns the expression that replaces the
    /// whole call (metadata functions become column references).
    fn rewrite_function(
        &mut self,
        f: &mut Function,
        span: Span,
    ) -> Result<Option<Expr>, RuleError> {
        let name = function_name(&f.name).ok_or_else(|| {
            RuleError::invalid(span, "qualified function names are not supported")
        })?;
        if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
            return Err(RuleError::invalid(
                span,
                "window and aggregate clauses are not supported",
            ));
        }
        let args = function_args(f, span)?;
        let metadata = match name.as_str() {
            "productid" => Some(Meta::ProductId),
            "devicename" => Some(Meta::DeviceName),
            "clientip" => Some(Meta::ClientIp),
            "payloadlen" => Some(Meta::PayloadLen),
            "qos" => Some(Meta::Qos),
            "topic" if args.is_empty() => Some(Meta::Topic),
            _ => None,
        };
        if let Some(meta) = metadata {
            if !args.is_empty() {
                return Err(RuleError::invalid(
                    span,
                    format!("{name}() takes no arguments"),
                ));
            }
            return Ok(Some(self.column(InputColumn::Meta(meta))));
        }
        match name.as_str() {
            "topic" => {
                // topic(n): level n of the topic, 1-based, onto DataFusion's split_part.
                let [level] = args.as_slice() else {
                    return Err(RuleError::invalid(
                        span,
                        "topic() takes zero or one argument",
                    ));
                };
                if !matches!(level, Expr::Value(v) if matches!(v.value, Value::Number(..))) {
                    return Err(RuleError::invalid(level.span(), "topic(n) needs a number"));
                }
                let topic = self.column(InputColumn::Meta(Meta::Topic));
                Ok(Some(Expr::Function(call(
                    "split_part",
                    vec![topic, string_lit("/"), level.clone()],
                ))))
            }
            "timestamp" => {
                // timestamp(): the time the broker accepted the message, in seconds.
                if !args.is_empty() {
                    return Err(RuleError::invalid(span, "timestamp() takes no arguments"));
                }
                let ms = self.column(InputColumn::Meta(Meta::TimestampMs));
                Ok(Some(Expr::BinaryOp {
                    left: Box::new(ms),
                    op: BinaryOperator::Divide,
                    right: Box::new(Expr::Value(Value::Number("1000".into(), false).into())),
                }))
            }
            "crypto" => {
                let [_, algo] = args.as_slice() else {
                    return Err(RuleError::invalid(
                        span,
                        "crypto(field, 'ALGORITHM') takes two arguments",
                    ));
                };
                let ok = matches!(algo, Expr::Value(v) if matches!(&v.value, Value::SingleQuotedString(s)
                    if CRYPTO_ALGORITHMS.contains(&s.to_ascii_uppercase().as_str())));
                if !ok {
                    return Err(RuleError::invalid(
                        algo.span(),
                        format!(
                            "crypto() algorithm must be one of {}",
                            CRYPTO_ALGORITHMS.join("|")
                        ),
                    ));
                }
                self.rewrite_args(f, Repr::Text)?;
                Ok(None)
            }
            "substring" => {
                // Tencent's substring(s, start[, len]) is DataFusion's substr (1-based).
                f.name = ObjectName::from(vec![Ident::new("substr")]);
                let mut first = true;
                self.rewrite_args_with(f, |_| {
                    let c = if first { Repr::Text } else { Repr::Num };
                    first = false;
                    c
                })?;
                Ok(None)
            }
            n if (self.is_function)(n) => {
                let numeric = NUMERIC_FUNCTIONS.contains(&n);
                self.rewrite_args(f, if numeric { Repr::Num } else { Repr::Text })?;
                Ok(None)
            }
            n => Err(RuleError::invalid(span, format!("unknown function {n}()"))),
        }
    }

    fn rewrite_args(&mut self, f: &mut Function, ctx: Repr) -> Result<(), RuleError> {
        self.rewrite_args_with(f, |_| ctx)
    }

    fn rewrite_args_with(
        &mut self,
        f: &mut Function,
        mut ctx: impl FnMut(usize) -> Repr,
    ) -> Result<(), RuleError> {
        if let FunctionArguments::List(list) = &mut f.args {
            for (i, arg) in list.args.iter_mut().enumerate() {
                if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg {
                    self.rewrite(e, ctx(i))?;
                }
            }
        }
        Ok(())
    }
}

fn call(name: &str, args: Vec<Expr>) -> Function {
    use datafusion::sql::sqlparser::ast::FunctionArgumentList;
    Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    }
}

fn string_lit(s: &str) -> Expr {
    Expr::Value(Value::SingleQuotedString(s.to_owned()).into())
}

fn function_name(name: &ObjectName) -> Option<String> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(id)] => Some(id.value.to_ascii_lowercase()),
        _ => None,
    }
}

fn function_args(f: &Function, span: Span) -> Result<Vec<Expr>, RuleError> {
    match &f.args {
        FunctionArguments::None => Ok(Vec::new()),
        FunctionArguments::Subquery(_) => Err(RuleError::invalid(
            span,
            "subqueries are not supported in rules",
        )),
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e.clone()),
                _ => Err(RuleError::invalid(
                    span,
                    "only plain positional arguments are supported",
                )),
            })
            .collect(),
    }
}

/// The context a path compared with `other` is decoded in.
fn comparison_ctx(other: &Expr) -> Repr {
    match other {
        Expr::Value(v) => match v.value {
            Value::SingleQuotedString(_) | Value::DoubleQuotedString(_) => Repr::Text,
            Value::Boolean(_) => Repr::Bool,
            _ => Repr::Num,
        },
        Expr::Nested(e) => comparison_ctx(e),
        Expr::Function(f) => match function_name(&f.name).as_deref() {
            Some(n)
                if NUMERIC_FUNCTIONS.contains(&n)
                    || n == "timestamp"
                    || n == "payloadlen"
                    || n == "bin_to_dec" =>
            {
                Repr::Num
            }
            Some(_) => Repr::Text,
            None => Repr::Num,
        },
        Expr::Like { .. } | Expr::ILike { .. } | Expr::IsNull(_) | Expr::IsNotNull(_) => Repr::Bool,
        Expr::BinaryOp {
            op: BinaryOperator::StringConcat,
            ..
        } => Repr::Text,
        _ => Repr::Num,
    }
}

fn is_string_literal(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_) | Value::DoubleQuotedString(_)))
}

fn is_numeric_type(t: &SqlType) -> bool {
    let s = t.to_string().to_ascii_uppercase();
    [
        "INT", "BIGINT", "SMALLINT", "TINYINT", "INTEGER", "FLOAT", "DOUBLE", "REAL", "DECIMAL",
        "NUMERIC",
    ]
    .iter()
    .any(|n| s.starts_with(n))
}

/// The payload path `expr` names, if it is one: `a`, `a.b.c`, `a[0]`, `a.b[1].c`.
pub(crate) fn as_path(expr: &Expr) -> Result<Option<JsonPath>, RuleError> {
    let key = |id: &Ident| PathSegment::Key(id.value.clone());
    match expr {
        Expr::Identifier(id) => Ok(Some(JsonPath(vec![key(id)]))),
        Expr::CompoundIdentifier(ids) => Ok(Some(JsonPath(ids.iter().map(key).collect()))),
        Expr::CompoundFieldAccess { root, access_chain } => {
            let Some(mut path) = as_path(root)? else {
                return Ok(None);
            };
            for access in access_chain {
                match access {
                    AccessExpr::Dot(e) => match as_path(e)? {
                        Some(tail) => path.0.extend(tail.0),
                        None => {
                            return Err(RuleError::invalid(
                                e.span(),
                                "expected a field name after '.'",
                            ));
                        }
                    },
                    AccessExpr::Subscript(Subscript::Index { index }) => match index {
                        Expr::Value(v) => match &v.value {
                            Value::Number(n, _) => {
                                let i = n.parse::<usize>().map_err(|_| {
                                    RuleError::invalid(
                                        v.span,
                                        "array index must be a non-negative integer",
                                    )
                                })?;
                                path.0.push(PathSegment::Index(i));
                            }
                            Value::SingleQuotedString(s) => {
                                path.0.push(PathSegment::Key(s.clone()));
                            }
                            _ => return Err(RuleError::invalid(v.span, "unsupported subscript")),
                        },
                        other => {
                            return Err(RuleError::invalid(
                                other.span(),
                                "array index must be a literal",
                            ));
                        }
                    },
                    AccessExpr::Subscript(_) => {
                        return Err(RuleError::invalid(
                            expr.span(),
                            "array slices are not supported",
                        ));
                    }
                }
            }
            Ok(Some(path))
        }
        _ => Ok(None),
    }
}
