//! A table with one column per PostgreSQL type the worker decodes, a row of
//! interesting values, a row of NULLs, and the exact JSON each row must
//! decode to (see the encoding table on `RowBatch` in
//! `proto/pgmcp/v1/worker.proto`).
//!
//! Used by `tests/tests/types.rs` (through the worker's gRPC API) and meant
//! for reuse by tests through MCP:
//!
//! ```ignore
//! pg.exec(db, types_fixture::SETUP_SQL).await?;
//! let res = query(&mut client, sql(types_fixture::SELECT_SQL)).await?;
//! assert_eq!(res.rows, types_fixture::expected_rows());
//! ```

use serde_json::{Value, json};

/// Creates the types (`mood` enum, `posint` domain, `address` composite) and
/// the table `all_types`, and inserts row 1 (interesting values) and row 2
/// (NULL in every column but `id`). Extension-free; runs on PostgreSQL 14+.
pub const SETUP_SQL: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TYPE address AS (street text, zip integer, tags text[]);

CREATE TABLE all_types (
    id                integer PRIMARY KEY,
    c_bool            boolean,
    c_int2            smallint,
    c_int4            integer,
    c_int8            bigint,
    c_int8_big        bigint,
    c_oid             oid,
    c_float4          real,
    c_float8          double precision,
    c_float8_nan      double precision,
    c_float4_inf      real,
    c_numeric         numeric(10, 2),
    c_numeric_big     numeric,
    c_numeric_inf     numeric,
    c_money           money,
    c_text            text,
    c_varchar         varchar(20),
    c_bpchar          char(5),
    c_name            name,
    c_char            "char",
    c_xml             xml,
    c_bytea           bytea,
    c_date            date,
    c_date_bc         date,
    c_date_inf        date,
    c_timestamp       timestamp,
    c_timestamp_inf   timestamp,
    c_timestamptz     timestamptz,
    c_time            time,
    c_timetz          timetz,
    c_interval        interval,
    c_interval_neg    interval,
    c_uuid            uuid,
    c_json            json,
    c_jsonb           jsonb,
    c_jsonpath        jsonpath,
    c_inet            inet,
    c_inet6           inet,
    c_cidr            cidr,
    c_macaddr         macaddr,
    c_macaddr8        macaddr8,
    c_bit             bit(5),
    c_varbit          varbit,
    c_pg_lsn          pg_lsn,
    c_int4_2d         integer[][],
    c_text_arr        text[],
    c_enum            mood,
    c_enum_arr        mood[],
    c_domain          posint,
    c_composite       address,
    c_composite_arr   address[],
    c_uuid_arr        uuid[],
    c_timestamptz_arr timestamptz[],
    c_int4range       int4range,
    c_numrange        numrange,
    c_tstzrange       tstzrange,
    c_daterange       daterange,
    c_empty_range     int4range,
    c_int4multirange  int4multirange,
    c_tsvector        tsvector,
    c_point           point
);

INSERT INTO all_types VALUES (
    1,
    true,
    -32768,
    2147483647,
    -9007199254740992,
    9007199254740993,
    4294967295,
    1.1,
    -2.5e-7,
    'NaN',
    '-Infinity',
    12.5,
    '-123456789012345678901234567890.1234567890123400',
    'Infinity',
    '-12.34',
    E'He said "hi"\n\tünïcødé ✓ 😀 back\\slash',
    'varchar',
    'ab',
    'a_name',
    'x',
    '<a b="1">t</a>',
    '\x00ff10',
    '2024-02-29',
    '0044-03-15 BC',
    '-infinity',
    '2024-02-29 12:34:56.789',
    'infinity',
    '2024-02-29 12:34:56.789+02',
    '23:59:59.999999',
    '12:34:56.5-05:30',
    '1 year 2 months 3 days 04:05:06.5',
    '-1 year -2 months +3 days -04:05:06',
    'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
    '{"b": [1, 2.5, null, true], "a": {"nested": {"deep": "x"}}, "s": "q\"uote"}',
    '{"b": [1, 2.5, null, true], "a": {"nested": {"deep": "x"}}, "s": "q\"uote"}',
    '$.a[*] ? (@ > 1)',
    '192.168.0.1/24',
    '2001:db8:0:0:0:0:0:1',
    '10.0.0.0/8',
    '08:00:2b:01:02:03',
    '08:00:2b:01:02:03:04:05',
    B'10101',
    B'1101100101',
    '16/B374D848',
    '{{1,2,3},{4,NULL,6}}',
    ARRAY['a', NULL, 'with "quote"', ''],
    'happy',
    '{sad,happy}',
    42,
    ROW('Main St', 12345, ARRAY['x', 'y']),
    ARRAY[ROW('A', 1, NULL)::address, NULL],
    ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, NULL],
    ARRAY['2024-01-01 00:00:00+00'::timestamptz, 'infinity'],
    '[1,10)',
    '(1.50,]',
    '[2024-01-01 00:00:00+00,infinity)',
    '[2024-01-01,2024-02-01)',
    'empty',
    '{[1,3),[5,7)}',
    'a fat cat',
    point(1.5, -2)
);

