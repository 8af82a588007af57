//! Paths to the workspace's binaries, built on demand.
//!
//! Tests that need real processes (`pgmcp up`, the gateway over stdio) ask
//! for a binary here. It is built with the same profile as the running test
//! (`cargo build --bins` is a no-op when nothing changed; cargo's own lock
//! serialises concurrent builds).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();

/// Path of the workspace binary `name` (e.g. "pgmcp", "pgmcp-gateway").
pub fn bin(name: &str) -> Result<PathBuf> {
    let dir = BUILT
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)?;
    let path = dir.join(name);
    if !path.is_file() {
        bail!("{} was not built", path.display());
    }
    Ok(path)
}

fn build() -> Result<PathBuf> {
    // Test binaries live in target/<profile>/deps/.
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("cannot locate the target directory")?
        .to_path_buf();
    build_into(&profile_dir)?;
    Ok(profile_dir)
}

/// Builds the workspace's binaries into `profile_dir` (`target/<profile>/`),
/// with that profile: `cargo build --workspace --bins`, a no-op when they
/// are current. The end-to-end tests and the benchmark harness share it, and
/// so one set of build artifacts.
pub fn build_into(profile_dir: &Path) -> Result<()> {
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("cannot tell the build profile from the target directory")?;
    let target_dir = profile_dir
        .parent()
        .context("cannot locate the target directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let cargo_profile = if profile == "debug" { "dev" } else { profile };
    let mut command = Command::new(cargo);
    // Cargo sets these for the program it runs; build scripts that watch
    // them (ring's do) would otherwise see a changed environment and rebuild
    // everything that depends on them.
    for (key, _) in std::env::vars_os() {
        if let Some(key) = key.to_str()
            && is_run_only_cargo_var(key)
        {
            command.env_remove(key);
        }
    }
    let status = command
        .args([
            "build",
            "--quiet",
            "--workspace",
            "--bins",
            "--profile",
            cargo_profile,
            "--manifest-path",
            manifest,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --workspace --bins failed ({status})");
    }
    Ok(())
}

/// Variables cargo sets for the program it runs (not for cargo itself).
fn is_run_only_cargo_var(key: &str) -> bool {
    [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
    ]
    .iter()
    .any(|prefix| key.starts_with(prefix))
        || matches!(key, "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR")
}
