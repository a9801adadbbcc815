//! The lab's certificates: a Microsoft-like chain (a root named like "DigiCert Global Root G2", an
//! intermediate named like "Microsoft Azure RSA TLS Issuing CA 03", leaves for Exchange, SharePoint
//! and Teams names) and the TLS-inspection CA ("Contoso Web Filter CA") the middlebox re-signs with.
//!
//! RSA key generation takes over a second, and many tests bring labs up, so the set is made once with
//! openssl into a cache directory named by a hash of the recipe below and reused until it ages.
//! The names copy Microsoft's, but every CA certificate says "o365probe lab" in its OU and every key
//! is the lab's own: nothing here chains to a real root, so nothing passes for the real thing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use crate::LabError;

/// Days the leaves are valid (the CA/Browser Forum maximum); the cache is renewed well before.
const LEAF_DAYS: u32 = 397;
const CA_DAYS: u32 = 3650;
const RENEW_AFTER: Duration = Duration::from_secs(180 * 24 * 3600);

const ROOT_SUBJECT: &str =
    "/C=US/O=DigiCert Inc/OU=www.digicert.com (o365probe lab)/CN=DigiCert Global Root G2";
const ISSUING_SUBJECT: &str =
    "/C=US/O=Microsoft Corporation/OU=o365probe lab/CN=Microsoft Azure RSA TLS Issuing CA 03";
const INSPECTION_SUBJECT: &str = "/C=US/O=Contoso Ltd/OU=o365probe lab/CN=Contoso Web Filter CA";

/// The leaves: file stem, subject, DNS names. nginx serves them in this order, the first as the
/// default.
pub(crate) const LEAVES: &[(&str, &str, &[&str])] = &[
    (
        "outlook",
        "/C=US/ST=Washington/L=Redmond/O=Microsoft Corporation/CN=outlook.com",
        &[
            "outlook.com",
            "*.outlook.com",
            "outlook.office365.com",
            "*.office365.com",
            "*.outlook.office365.com",
            "outlook.office.com",
            "*.office.com",
            "*.ms-acdc.office.com",
        ],
    ),
    (
        "sharepoint",
        "/C=US/ST=Washington/L=Redmond/O=Microsoft Corporation/CN=*.sharepoint.com",
        &["*.sharepoint.com", "sharepoint.com", "*.spo-msedge.net"],
    ),
    (
        "teams",
        "/C=US/ST=Washington/L=Redmond/O=Microsoft Corporation/CN=*.tr.teams.microsoft.com",
        &[
            "*.tr.teams.microsoft.com",
            "*.teams.microsoft.com",
            "teams.microsoft.com",
            "*.trafficmanager.net",
        ],
    ),
];

