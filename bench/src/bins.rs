//! The `pgmcp-worker` and `pgmcp-gateway` executables under test.
//!
//! They come from the same cargo target directory and profile as this
//! harness (`target/release/` when run with `cargo run --release`), built on
//! demand with `cargo build --workspace --bins`: a no-op when they are up to
//! date, and the same command the end-to-end tests use, so both share one set
//! of build artifacts. `--bin-dir` skips the build and takes them from a
//! directory instead.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub const WORKER: &str = "pgmcp-worker";
pub const GATEWAY: &str = "pgmcp-gateway";

/// Where the binaries are, and which build profile they come from.
pub struct Bins {
    pub dir: PathBuf,
    pub profile: String,
}

impl Bins {
    pub fn worker(&self) -> PathBuf {
        self.dir.join(WORKER)
    }

    pub fn gateway(&self) -> PathBuf {
        self.dir.join(GATEWAY)
    }
}

/// The binaries in `dir` when given, else freshly built beside this executable.
pub fn locate(dir: Option<&Path>) -> Result<Bins> {
    let bins = match dir {
        Some(dir) => Bins {
            dir: dir.to_path_buf(),
            profile: "given".into(),
        },
        None => build()?,
    };
    for path in [bins.worker(), bins.gateway()] {
        if !path.is_file() {
            bail!("{} does not exist", path.display());
        }
    }
    Ok(bins)
}

/// `target/<profile>/`, the directory holding this executable.
pub fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the pgmcp-bench executable")?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("the pgmcp-bench executable has no parent directory")
}

fn build() -> Result<Bins> {
    let dir = profile_dir()?;
    let profile = dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("cannot tell the build profile from the executable's directory")?
        .to_string();
    eprintln!("pgmcp-bench: building the worker and gateway ({profile} profile)");
    pgmcp_tests::bins::build_into(&dir)?;
    Ok(Bins { dir, profile })
}
