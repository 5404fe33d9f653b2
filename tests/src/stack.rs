//! The real stack under attack: a Flask application using psycopg2 in the
//! client namespace, the genuine PostgreSQL and an attacker's PostgreSQL in
//! the dns namespace (both on 26257, TLS on), dnsmasq answering the database
//! hostname with the genuine address or a forged one, and pinwatch watching.
use std::net::{IpAddr, Ipv4Addr};

use crate::{
    daemon::Database,
    dnsmasq::DnsRecords,
    flask_app::{AppSettings, FlaskApp},
    lab::{CLIENT_V4, DNS_V4},
    postgres::{PG_PORT, Postgres},
    resolv::ResolvConf,
    scenario::Fixture,
    tls,
};

pub const STACK_DB: &str = "orders";
pub const STACK_HOST: &str = "db.lab.test";
/// Where the genuine database listens; the only address pinned for it.
pub const GENUINE_DB: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// Where the attacker's database listens; what a poisoned answer says.
pub const ATTACKER_DB: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 66);
pub const GENUINE_ROW: &str = "order 1001: 3 widgets";
pub const ATTACKER_ROW: &str = "order 1001: sent to the attacker";

/// What the resolver answers for [`STACK_HOST`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbAnswer {
    Genuine,
    /// [`ATTACKER_DB`]: the resolver's cache is poisoned.
    Poisoned,
}

/// Fields drop in order: the app, the databases, the resolv.conf, then the
/// daemon, dnsmasq and the namespaces, and last the certificates.
pub struct Stack {
    pub app: FlaskApp,
    pub genuine: Postgres,
    pub attacker: Postgres,
    _resolv: ResolvConf,
    pub fx: Fixture,
    _certs: tempfile::TempDir,
}

impl Stack {
    /// Everything started and ready; the application connects with
    /// `sslmode` and pins the genuine CA (`sslrootcert`).
    pub fn start(answer: DbAnswer, sslmode: &str) -> Stack {
        Stack::start_with_mode(answer, sslmode, "monitor")
    }

    /// [`Stack::start`] with the database pinned in `mode` ("monitor" or
    /// "block").
    pub fn start_with_mode(answer: DbAnswer, sslmode: &str, mode: &str) -> Stack {
        crate::require_root();
        let certs = tempfile::tempdir().expect("temp dir");
        let genuine_cert = tls::ca_signed(certs.path(), "genuine", STACK_HOST);
        // The attacker can make a certificate for any name, but cannot have
        // the genuine CA sign it.
        let attacker_cert = tls::self_signed(certs.path(), "attacker", STACK_HOST);

        let resolved = match answer {
            DbAnswer::Genuine => GENUINE_DB,
            DbAnswer::Poisoned => ATTACKER_DB,
        };
        let fx = Fixture::start(
            DnsRecords::new().host(STACK_HOST, resolved),
            vec![
                Database::new(
                    STACK_DB,
                    &[STACK_HOST],
                    &[PG_PORT],
                    &[&format!("{GENUINE_DB}/32")],
                )
                .with_mode(mode),
            ],
        );
        for ip in [GENUINE_DB, ATTACKER_DB] {
            fx.lab.add_peer_address(IpAddr::V4(ip));
        }
        let genuine = Postgres::start(&fx.lab.dns, GENUINE_DB.into(), &genuine_cert, GENUINE_ROW);
        let attacker = Postgres::start(
            &fx.lab.dns,
            ATTACKER_DB.into(),
            &attacker_cert,
            ATTACKER_ROW,
        );
        let resolv = ResolvConf::set(&fx.lab.client, DNS_V4);
        let app = FlaskApp::start(
            &fx.lab.client,
            CLIENT_V4.into(),
            &AppSettings {
                db_host: STACK_HOST.to_owned(),
                sslmode: sslmode.to_owned(),
                sslrootcert: Some(genuine_cert.ca.display().to_string()),
            },
        );
        Stack {
            app,
            genuine,
            attacker,
            _resolv: resolv,
            fx,
            _certs: certs,
        }
    }
}