/// Paths of one generated set.
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// The cached set, made now if missing or old.
    pub fn cached() -> Result<Pki, LabError> {
        let dir = std::env::temp_dir().join(format!("o365lab-pki-{:016x}", fnv1a(&recipe())));
        let fresh = std::fs::metadata(dir.join("complete"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < RENEW_AFTER);
        if !fresh {
            generate_into(&dir)?;
        }
        Ok(Pki { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The Microsoft-like root, PEM: what an agent in the lab trusts.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root.pem")
    }

    /// The intermediate, PEM.
    pub fn issuing_ca(&self) -> PathBuf {
        self.dir.join("issuing-ca.pem")
    }

    /// The inspection CA's certificate, PEM.
    pub fn inspection_ca(&self) -> PathBuf {
        self.dir.join("inspection-ca.pem")
    }

    pub(crate) fn inspection_key(&self) -> PathBuf {
        self.dir.join("inspection-ca.key")
    }

    /// Leaf plus intermediate, as a server sends them.
    pub(crate) fn chain(&self, leaf: &str) -> PathBuf {
        self.dir.join(format!("{leaf}.chain.pem"))
    }

    pub(crate) fn key(&self, leaf: &str) -> PathBuf {
        self.dir.join(format!("{leaf}.key"))
    }
}

/// Everything that decides the certificates' content: change it and a new cache directory is used.
fn recipe() -> String {
    let mut r = format!("v1 rsa2048 sha256 {LEAF_DAYS} {CA_DAYS}\n{ROOT_SUBJECT}\n{ISSUING_SUBJECT}\n{INSPECTION_SUBJECT}\n");
    for (stem, subject, names) in LEAVES {
        r.push_str(&format!("{stem} {subject} {}\n", names.join(",")));
    }
    r
}

/// FNV-1a: a stable 64-bit hash (the cache directory's name, the relays' per-office seeds).
pub(crate) fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Generates into a scratch directory beside `dir`, then renames it into place, so parallel lab
/// starts never see half a set.
fn generate_into(dir: &Path) -> Result<(), LabError> {
    static SCRATCH: AtomicU32 = AtomicU32::new(0);
    let scratch = dir.with_extension(format!(
        "tmp-{}-{}",
        std::process::id(),
        SCRATCH.fetch_add(1, Ordering::Relaxed)
    ));
    let io = |what: String| move |source| LabError::Io { what, source };
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(io(format!("creating {}", scratch.display())))?;
    let result = generate(&scratch);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(e);
    }
    // A stale set moves aside first; if another process won the race, its set is as good as ours.
    if dir.exists() {
        let old = dir.with_extension(format!("old-{}", std::process::id()));
        if std::fs::rename(dir, &old).is_ok() {
            let _ = std::fs::remove_dir_all(&old);
        }
    }
    if std::fs::rename(&scratch, dir).is_err() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    if !dir.join("complete").exists() {
        return Err(LabError::Io {
            what: format!("installing certificates into {}", dir.display()),
            source: std::io::Error::other("the directory was not completed"),
        });
    }
    Ok(())
}

fn generate(dir: &Path) -> Result<(), LabError> {
    let openssl = |args: &[&str]| -> Result<(), LabError> {
        let mut cmd = Command::new("openssl");
        cmd.current_dir(dir).args(args);
        let shown = crate::netns::show(&cmd);
        let out = cmd.output().map_err(|source| LabError::Io {
            what: format!("running {shown} (is openssl installed?)"),
            source,
        })?;
        crate::netns::exited_ok(shown, out).map(drop)
    };
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|source| LabError::Io {
            what: format!("writing {name}"),
            source,
        })
    };
    let ca_days = CA_DAYS.to_string();
    let leaf_days = LEAF_DAYS.to_string();
    let self_signed = |stem: &str, subject: &str| {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-keyout",
            &format!("{stem}.key"),
            "-out",
            &format!("{stem}.pem"),
            "-days",
            &ca_days,
            "-subj",
            subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ])
    };
    self_signed("root", ROOT_SUBJECT)?;
    self_signed("inspection-ca", INSPECTION_SUBJECT)?;

    let mut serial = 0x1a2b_3c00u64;
    let mut issue = |stem: &str, subject: &str, ca: &str, days: &str, ext: &str| {
        serial += 1;
        write(&format!("{stem}.ext"), ext)?;
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{stem}.key"),
            "-out",
            &format!("{stem}.csr"),
            "-subj",
            subject,
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-sha256",
            "-in",
            &format!("{stem}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            &format!("0x{serial:x}"),
            "-days",
            days,
            "-extfile",
            &format!("{stem}.ext"),
            "-out",
            &format!("{stem}.pem"),
        ])
    };
    issue(
        "issuing-ca",
        ISSUING_SUBJECT,
        "root",
        &ca_days,
        "basicConstraints=critical,CA:TRUE,pathlen:0\n\
         keyUsage=critical,keyCertSign,cRLSign,digitalSignature\n\
         extendedKeyUsage=serverAuth,clientAuth\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )?;
    let issuing =
        std::fs::read_to_string(dir.join("issuing-ca.pem")).map_err(|source| LabError::Io {
            what: "reading issuing-ca.pem".into(),
            source,
        })?;
    for (stem, subject, names) in LEAVES {
        let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        issue(
            stem,
            subject,
            "issuing-ca",
            &leaf_days,
            &format!(
                "basicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage=serverAuth,clientAuth\n\
                 subjectAltName={}\n\
                 subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
                san.join(",")
            ),
        )?;
        let leaf = std::fs::read_to_string(dir.join(format!("{stem}.pem"))).map_err(|source| {
            LabError::Io {
                what: format!("reading {stem}.pem"),
                source,
            }
        })?;
        write(&format!("{stem}.chain.pem"), &(leaf + &issuing))?;
    }
    // Keys are fake and squid's helpers run as an unprivileged user: everything is world-readable.
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o644));
    }
    write("recipe.txt", &recipe())?;
    write("complete", "")
}
