//! `db.operation.name`, `db.collection.name` and so `db.query.summary`
//! of a statement, for the DB span's name: low-cardinality, and made of
//! keywords and identifiers only (never literals), so safe to export.

/// `db.operation.name` and, when there is one plain table name,
/// `db.collection.name` of `sql`: the first keyword (the main statement's
/// after a `WITH`), and the table after `FROM`/`INTO`/`UPDATE`/`TABLE`.
/// Only keywords and identifiers are kept — never literals — so the result
/// is low-cardinality and safe to export.
pub fn summarize(sql: &str) -> (String, Option<String>) {
    let tokens = tokens(sql);
    let mut depth = 0i32;
    let mut operation: Option<String> = None;
    let mut collection: Option<String> = None;
    let mut want_table = false;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Open => depth += 1,
            Token::Close => depth -= 1,
            Token::Other => want_table = false,
            Token::Word(w) if depth == 0 => {
                let upper = w.to_ascii_uppercase();
                if want_table {
                    want_table = false;
                    if collection.is_none()
                        && !matches!(tokens.get(i + 1), Some(Token::Open))
                        && !is_keyword(&upper)
                    {
                        collection = Some(w.clone());
                    }
                } else {
                    match operation.as_deref() {
                        None => operation = Some(upper.clone()),
                        Some("WITH") if is_statement(&upper) => operation = Some(upper.clone()),
                        _ => {}
                    }
                    want_table = operation.as_deref() != Some("WITH")
                        && matches!(upper.as_str(), "FROM" | "INTO" | "UPDATE" | "TABLE");
                }
            }
            Token::Word(_) => {}
        }
        i += 1;
    }
    (operation.unwrap_or_default(), collection)
}

fn is_statement(word: &str) -> bool {
    matches!(
        word,
        "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "VALUES" | "TABLE"
    )
}

fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "SELECT" | "LATERAL" | "ONLY" | "ROWS" | "FROM" | "WHERE" | "VALUES"
    )
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Open,
    Close,
    Other,
}

/// A rough lexer: words (identifiers, possibly qualified and quoted),
/// parentheses, and everything else as `Other`; comments and literals are
/// skipped whole.
fn tokens(sql: &str) -> Vec<Token> {
    const MAX_WORD: usize = 63;
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() && out.len() < 4096 {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut nesting = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    nesting += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    nesting -= 1;
                    i += 2;
                    if nesting == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '\'' {
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            out.push(Token::Other);
        } else if c == '$' && next.is_some_and(|n| n == '$' || n.is_alphabetic() || n == '_') {
            // Dollar quoting: $tag$ … $tag$.
            let start = i;
            let mut j = i + 1;
            while j < chars.len()
                && chars[j] != '$'
                && (chars[j].is_alphanumeric() || chars[j] == '_')
            {
                j += 1;
            }
            if chars.get(j) == Some(&'$') {
                let tag: String = chars[start..=j].iter().collect();
                let rest: String = chars[j + 1..].iter().collect();
                match rest.find(&tag) {
                    Some(end) => i = j + 1 + rest[..end].chars().count() + tag.chars().count(),
                    None => i = chars.len(),
                }
            } else {
                i = j;
            }
            out.push(Token::Other);
        } else if c == '(' {
            out.push(Token::Open);
            i += 1;
        } else if c == ')' {
            out.push(Token::Close);
            i += 1;
        } else if c.is_alphabetic() || c == '_' || c == '"' {
            let mut word = String::new();
            loop {
                if chars.get(i) == Some(&'"') {
                    word.push('"');
                    i += 1;
                    while i < chars.len() {
                        if chars[i] == '"' {
                            if chars.get(i + 1) == Some(&'"') {
                                word.push_str("\"\"");
                                i += 2;
                                continue;
                            }
                            break;
                        }
                        word.push(chars[i]);
                        i += 1;
                    }
                    word.push('"');
                    i += 1;
                } else {
                    while i < chars.len()
                        && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
                    {
                        word.push(chars[i]);
                        i += 1;
                    }
                }
                if chars.get(i) == Some(&'.')
                    && chars
                        .get(i + 1)
                        .is_some_and(|n| n.is_alphabetic() || *n == '_' || *n == '"')
                {
                    word.push('.');
                    i += 1;
                    continue;
                }
                break;
            }
            if word.chars().count() > MAX_WORD {
                word = word.chars().take(MAX_WORD).collect();
            }
            out.push(Token::Word(word));
        } else {
            out.push(Token::Other);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(sql: &str) -> String {
        match summarize(sql) {
            (op, Some(c)) => format!("{op} {c}"),
            (op, None) => op,
        }
    }

    #[test]
    fn summaries() {
        assert_eq!(s("SELECT * FROM orders WHERE id = $1"), "SELECT orders");
        assert_eq!(
            s("select a from public.orders o join x on true"),
            "SELECT public.orders"
        );
        assert_eq!(s("-- hi\n/* a /* nested */ b */ SELECT 1"), "SELECT");
        assert_eq!(s("WITH t AS (SELECT * FROM a) SELECT * FROM t"), "SELECT t");
        assert_eq!(s("SELECT * FROM (SELECT 1) s"), "SELECT");
        assert_eq!(s("select 'from x' as y"), "SELECT");
        assert_eq!(s("SELECT $$ FROM secret $$"), "SELECT");
        assert_eq!(
            s("insert into \"My Table\" values (1)"),
            "INSERT \"My Table\""
        );
        assert_eq!(s("UPDATE t SET a = 1"), "UPDATE t");
        assert_eq!(s("TABLE orders"), "TABLE orders");
        assert_eq!(s("SELECT pg_sleep(1)"), "SELECT");
        assert_eq!(s(""), "");
    }
}
