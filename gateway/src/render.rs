//! Compact text rendering of a result for the model: a header line, one line
//! per row, values separated by ` | `, and a closing line with the count.

use std::fmt::Write as _;

use pgmcp_proto::v1::Column;

/// Renders columns and JSON-array rows as compact text.
pub fn table(columns: &[Column], rows: &[Vec<u8>], row_count: u64, note: Option<&str>) -> String {
    let values: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            serde_json::from_slice(row)
                .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(row).into()))
        })
        .collect();
    table_values(columns, &values, row_count, note)
}

/// As [`table`], for rows already parsed (each a JSON array; anything else
/// is written as it is).
pub fn table_values(
    columns: &[Column],
    rows: &[serde_json::Value],
    row_count: u64,
    note: Option<&str>,
) -> String {
    let mut out = String::with_capacity(64 + rows.len() * 32);
    if !columns.is_empty() {
        let header: Vec<String> = columns
            .iter()
            .map(|c| format!("{} ({})", c.name, c.type_name))
            .collect();
        out.push_str(&header.join(" | "));
        out.push('\n');
    }
    for row in rows {
        match row {
            serde_json::Value::Array(values) => {
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        out.push_str(" | ");
                    }
                    cell(&mut out, v);
                }
            }
            other => cell(&mut out, other),
        }
        out.push('\n');
    }
    // `write!` into a String cannot fail.
    let _ = write!(
        out,
        "({} row{})",
        row_count,
        if row_count == 1 { "" } else { "s" }
    );
    if let Some(note) = note {
        out.push('\n');
        out.push_str(note);
    }
    out
}

fn cell(out: &mut String, v: &serde_json::Value) {
    match v {
        serde_json::Value::Null => out.push_str("NULL"),
        serde_json::Value::String(s) => {
            // Keep one row per line.
            if s.contains(['\n', '\r', '|']) {
                let _ = write!(out, "{v}");
            } else {
                out.push_str(s);
            }
        }
        // Numbers, booleans, objects and arrays as JSON, written in place.
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rows() {
        let cols = vec![
            Column {
                name: "id".into(),
                type_name: "int4".into(),
                type_oid: 23,
            },
            Column {
                name: "note".into(),
                type_name: "text".into(),
                type_oid: 25,
            },
        ];
        let rows = vec![br#"[1,"a"]"#.to_vec(), br#"[2,null]"#.to_vec()];
        assert_eq!(
            table(&cols, &rows, 2, None),
            "id (int4) | note (text)\n1 | a\n2 | NULL\n(2 rows)"
        );
    }
}
