//! Binding positional parameters.
//!
//! PostgreSQL infers each parameter's type from the statement when it is
//! prepared; we then encode every value for exactly that type, in the binary
//! format the driver uses. Common types are encoded here; any other type is
//! converted by PostgreSQL itself from the value's text form
//! (`SELECT $1::text::<type>`), so every type that has a text input works,
//! with PostgreSQL's own validation and messages.

use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::{Param, param};
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgConnection, PgTypeInfo, PgTypeKind, types::Oid,
};
use sqlx::{
    Arguments, AssertSqlSafe, Encode, Postgres, Row, Type, TypeInfo, encode::IsNull,
    error::BoxDynError,
};

use crate::error::WorkerError;

/// A value in binary format for a given type; `None` is SQL NULL.
#[derive(Debug, Clone)]
pub struct Bound {
    ty: PgTypeInfo,
    bytes: Option<Vec<u8>>,
}

impl Bound {
    pub fn new(ty: PgTypeInfo, bytes: Option<Vec<u8>>) -> Self {
        Bound { ty, bytes }
    }
}

impl Type<Postgres> for Bound {
    fn type_info() -> PgTypeInfo {
        // Overridden per value by `produces`.
        PgTypeInfo::with_oid(Oid(oid::UNKNOWN))
    }
}

impl Encode<'_, Postgres> for Bound {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        match &self.bytes {
            None => Ok(IsNull::Yes),
            Some(b) => {
                buf.extend_from_slice(b);
                Ok(IsNull::No)
            }
        }
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(self.ty.clone())
    }

    fn size_hint(&self) -> usize {
        self.bytes.as_ref().map_or(0, Vec::len)
    }
}

/// OIDs of the built-in types encoded here.
mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const JSONB: u32 = 3802;
}

/// Encodes `params` for the parameter types PostgreSQL inferred (`types`).
pub async fn bind(
    conn: &mut PgConnection,
    params: &[Param],
    types: &[PgTypeInfo],
) -> Result<PgArguments, WorkerError> {
    if params.len() != types.len() {
        return Err(WorkerError::invalid(format!(
            "the statement has {} parameter placeholder{} but {} param{} given; \
             pass exactly one value per $n",
            types.len(),
            if types.len() == 1 { "" } else { "s" },
            params.len(),
            if params.len() == 1 { " was" } else { "s were" },
        )));
    }
    let mut bound: Vec<Option<Bound>> = Vec::with_capacity(params.len());
    let mut convert: Vec<(usize, String)> = Vec::new();
    for (i, (p, ty)) in params.iter().zip(types).enumerate() {
        match encode(p, ty).map_err(|msg| param_error(i, ty, &msg))? {
            Encoding::Done(bytes) => bound.push(Some(Bound {
                ty: ty.clone(),
                bytes,
            })),
            Encoding::ByServer(text) => {
                bound.push(None);
                convert.push((i, text));
            }
        }
    }
    if !convert.is_empty() {
        let converted = convert_by_server(conn, &convert, types).await?;
        for ((i, _), bytes) in convert.iter().zip(converted) {
            bound[*i] = Some(Bound {
                ty: types[*i].clone(),
                bytes,
            });
        }
    }
    let mut args = PgArguments::default();
    for b in bound.into_iter().flatten() {
        args.add(b)
            .map_err(|e| WorkerError::invalid(format!("cannot encode parameter: {e}")))?;
    }
    Ok(args)
}

enum Encoding {
    /// Binary value ready to send (None = NULL).
    Done(Option<Vec<u8>>),
    /// PostgreSQL must convert this text to the parameter's type.
    ByServer(String),
}