INSERT INTO all_types (id) VALUES (2);
"#;

/// Every column of `all_types` except the multirange (sqlx 0.9 cannot
/// prepare statements returning multiranges, see [`MULTIRANGE_SQL`]), plus an
/// anonymous record built from three columns.
pub const SELECT_SQL: &str = "SELECT id, c_bool, c_int2, c_int4, c_int8, c_int8_big, c_oid, \
    c_float4, c_float8, c_float8_nan, c_float4_inf, c_numeric, c_numeric_big, c_numeric_inf, \
    c_money, c_text, c_varchar, c_bpchar, c_name, c_char, c_xml, c_bytea, c_date, c_date_bc, \
    c_date_inf, c_timestamp, c_timestamp_inf, c_timestamptz, c_time, c_timetz, c_interval, \
    c_interval_neg, c_uuid, c_json, c_jsonb, c_jsonpath, c_inet, c_inet6, c_cidr, c_macaddr, \
    c_macaddr8, c_bit, c_varbit, c_pg_lsn, c_int4_2d, c_text_arr, c_enum, c_enum_arr, c_domain, \
    c_composite, c_composite_arr, c_uuid_arr, c_timestamptz_arr, c_int4range, c_numrange, \
    c_tstzrange, c_daterange, c_empty_range, c_tsvector, c_point, \
    ROW(c_int4, c_text_arr, c_date) AS c_record \
    FROM all_types ORDER BY id";

/// The multirange column. It decodes to an array of ranges, but sqlx 0.9
/// fails to prepare any statement returning a multirange (it does not know
/// `pg_type.typtype = 'm'`), so the worker cannot run this yet.
pub const MULTIRANGE_SQL: &str = "SELECT c_int4multirange FROM all_types ORDER BY id";

/// What [`MULTIRANGE_SQL`] must return once the worker can run it.
pub fn expected_multirange_rows() -> Vec<Value> {
    vec![
        json!([[
            {"lower": 1, "upper": 3, "lower_inc": true, "upper_inc": false},
            {"lower": 5, "upper": 7, "lower_inc": true, "upper_inc": false}
        ]]),
        json!([null]),
    ]
}

/// The columns of [`SELECT_SQL`], in order.
pub fn columns() -> Vec<&'static str> {
    row_one().into_iter().map(|(name, _)| name).collect()
}

