//! Certificates for the lab's PostgreSQL servers, made with openssl: a CA
//! and a server certificate it signs (the genuine database), or one
//! self-signed certificate (what an attacker can make for any name).
use std::path::{Path, PathBuf};

use crate::cmd::{command, run};

/// A server's certificate and key (PEM), and the CA that signed it.
#[derive(Debug, Clone)]
pub struct ServerCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA certificate a client pins to verify this server
    /// (`sslrootcert`); for a self-signed certificate, itself.
    pub ca: PathBuf,
}

/// P-256 keys: as good as RSA here, and made in milliseconds.
const KEY_ARGS: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// A CA `<dir>/ca.crt` and a certificate for `hostname` (as CN and DNS
/// subjectAltName) it signs, `<dir>/<prefix>.crt` and `.key`.
pub fn ca_signed(dir: &Path, prefix: &str, hostname: &str) -> ServerCert {
    let ca = dir.join("ca.crt");
    let ca_key = dir.join("ca.key");
    let csr = dir.join(format!("{prefix}.csr"));
    let ext = dir.join(format!("{prefix}.ext"));
    let cert = dir.join(format!("{prefix}.crt"));
    let key = dir.join(format!("{prefix}.key"));
    openssl(
        &["req", "-x509"],
        &KEY_ARGS,
        &ca_key,
        &[
            "-out",
            path(&ca),
            "-days",
            "2",
            "-subj",
            "/CN=pinwatch lab CA",
        ],
    );
    openssl(
        &["req"],
        &KEY_ARGS,
        &key,
        &["-out", path(&csr), "-subj", &format!("/CN={hostname}")],
    );
    std::fs::write(&ext, format!("subjectAltName=DNS:{hostname}\n"))
        .expect("write the extension file");
    run(&mut command(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            path(&csr),
            "-CA",
            path(&ca),
            "-CAkey",
            path(&ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            path(&ext),
            "-out",
            path(&cert),
        ],
    ));
    ServerCert { cert, key, ca }
}

/// A self-signed certificate for `hostname`, `<dir>/<prefix>.crt` and `.key`.
pub fn self_signed(dir: &Path, prefix: &str, hostname: &str) -> ServerCert {
    let cert = dir.join(format!("{prefix}.crt"));
    let key = dir.join(format!("{prefix}.key"));
    openssl(
        &["req", "-x509"],
        &KEY_ARGS,
        &key,
        &[
            "-out",
            path(&cert),
            "-days",
            "2",
            "-subj",
            &format!("/CN={hostname}"),
            "-addext",
            &format!("subjectAltName=DNS:{hostname}"),
        ],
    );
    ServerCert {
        ca: cert.clone(),
        cert,
        key,
    }
}

/// `openssl <verb> <key args> -nodes -keyout <key> <rest>`.
fn openssl(verb: &[&str], key_args: &[&str], key: &Path, rest: &[&str]) {
    let mut args: Vec<&str> = verb.to_vec();
    args.extend(key_args);
    args.extend(["-nodes", "-keyout", path(key)]);
    args.extend(rest);
    run(&mut command("openssl", &args));
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}