fn encode(p: &Param, ty: &PgTypeInfo) -> Result<Encoding, String> {
    let oid = ty.oid().map_or(0, |o| o.0);
    let text_like = matches!(
        oid,
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::UNKNOWN
    ) || matches!(ty.kind(), PgTypeKind::Enum(_));
    let Some(value) = &p.value else {
        return Err("the parameter has no value; send null for SQL NULL".into());
    };
    Ok(match value {
        param::Value::Null(_) => Encoding::Done(None),
        param::Value::BoolValue(b) => match oid {
            oid::BOOL => Encoding::Done(Some(vec![u8::from(*b)])),
            _ => by_text(b.to_string(), text_like),
        },
        param::Value::IntValue(n) => match oid {
            oid::INT2 => Encoding::Done(Some(
                i16::try_from(*n)
                    .map_err(|_| format!("{n} is out of range for smallint"))?
                    .to_be_bytes()
                    .to_vec(),
            )),
            oid::INT4 => Encoding::Done(Some(
                i32::try_from(*n)
                    .map_err(|_| format!("{n} is out of range for integer"))?
                    .to_be_bytes()
                    .to_vec(),
            )),
            oid::INT8 => Encoding::Done(Some(n.to_be_bytes().to_vec())),
            oid::OID => Encoding::Done(Some(
                u32::try_from(*n)
                    .map_err(|_| format!("{n} is out of range for oid"))?
                    .to_be_bytes()
                    .to_vec(),
            )),
            oid::FLOAT8 => Encoding::Done(Some((*n as f64).to_be_bytes().to_vec())),
            oid::FLOAT4 => Encoding::Done(Some((*n as f32).to_be_bytes().to_vec())),
            oid::BOOL => return Err(format!("expected true or false, got {n}")),
            _ => by_text(n.to_string(), text_like),
        },
        param::Value::FloatValue(f) => match oid {
            oid::FLOAT8 => Encoding::Done(Some(f.to_be_bytes().to_vec())),
            oid::FLOAT4 => Encoding::Done(Some((*f as f32).to_be_bytes().to_vec())),
            _ => by_text(float_text(*f), text_like),
        },
        param::Value::TextValue(s) => by_text(s.clone(), text_like),
        param::Value::JsonValue(s) => match oid {
            oid::JSON => Encoding::Done(Some(s.clone().into_bytes())),
            oid::JSONB => {
                let mut b = Vec::with_capacity(s.len() + 1);
                b.push(1);
                b.extend_from_slice(s.as_bytes());
                Encoding::Done(Some(b))
            }
            _ if matches!(ty.kind(), PgTypeKind::Array(_)) => {
                let v: serde_json::Value =
                    serde_json::from_str(s).map_err(|e| format!("invalid JSON: {e}"))?;
                Encoding::ByServer(array_literal(&v))
            }
            _ => by_text(s.clone(), text_like),
        },
        param::Value::BytesValue(b) => match oid {
            oid::BYTEA => Encoding::Done(Some(b.clone())),
            _ => {
                return Err(format!(
                    "binary data can only be bound to bytea, but this parameter is {}",
                    ty.name()
                ));
            }
        },
    })
}

fn by_text(text: String, text_like: bool) -> Encoding {
    if text_like {
        Encoding::Done(Some(text.into_bytes()))
    } else {
        Encoding::ByServer(text)
    }
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        f.to_string()
    }
}

/// A JSON array as a PostgreSQL array literal: `[1,[2,null],"a\"b"]` →
/// `{1,{2,NULL},"a\"b"}`.
pub(crate) fn array_literal(v: &serde_json::Value) -> String {
    fn push(out: &mut String, v: &serde_json::Value) {
        match v {
            serde_json::Value::Array(items) => {
                out.push('{');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push(out, item);
                }
                out.push('}');
            }
            serde_json::Value::Null => out.push_str("NULL"),
            serde_json::Value::String(s) => quote(out, s),
            other => quote(out, &other.to_string()),
        }
    }
    fn quote(out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    let mut out = String::new();
    match v {
        serde_json::Value::Array(_) => push(&mut out, v),
        other => out.push_str(&other.to_string()),
    }
    out
}

/// Has PostgreSQL turn each text into its parameter's type, in one round
/// trip, and returns the binary values.
async fn convert_by_server(
    conn: &mut PgConnection,
    convert: &[(usize, String)],
    types: &[PgTypeInfo],
) -> Result<Vec<Option<Vec<u8>>>, WorkerError> {
    let mut sql = String::from("SELECT ");
    for (n, (i, _)) in convert.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        // Type names come from the catalog (`oid::regtype::text`) or the
        // driver's built-in table, never from the caller.
        sql.push_str(&format!("${}::text::{}", n + 1, types[*i].name()));
    }
    let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(false);
    for (_, text) in convert {
        query = query.bind(text.as_str());
    }
    let row = query.fetch_one(&mut *conn).await.map_err(|e| {
        let mut err = WorkerError::from(e);
        if err.kind() == ErrorKind::Data || err.kind() == ErrorKind::Statement {
            let which: Vec<String> = convert.iter().map(|(i, _)| format!("${}", i + 1)).collect();
            err.0.message = format!("parameter {}: {}", which.join("/"), err.0.message);
            err.0.position = 0;
        }
        err
    })?;
    let mut out = Vec::with_capacity(convert.len());
    for n in 0..convert.len() {
        let raw = row.try_get_raw(n).map_err(WorkerError::from)?;
        out.push(if sqlx::ValueRef::is_null(&raw) {
            None
        } else {
            Some(
                raw.as_bytes()
                    .map_err(|e| {
                        WorkerError::invalid(format!("cannot read converted parameter: {e}"))
                    })?
                    .to_vec(),
            )
        });
    }
    Ok(out)
}

fn param_error(i: usize, ty: &PgTypeInfo, msg: &str) -> WorkerError {
    WorkerError::new(
        ErrorKind::InvalidRequest,
        format!(
            "parameter ${} ({}): {msg}",
            i + 1,
            ty.name().to_ascii_lowercase()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_arrays_become_array_literals() {
        let v = serde_json::json!([1, [2, null], "a\"b", true]);
        assert_eq!(array_literal(&v), r#"{"1",{"2",NULL},"a\"b","true"}"#);
    }

    #[test]
    fn floats_have_postgres_spellings() {
        assert_eq!(float_text(f64::NAN), "NaN");
        assert_eq!(float_text(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(float_text(1.5), "1.5");
    }
}