/// Row 1 as (column, value) pairs, in column order.
fn row_one() -> Vec<(&'static str, Value)> {
    let json_doc =
        json!({"b": [1, 2.5, null, true], "a": {"nested": {"deep": "x"}}, "s": "q\"uote"});
    vec![
        ("id", json!(1)),
        ("c_bool", json!(true)),
        ("c_int2", json!(-32768)),
        ("c_int4", json!(2147483647)),
        // -2^53 is still a number; 2^53 + 1 is a string.
        ("c_int8", json!(-9007199254740992i64)),
        ("c_int8_big", json!("9007199254740993")),
        ("c_oid", json!(4294967295u32)),
        // float4 is printed from the f32: 1.1, not 1.100000023841858.
        ("c_float4", json!(1.1)),
        ("c_float8", json!(-2.5e-7)),
        ("c_float8_nan", json!("NaN")),
        ("c_float4_inf", json!("-Infinity")),
        // Trailing zeros of the scale are kept.
        ("c_numeric", json!("12.50")),
        (
            "c_numeric_big",
            json!("-123456789012345678901234567890.1234567890123400"),
        ),
        ("c_numeric_inf", json!("Infinity")),
        ("c_money", json!("-12.34")),
        (
            "c_text",
            json!("He said \"hi\"\n\tünïcødé ✓ 😀 back\\slash"),
        ),
        ("c_varchar", json!("varchar")),
        // bpchar keeps its padding, as PostgreSQL prints it.
        ("c_bpchar", json!("ab   ")),
        ("c_name", json!("a_name")),
        ("c_char", json!("x")),
        ("c_xml", json!("<a b=\"1\">t</a>")),
        ("c_bytea", json!("\\x00ff10")),
        ("c_date", json!("2024-02-29")),
        // 44 BC is astronomical year -43.
        ("c_date_bc", json!("-0043-03-15")),
        ("c_date_inf", json!("-infinity")),
        ("c_timestamp", json!("2024-02-29T12:34:56.789")),
        ("c_timestamp_inf", json!("infinity")),
        // Always UTC.
        ("c_timestamptz", json!("2024-02-29T10:34:56.789+00:00")),
        ("c_time", json!("23:59:59.999999")),
        ("c_timetz", json!("12:34:56.5-05:30")),
        ("c_interval", json!("P1Y2M3DT4H5M6.5S")),
        ("c_interval_neg", json!("P-1Y-2M3DT-4H-5M-6S")),
        ("c_uuid", json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
        ("c_json", json_doc.clone()),
        ("c_jsonb", json_doc),
        ("c_jsonpath", json!("$.\"a\"[*]?(@ > 1)")),
        ("c_inet", json!("192.168.0.1/24")),
        ("c_inet6", json!("2001:db8::1")),
        ("c_cidr", json!("10.0.0.0/8")),
        ("c_macaddr", json!("08:00:2b:01:02:03")),
        ("c_macaddr8", json!("08:00:2b:01:02:03:04:05")),
        ("c_bit", json!("10101")),
        ("c_varbit", json!("1101100101")),
        ("c_pg_lsn", json!("16/B374D848")),
        ("c_int4_2d", json!([[1, 2, 3], [4, null, 6]])),
        ("c_text_arr", json!(["a", null, "with \"quote\"", ""])),
        ("c_enum", json!("happy")),
        ("c_enum_arr", json!(["sad", "happy"])),
        ("c_domain", json!(42)),
        (
            "c_composite",
            json!({"street": "Main St", "zip": 12345, "tags": ["x", "y"]}),
        ),
        (
            "c_composite_arr",
            json!([{"street": "A", "zip": 1, "tags": null}, null]),
        ),
        (
            "c_uuid_arr",
            json!(["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", null]),
        ),
        (
            "c_timestamptz_arr",
            json!(["2024-01-01T00:00:00+00:00", "infinity"]),
        ),
        (
            "c_int4range",
            json!({"lower": 1, "upper": 10, "lower_inc": true, "upper_inc": false}),
        ),
        // An unbounded side is null and never inclusive.
        (
            "c_numrange",
            json!({"lower": "1.50", "upper": null, "lower_inc": false, "upper_inc": false}),
        ),
        // `infinity` as a timestamp *value* is a real bound, unlike an unbounded side.
        (
            "c_tstzrange",
            json!({"lower": "2024-01-01T00:00:00+00:00", "upper": "infinity", "lower_inc": true, "upper_inc": false}),
        ),
        (
            "c_daterange",
            json!({"lower": "2024-01-01", "upper": "2024-02-01", "lower_inc": true, "upper_inc": false}),
        ),
        ("c_empty_range", json!({"empty": true})),
        // No decoder: PostgreSQL's text output, as a string.
        ("c_tsvector", json!("'a' 'cat' 'fat'")),
        ("c_point", json!("(1.5,-2)")),
        // Anonymous records: fields f1, f2, … decoded by the OIDs in the data.
        (
            "c_record",
            json!({"f1": 2147483647, "f2": ["a", null, "with \"quote\"", ""], "f3": "2024-02-29"}),
        ),
    ]
}

/// The rows [`SELECT_SQL`] must decode to, each a JSON array in column order.
pub fn expected_rows() -> Vec<Value> {
    let one = row_one();
    let two = one.iter().map(|(name, _)| match *name {
        "id" => json!(2),
        // The record itself is not NULL; its fields are.
        "c_record" => json!({"f1": null, "f2": null, "f3": null}),
        _ => Value::Null,
    });
    vec![
        Value::Array(one.iter().map(|(_, v)| v.clone()).collect()),
        Value::Array(two.collect()),
    ]
}

/// Columns whose JSON the proto defines as PostgreSQL's own text (or JSON)
/// output, with an SQL expression that makes PostgreSQL produce it. The
/// expression must evaluate, in a session with `intervalstyle = iso_8601`
/// and `timezone = 'UTC'`, to exactly the decoded value of row 1 (as JSON:
/// text expressions compare as strings, `to_json` ones structurally).
pub const TEXT_CROSS_CHECKS: &[(&str, &str)] = &[
    ("c_int8_big", "c_int8_big::text"),
    ("c_numeric", "c_numeric::text"),
    ("c_numeric_big", "c_numeric_big::text"),
    ("c_numeric_inf", "c_numeric_inf::text"),
    ("c_float8_nan", "c_float8_nan::text"),
    ("c_float4_inf", "c_float4_inf::text"),
    ("c_text", "c_text"),
    ("c_varchar", "c_varchar::text"),
    // ::text would trim the padding; format('%s') runs the output function.
    ("c_bpchar", "format('%s', c_bpchar)"),
    ("c_name", "c_name::text"),
    ("c_char", "c_char::text"),
    ("c_xml", "c_xml::text"),
    ("c_bytea", "c_bytea::text"),
    ("c_interval", "c_interval::text"),
    ("c_interval_neg", "c_interval_neg::text"),
    ("c_uuid", "c_uuid::text"),
    ("c_jsonpath", "c_jsonpath::text"),
    // inet::text always adds the prefix length; the output function does not.
    ("c_inet", "format('%s', c_inet)"),
    ("c_inet6", "format('%s', c_inet6)"),
    ("c_cidr", "format('%s', c_cidr)"),
    ("c_macaddr", "c_macaddr::text"),
    ("c_macaddr8", "c_macaddr8::text"),
    ("c_bit", "c_bit::text"),
    ("c_varbit", "c_varbit::text"),
    ("c_pg_lsn", "c_pg_lsn::text"),
    ("c_enum", "c_enum::text"),
    ("c_tsvector", "c_tsvector::text"),
    ("c_point", "c_point::text"),
    // PostgreSQL's JSON output of dates and times is ISO 8601 too (for
    // years 1–9999 AD; it writes BC dates as "0044-03-15 BC").
    ("c_date", "to_json(c_date)"),
    ("c_date_inf", "to_json(c_date_inf)"),
    ("c_timestamp", "to_json(c_timestamp)"),
    ("c_timestamp_inf", "to_json(c_timestamp_inf)"),
    ("c_timestamptz", "to_json(c_timestamptz)"),
    ("c_time", "to_json(c_time)"),
    ("c_timetz", "to_json(c_timetz)"),
    ("c_json", "c_json"),
    ("c_jsonb", "c_jsonb"),
    ("c_int4_2d", "to_json(c_int4_2d)"),
    ("c_text_arr", "to_json(c_text_arr)"),
    ("c_enum_arr", "to_json(c_enum_arr)"),
    ("c_composite", "to_json(c_composite)"),
    ("c_composite_arr", "to_json(c_composite_arr)"),
    ("c_uuid_arr", "to_json(c_uuid_arr)"),
    ("c_timestamptz_arr", "to_json(c_timestamptz_arr)"),
    ("c_record", "to_json(ROW(c_int4, c_text_arr, c_date))"),
];

/// Single values beyond the table: (SQL expression, expected JSON). Run as
/// one `SELECT expr AS c1, …` (no table needed; the `mood` type must exist).
pub fn edge_values() -> Vec<(&'static str, Value)> {
    vec![
        ("9223372036854775807::int8", json!("9223372036854775807")),
        ("(-9007199254740993)::int8", json!("-9007199254740993")),
        ("0.1::float8 + 0.2::float8", json!(0.30000000000000004)),
        ("3::float8", json!(3.0)),
        ("1e300::float8", json!(1e300)),
        ("'-0'::float8", json!(-0.0)),
        ("'NaN'::float4", json!("NaN")),
        ("'1e-20'::numeric", json!("0.00000000000000000001")),
        ("'-0.0000123'::numeric", json!("-0.0000123")),
        ("'NaN'::numeric", json!("NaN")),
        ("'-Infinity'::numeric", json!("-Infinity")),
        ("0::numeric(5,3)", json!("0.000")),
        ("10000::numeric", json!("10000")),
        ("''::text", json!("")),
        ("E'\\u0001'::text", json!("\u{1}")),
        ("'\\x'::bytea", json!("\\x")),
        ("'é'::\"char\"", json!("\\303")),
        ("'10000-01-01'::date", json!("+10000-01-01")),
        ("'5874897-12-31'::date", json!("+5874897-12-31")),
        ("'4713-01-01 BC'::date", json!("-4712-01-01")),
        ("'0001-01-01 BC'::date", json!("0000-01-01")),
        (
            "'294276-12-31 23:59:59.999999'::timestamp",
            json!("+294276-12-31T23:59:59.999999"),
        ),
        (
            "'0044-03-15 12:30:00.5 BC'::timestamp",
            json!("-0043-03-15T12:30:00.5"),
        ),
        ("'-infinity'::timestamptz", json!("-infinity")),
        ("'24:00:00'::time", json!("24:00:00")),
        ("'00:00:00.000001'::time", json!("00:00:00.000001")),
        ("'12:00:00+00'::timetz", json!("12:00:00+00:00")),
        ("'12:00:00+05:30:15'::timetz", json!("12:00:00+05:30:15")),
        ("'0'::interval", json!("PT0S")),
        ("'-0.5 seconds'::interval", json!("PT-0.5S")),
        ("'1 mon -1 day'::interval", json!("P1M-1D")),
        ("'100000 hours'::interval", json!("PT100000H")),
        ("'::ffff:1.2.3.4'::inet", json!("::ffff:1.2.3.4")),
        ("'::1'::inet", json!("::1")),
        ("'fe80::1:0:0:0/64'::inet", json!("fe80::1:0:0:0/64")),
        ("'1:0:0:1:0:0:0:1'::inet", json!("1:0:0:1::1")),
        ("'::1'::cidr", json!("::1/128")),
        ("'10.1.2.3'::cidr", json!("10.1.2.3/32")),
        ("''::varbit", json!("")),
        ("'0/0'::pg_lsn", json!("0/0")),
        ("'{}'::int[]", json!([])),
        ("'[0:1]={7,8}'::int[]", json!([7, 8])),
        (
            "'{{{1},{2}},{{3},{4}}}'::int[]",
            json!([[[1], [2]], [[3], [4]]]),
        ),
        ("ARRAY[1.5, NULL, 2]::numeric[]", json!(["1.5", null, "2"])),
        (
            "ARRAY['{\"a\":1}'::jsonb, 'null'::jsonb]",
            json!([{"a": 1}, null]),
        ),
        ("ARRAY['happy'::mood, NULL]", json!(["happy", null])),
        (
            "ARRAY[ROW(1, 'a'), ROW(2, NULL)]",
            json!([{"f1": 1, "f2": "a"}, {"f1": 2, "f2": null}]),
        ),
        (
            "ROW('0044-03-15 BC'::date, 'NaN'::float8)",
            json!({"f1": "-0043-03-15", "f2": "NaN"}),
        ),
        (
            "ROW(ROW(1, 2.50), ARRAY[1, 2], NULL::mood)",
            json!({"f1": {"f1": 1, "f2": "2.50"}, "f2": [1, 2], "f3": null}),
        ),
        (
            "'[1,5]'::int8range",
            json!({"lower": 1, "upper": 6, "lower_inc": true, "upper_inc": false}),
        ),
        (
            "'(,)'::int4range",
            json!({"lower": null, "upper": null, "lower_inc": false, "upper_inc": false}),
        ),
        (
            "'[1.5,2.5]'::numrange",
            json!({"lower": "1.5", "upper": "2.5", "lower_inc": true, "upper_inc": true}),
        ),
        (
            "'[2024-01-01 10:00,2024-01-01 11:00)'::tsrange",
            json!({"lower": "2024-01-01T10:00:00", "upper": "2024-01-01T11:00:00", "lower_inc": true, "upper_inc": false}),
        ),
        (
            "ARRAY['[1,2)'::int4range, 'empty']",
            json!([{"lower": 1, "upper": 2, "lower_inc": true, "upper_inc": false}, {"empty": true}]),
        ),
        ("'1 2'::int2vector", json!([1, 2])),
        ("'(0,1)'::tid", json!("(0,1)")),
        ("'$.a'::jsonpath", json!("$.\"a\"")),
        ("'abc'::name", json!("abc")),
        // Domains, alone and as array elements; information_schema's are
        // domains over built-in types.
        ("ARRAY[1::posint, NULL]", json!([1, null])),
        ("'{3,4}'::posint[]", json!([3, 4])),
        ("'abc'::information_schema.sql_identifier", json!("abc")),
        (
            "ROW('S', 2, '{}')::address",
            json!({"street": "S", "zip": 2, "tags": []}),
        ),
    ]
}
