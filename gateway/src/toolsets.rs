//! Toolsets: named groups of tools an operator enables with `--toolsets`.
//!
//! `core` (the default) holds the everyday tools; `dba` holds maintenance
//! and diagnostics tools that most clients never need, so they stay out of
//! the default tool list (every listed tool costs the model context).
//! Membership is the list below: a tool not named in it is `core`.

use anyhow::{Result, bail};

/// Tools of the `dba` toolset.
pub const DBA_TOOLS: &[&str] = &[
    "database_health",
    "top_queries",
    "analyze_table",
    "vacuum_table",
    "invalidate_schema_cache",
];

/// A named group of tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolset {
    Core,
    Dba,
}

impl Toolset {
    /// The toolset `tool` belongs to.
    pub fn of(tool: &str) -> Toolset {
        if DBA_TOOLS.contains(&tool) {
            Toolset::Dba
        } else {
            Toolset::Core
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Toolset::Core => "core",
            Toolset::Dba => "dba",
        }
    }
}

/// The toolsets a gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Toolsets {
    core: bool,
    dba: bool,
}

impl Default for Toolsets {
    fn default() -> Self {
        Toolsets {
            core: true,
            dba: false,
        }
    }
}

impl Toolsets {
    /// Parses `--toolsets` values: `core`, `dba`, `all`, each possibly
    /// comma-separated.
    pub fn parse(values: &[String]) -> Result<Self> {
        let mut sets = Toolsets {
            core: false,
            dba: false,
        };
        for v in values.iter().flat_map(|v| v.split(',')) {
            match v.trim().to_ascii_lowercase().as_str() {
                "" => {}
                "core" => sets.core = true,
                "dba" => sets.dba = true,
                "all" => {
                    sets.core = true;
                    sets.dba = true;
                }
                other => bail!(
                    "unknown toolset `{other}` in --toolsets: use core, dba or all (comma-separated)"
                ),
            }
        }
        if !sets.core && !sets.dba {
            bail!("--toolsets enables no tools: use core, dba or all");
        }
        Ok(sets)
    }

    pub fn enables(&self, set: Toolset) -> bool {
        match set {
            Toolset::Core => self.core,
            Toolset::Dba => self.dba,
        }
    }

    /// Whether `tool` may be listed and called.
    pub fn serves(&self, tool: &str) -> bool {
        self.enables(Toolset::of(tool))
    }

    /// Names of the enabled toolsets, comma-separated.
    pub fn names(&self) -> String {
        [Toolset::Core, Toolset::Dba]
            .into_iter()
            .filter(|s| self.enables(*s))
            .map(Toolset::name)
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Toolsets> {
        Toolsets::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_sets() -> Result<()> {
        assert_eq!(parse(&["core"])?, Toolsets::default());
        let all = parse(&["all"])?;
        assert!(all.serves("vacuum_table") && all.serves("query"));
        assert_eq!(parse(&["core,dba"])?, all);
        let dba = parse(&["dba"])?;
        assert!(dba.serves("database_health") && !dba.serves("query"));
        assert!(parse(&["nope"]).is_err());
        assert!(parse(&[""]).is_err());
        Ok(())
    }

    #[test]
    fn membership() {
        assert_eq!(Toolset::of("top_queries"), Toolset::Dba);
        assert_eq!(Toolset::of("list_databases"), Toolset::Core);
        assert!(!Toolsets::default().serves("analyze_table"));
    }
}
