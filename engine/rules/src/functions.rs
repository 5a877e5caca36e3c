//! Tencent's rule functions that have no DataFusion built-in, as scalar UDFs.
//!
//! Which Tencent function maps onto what (the rest of the story is in `rewrite`):
//!
//! | Tencent | Eddy |
//! |---|---|
//! | `productId()`, `deviceName()`, `topic()`, `clientip()`, `payloadLen()` | rewritten onto metadata columns |
//! | `topic(n)` | rewritten to DataFusion `split_part(topic, '/', n)` (1-based; `''` past the end) |
//! | `timestamp()` | rewritten to `received_at_ms / 1000` (seconds, integer) |
//! | `upper`, `lower`, `concat`, `replace` | DataFusion built-ins |
//! | `substring(s, start[, len])` | DataFusion `substr` (1-based, as SQL) |
//! | `to_hex`, `bin_to_dec`, `crypto`, `randint`, `newuuid`, `requestId` | UDFs below |

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Builder, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use rand::Rng;

/// Every UDF the rule engine registers.
pub(crate) fn all() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(Uuid::new("newuuid")),
        ScalarUDF::from(Uuid::new("requestid")),
        ScalarUDF::from(RandInt::default()),
        ScalarUDF::from(BinToDec::default()),
        ScalarUDF::from(ToHex::default()),
        ScalarUDF::from(Crypto::default()),
    ]
}

fn first_array(args: &ScalarFunctionArgs) -> Result<ArrayRef> {
    args.args
        .first()
        .ok_or_else(|| DataFusionError::Internal("missing argument".into()))?
        .clone()
        .into_array(args.number_rows)
}

fn as_utf8(array: &ArrayRef) -> Result<ArrayRef> {
    Ok(cast(array, &DataType::Utf8)?)
}

/// `newuuid()` and `requestId()`: a fresh UUID v4 per row. Eddy keeps no Tencent request
/// id per message, so `requestId()` is a unique id per output row too.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Uuid {
    name: &'static str,
    signature: Signature,
}

impl Uuid {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            signature: Signature::nullary(Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for Uuid {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let mut out = StringBuilder::with_capacity(args.number_rows, args.number_rows * 36);
        for _ in 0..args.number_rows {
            out.append_value(uuid::Uuid::new_v4().to_string());
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `randint()` → a random integer in [0, 2³¹); `randint(n)` → one in [0, n).
#[derive(Debug, PartialEq, Eq, Hash)]
struct RandInt {
    signature: Signature,
}

impl Default for RandInt {
    fn default() -> Self {
        Self {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Nullary,
                    TypeSignature::Exact(vec![DataType::Int64]),
                    TypeSignature::Exact(vec![DataType::Float64]),
                ],
                Volatility::Volatile,
            ),
        }
    }
}

impl ScalarUDFImpl for RandInt {
    fn name(&self) -> &str {
        "randint"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let bounds = if args.args.is_empty() {
            None
        } else {
            Some(cast(&first_array(&args)?, &DataType::Int64)?)
        };
        let bounds = bounds
            .as_ref()
            .map(|b| b.as_primitive::<arrow::datatypes::Int64Type>());
        let mut rng = rand::rng();
        let mut out = Int64Builder::with_capacity(n);
        for i in 0..n {
            match bounds {
                None => out.append_value(rng.random_range(0..i64::from(i32::MAX))),
                Some(b) if b.is_valid(i) && b.value(i) > 0 => {
                    out.append_value(rng.random_range(0..b.value(i)));
                }
                Some(_) => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `bin_to_dec('1010')` → 10; NULL when the text is not binary digits or overflows.
#[derive(Debug, PartialEq, Eq, Hash)]
struct BinToDec {
    signature: Signature,
}

impl Default for BinToDec {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for BinToDec {
    fn name(&self) -> &str {
        "bin_to_dec"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let text = as_utf8(&first_array(&args)?)?;
        let text = text.as_string::<i32>();
        let out: arrow::array::Int64Array = text
            .iter()
            .map(|v| v.and_then(|s| i64::from_str_radix(s.trim(), 2).ok()))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `to_hex(x)`: an integer as lower-case hex (`255` → `ff`), text or bytes as the hex of
/// their bytes (`'ab'` → `6162`). Replaces DataFusion's integer-only `to_hex`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToHex {
    signature: Signature,
}

impl Default for ToHex {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ToHex {
    fn name(&self) -> &str {
        "to_hex"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = first_array(&args)?;
        let out: arrow::array::StringArray = match array.data_type() {
            DataType::Binary => array
                .as_binary::<i32>()
                .iter()
                .map(|v| v.map(hex::encode))
                .collect(),
            t if t.is_numeric() => {
                let f = cast(&array, &DataType::Float64)?;
                f.as_primitive::<arrow::datatypes::Float64Type>()
                    .iter()
                    .map(|v| {
                        v.filter(|x| x.fract() == 0.0 && x.abs() < 9.007e15)
                            .map(|x| format!("{:x}", x as i64))
                    })
                    .collect()
            }
            _ => {
                let s = as_utf8(&array)?;
                s.as_string::<i32>()
                    .iter()
                    .map(|v| v.map(hex::encode))
                    .collect()
            }
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `crypto(field, 'MD5|SHA1|SHA256|SHA384|SHA512')`: the lower-case hex digest of the
/// field's UTF-8 text. The algorithm is checked when the rule compiles.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Crypto {
    signature: Signature,
}

impl Default for Crypto {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

fn digest_hex(algorithm: &str, data: &[u8]) -> Option<String> {
    use sha2::Digest;
    Some(match algorithm {
        "MD5" => hex::encode(md5::Md5::digest(data)),
        "SHA1" => hex::encode(sha1::Sha1::digest(data)),
        "SHA256" => hex::encode(sha2::Sha256::digest(data)),
        "SHA384" => hex::encode(sha2::Sha384::digest(data)),
        "SHA512" => hex::encode(sha2::Sha512::digest(data)),
        _ => return None,
    })
}

impl ScalarUDFImpl for Crypto {
    fn name(&self) -> &str {
        "crypto"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let algorithm = match args.args.get(1) {
            Some(ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(a))
                | ScalarValue::Utf8View(Some(a))
                | ScalarValue::LargeUtf8(Some(a)),
            )) => a.to_ascii_uppercase(),
            _ => {
                return Err(DataFusionError::Execution(
                    "crypto() needs a literal algorithm".into(),
                ));
            }
        };
        let array = first_array(&args)?;
        let out: arrow::array::StringArray = if array.data_type() == &DataType::Binary {
            array
                .as_binary::<i32>()
                .iter()
                .map(|v| v.and_then(|b| digest_hex(&algorithm, b)))
                .collect()
        } else {
            let s = as_utf8(&array)?;
            s.as_string::<i32>()
                .iter()
                .map(|v| v.and_then(|t| digest_hex(&algorithm, t.as_bytes())))
                .collect()
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
