//! The stand-in's key material in its state folder: a test CA, the server's leaf certificate
//! signed by it, and the provider signing key in Apple's `.p8` format.
//!
//! Files (all written atomically: a temporary file in the same folder, then a rename, so a
//! reader such as the notifier never sees half a file):
//! - `ca.pem`: the test CA's certificate, the only root clients should trust;
//! - `ca-key.pem`: its key (PKCS#8, mode 0600);
//! - `leaf.pem`, `leaf-key.pem`: the TLS server certificate and key;
//! - `leaf-hostnames`: the names the leaf was issued for, one a line;
//! - `AuthKey_STANDIN.p8`: the provider key, a P-256 key in PKCS#8 PEM (mode 0600): exactly
//!   what Apple's developer portal hands out.
//!
//! Everything present is reused, so a restart keeps the trust of clients that read `ca.pem`
//! and the provider tokens they signed. The leaf is re-issued from the same CA when the host
//! names change (native stack vs. compose) or the CA had to be made anew.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca-key.pem";
pub const LEAF_CERT: &str = "leaf.pem";
pub const LEAF_KEY: &str = "leaf-key.pem";
pub const LEAF_HOSTNAMES: &str = "leaf-hostnames";
pub const PROVIDER_KEY: &str = "AuthKey_STANDIN.p8";

/// What the servers need from the state folder.
pub struct Material {
    /// The leaf certificate (DER), presented by the TLS listener.
    pub leaf_der: Vec<u8>,
    /// The leaf's private key (PKCS#8 DER).
    pub leaf_key_der: Vec<u8>,
    /// The provider key's public half (SPKI PEM), to verify provider tokens.
    pub provider_public_pem: String,
}

/// Load the folder's material, creating what is missing (see the module docs).
pub fn load_or_create(dir: &Path, hostnames: &[String]) -> anyhow::Result<Material> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;

    let provider = match read_key(&dir.join(PROVIDER_KEY))? {
        Some(key) => key,
        None => {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
            write_atomic(
                &dir.join(PROVIDER_KEY),
                key.serialize_pem().as_bytes(),
                0o600,
            )?;
            tracing::info!(file = %dir.join(PROVIDER_KEY).display(), "generated the provider key");
            key
        }
    };
    anyhow::ensure!(
        provider.algorithm() == &PKCS_ECDSA_P256_SHA256,
        "{}: not a P-256 key",
        dir.join(PROVIDER_KEY).display()
    );

    let existing_ca = match read_key(&dir.join(CA_KEY))? {
        Some(key) if dir.join(CA_CERT).is_file() => Some(key),
        _ => None,
    };
    let ca_is_new = existing_ca.is_none();
    let ca_key = match existing_ca {
        Some(key) => key,
        None => {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
            let cert = ca_params().self_signed(&key)?;
            // The key first: a crash in between leaves no `ca.pem` without its key.
            write_atomic(&dir.join(CA_KEY), key.serialize_pem().as_bytes(), 0o600)?;
            write_atomic(&dir.join(CA_CERT), cert.pem().as_bytes(), 0o644)?;
            tracing::info!(file = %dir.join(CA_CERT).display(), "generated the test CA");
            key
        }
    };

    let wanted = hostnames_file(hostnames);
    let leaf_current = !ca_is_new
        && fs::read_to_string(dir.join(LEAF_HOSTNAMES)).ok().as_deref() == Some(wanted.as_str())
        && dir.join(LEAF_CERT).is_file();
    let leaf_key = match (leaf_current, read_key(&dir.join(LEAF_KEY))?) {
        (true, Some(key)) => key,
        _ => {
            // Rebuilding the CA's parameters gives the same subject and key identifier as the
            // certificate in `ca.pem`, which is all a chain check compares.
            let issuer = Issuer::new(ca_params(), ca_key);
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
            let cert = leaf_params(hostnames)?.signed_by(&key, &issuer)?;
            write_atomic(&dir.join(LEAF_KEY), key.serialize_pem().as_bytes(), 0o600)?;
            write_atomic(&dir.join(LEAF_CERT), cert.pem().as_bytes(), 0o644)?;
            write_atomic(&dir.join(LEAF_HOSTNAMES), wanted.as_bytes(), 0o644)?;
            tracing::info!(hostnames = %hostnames.join(","), "issued the leaf certificate");
            key
        }
    };

    let leaf_pem = fs::read_to_string(dir.join(LEAF_CERT))
        .with_context(|| format!("reading {}", dir.join(LEAF_CERT).display()))?;
    let leaf_der = CertificateDer::from_pem_slice(leaf_pem.as_bytes())
        .with_context(|| format!("{}: no certificate", dir.join(LEAF_CERT).display()))?
        .to_vec();
    Ok(Material {
        leaf_der,
        leaf_key_der: leaf_key.serialize_der(),
        provider_public_pem: provider.public_key_pem(),
    })
}

/// The test CA: the same subject and key identifier method every time (see the leaf).
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name("apns-standin test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn leaf_params(hostnames: &[String]) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(hostnames.to_vec())
        .with_context(|| format!("--hostnames {}: not valid names", hostnames.join(",")))?;
    params.distinguished_name = name("apns-standin");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn hostnames_file(hostnames: &[String]) -> String {
    hostnames.iter().map(|h| format!("{h}\n")).collect()
}

fn read_key(path: &Path) -> anyhow::Result<Option<KeyPair>> {
    match fs::read_to_string(path) {
        Ok(pem) => KeyPair::from_pem(&pem)
            .map(Some)
            .with_context(|| format!("{}: not a PEM private key", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Write `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp: PathBuf = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` above is filtered by the umask; the files' modes are part of their contract.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("apns-standin-pki-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_restart_reuses_the_ca_and_key_and_a_new_hostname_only_reissues_the_leaf() {
        let dir = temp_dir();
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let first = load_or_create(&dir, &names).unwrap();
        let ca = fs::read(dir.join(CA_CERT)).unwrap();
        let p8 = fs::read_to_string(dir.join(PROVIDER_KEY)).unwrap();
        assert!(p8.starts_with("-----BEGIN PRIVATE KEY-----"), "{p8}");
        let mode = fs::metadata(dir.join(PROVIDER_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let again = load_or_create(&dir, &names).unwrap();
        assert_eq!(
            again.leaf_der, first.leaf_der,
            "same names: the leaf is kept"
        );
        assert_eq!(again.provider_public_pem, first.provider_public_pem);

        let other = vec!["apns-standin".to_string()];
        let reissued = load_or_create(&dir, &other).unwrap();
        assert_ne!(reissued.leaf_der, first.leaf_der);
        assert_eq!(fs::read(dir.join(CA_CERT)).unwrap(), ca, "the CA stays");
        assert_eq!(reissued.provider_public_pem, first.provider_public_pem);
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
