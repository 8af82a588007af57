//! SQL names as text: reading a possibly qualified, possibly quoted name
//! (`public.users`, `"Sales"."Order Items"`), quoting a name for display,
//! and matching names against a LIKE-style pattern.
//!
//! Nothing here builds SQL: names are only compared with the cached catalog.

/// Splits `text` into the parts of a SQL name, following PostgreSQL's rules:
/// parts separated by `.`, optional whitespace around each part, quoted parts
/// (`"…"`, with `""` for a quote) kept exactly, unquoted parts folded to
/// lower case. `None` when `text` is not a valid name (`users; DROP TABLE x`).
pub fn parse_qualified(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut part = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next()? {
                    '"' if chars.next_if_eq(&'"').is_some() => part.push('"'),
                    '"' => break,
                    c => part.push(c),
                }
            }
            if part.is_empty() {
                return None;
            }
        } else {
            let first = chars.next_if(|c| c.is_alphabetic() || *c == '_')?;
            part.push(first.to_ascii_lowercase());
            while let Some(c) = chars.next_if(|c| c.is_alphanumeric() || *c == '_' || *c == '$') {
                part.push(c.to_ascii_lowercase());
            }
        }
        parts.push(part);
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.next() {
            None => return Some(parts),
            Some('.') => continue,
            Some(_) => return None,
        }
    }
}

pub use pgmcp_proto::sql_names::{qualified, quote_ident};

/// A case-insensitive name filter. `%` matches any run of characters and
/// `_` any one character, as in SQL LIKE; `\` makes the next character
/// literal. A pattern without wildcards matches names containing it.
#[derive(Debug, Clone)]
pub struct NamePattern {
    tokens: Vec<Token>,
    wildcards: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Any,
    One,
    Char(char),
}

impl NamePattern {
    pub fn new(pattern: &str) -> Self {
        let mut tokens = Vec::new();
        let mut wildcards = false;
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    wildcards = true;
                    if tokens.last() != Some(&Token::Any) {
                        tokens.push(Token::Any);
                    }
                }
                '_' => {
                    wildcards = true;
                    tokens.push(Token::One);
                }
                '\\' => tokens.push(Token::Char(fold(chars.next().unwrap_or('\\')))),
                c => tokens.push(Token::Char(fold(c))),
            }
        }
        if !wildcards {
            tokens.insert(0, Token::Any);
            tokens.push(Token::Any);
        }
        NamePattern { tokens, wildcards }
    }

    /// True when the pattern used `%` or `_`.
    pub fn has_wildcards(&self) -> bool {
        self.wildcards
    }

    pub fn matches(&self, name: &str) -> bool {
        let text: Vec<char> = name.chars().map(fold).collect();
        let p = &self.tokens;
        // Greedy matching with one backtrack point per `%` (linear for
        // typical patterns, quadratic at worst; names are short).
        let (mut ti, mut pi) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while ti < text.len() {
            match p.get(pi) {
                Some(Token::Any) => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(Token::One) => {
                    ti += 1;
                    pi += 1;
                }
                Some(Token::Char(c)) if *c == text[ti] => {
                    ti += 1;
                    pi += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|t| *t == Token::Any)
    }
}

fn fold(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_like_postgres() {
        assert_eq!(parse_qualified("users"), Some(vec!["users".to_string()]));
        assert_eq!(
            parse_qualified("Public.Users"),
            Some(vec!["public".to_string(), "users".to_string()])
        );
        assert_eq!(
            parse_qualified(r#""Sales"."Order Items""#),
            Some(vec!["Sales".to_string(), "Order Items".to_string()])
        );
        assert_eq!(
            parse_qualified(r#" "a""b" . c "#),
            Some(vec!["a\"b".to_string(), "c".to_string()])
        );
        assert_eq!(parse_qualified("users; DROP TABLE x"), None);
        assert_eq!(parse_qualified("Order Items"), None);
        assert_eq!(parse_qualified(""), None);
        assert_eq!(parse_qualified("a."), None);
        assert_eq!(parse_qualified("\"\""), None);
        assert_eq!(parse_qualified("\"open"), None);
        assert_eq!(parse_qualified("1abc"), None);
    }

    #[test]
    fn quotes_when_needed() {
        assert_eq!(quote_ident("users"), "users");
        assert_eq!(quote_ident("Users"), "\"Users\"");
        assert_eq!(quote_ident("order items"), "\"order items\"");
        assert_eq!(quote_ident("order"), "\"order\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(qualified("Sales", "t1"), "\"Sales\".t1");
    }

    #[test]
    fn patterns() {
        let p = NamePattern::new("order");
        assert!(p.matches("orders") && p.matches("Order Items") && p.matches("reorder"));
        assert!(!p.matches("ord"));
        let p = NamePattern::new("order%");
        assert!(p.matches("orders") && !p.matches("reorder"));
        let p = NamePattern::new("%_items");
        assert!(p.matches("order_items") && !p.matches("items"));
        let p = NamePattern::new("a\\_b");
        assert!(p.matches("xa_by") && !p.matches("axb"));
        let p = NamePattern::new("%a%b%c%");
        assert!(p.matches("xxaxxbxxc") && !p.matches("cba"));
        assert!(NamePattern::new("").matches("anything"));
        assert!(NamePattern::new("%").matches(""));
    }
}
