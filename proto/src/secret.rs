//! Secrets from flags, the environment or files, kept out of logs. Both
//! sides read them the same way: the worker token, which gateways send and
//! workers check, is one of them.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

/// A secret value. Its `Debug` form is `Secret(***)`, so it can sit in
/// configuration structs that are logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Secret(value.into())
    }

    /// The secret itself: only for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Reads a secret from `path`; one trailing newline is dropped. The error
/// names the file and `what` it should hold, never its content.
pub fn read_file(path: &Path, what: &str) -> Result<Secret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} from {}", path.display()))?;
    let value = text
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&text);
    if value.trim().is_empty() {
        bail!("{} is empty; it should hold {what}", path.display());
    }
    Ok(Secret::new(value))
}

/// A secret given directly (`value`) or in a file (`file`), not both.
pub fn value_or_file(
    value: Option<&str>,
    file: Option<&Path>,
    flag: &str,
    what: &str,
) -> Result<Option<Secret>> {
    match (value, file) {
        (Some(_), Some(_)) => bail!("give either --{flag} or --{flag}-file, not both"),
        (Some(v), None) if v.trim().is_empty() => bail!("--{flag} is empty"),
        (Some(v), None) => Ok(Some(Secret::new(v))),
        (None, Some(f)) => read_file(f, what).map(Some),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }

    #[test]
    fn file_errors_do_not_show_content() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("pgmcp-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let f = dir.join("s");
        std::fs::write(&f, "tok-123\n")?;
        assert_eq!(read_file(&f, "a token")?.expose(), "tok-123");
        std::fs::write(&f, "\n")?;
        let err = format!(
            "{:#}",
            read_file(&f, "a token")
                .err()
                .unwrap_or_else(|| anyhow::anyhow!(""))
        );
        assert!(err.contains("is empty"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
