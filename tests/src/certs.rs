//! A throwaway PKI for TLS tests, generated at test time: a CA, a worker
//! (server) certificate for `localhost` and 127.0.0.1, and a gateway
//! (client) certificate, written as PEM files into a temporary directory.

use std::path::PathBuf;

use anyhow::Result;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PEM files of one test PKI; deleted on drop.
pub struct TestPki {
    dir: tempfile::TempDir,
}

impl TestPki {
    /// Generates a CA with a server and a client certificate.
    pub fn generate() -> Result<Self> {
        Self::generate_named("pgmcp test CA")
    }

    /// As [`TestPki::generate`], with the CA named `ca_name` (two PKIs with
    /// different names do not trust each other).
    pub fn generate_named(ca_name: &str) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("pgmcp-pki-").tempdir()?;
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, ca_name);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key)?;
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem())?;
        let issuer = Issuer::new(ca, ca_key);

        for (name, sans, usage) in [
            (
                "worker",
                vec!["localhost".to_string(), "127.0.0.1".to_string()],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            (
                "gateway",
                vec!["pgmcp-gateway".to_string()],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
        ] {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(sans)?;
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![usage];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            let cert = params.signed_by(&key, &issuer)?;
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem())?;
            std::fs::write(
                dir.path().join(format!("{name}-key.pem")),
                key.serialize_pem(),
            )?;
        }
        Ok(TestPki { dir })
    }

    /// Path of a file: `ca.pem`, `worker.pem`, `worker-key.pem`,
    /// `gateway.pem`, `gateway-key.pem`.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// [`TestPki::path`] as a string, for command-line flags.
    pub fn arg(&self, file: &str) -> String {
        self.path(file).display().to_string()
    }
}
