//! A throwaway PostgreSQL server for tests: its own data dir in a temp dir, on a free loopback
//! port, trust authentication, fsync off. Started with the server binaries of Debian's
//! `postgresql-15` (`/usr/lib/postgresql/15/bin`, or `FNBOX_PG_BIN`).
//!
//! PostgreSQL refuses to run as root, so under root (CI) every server command runs as `nobody`
//! through `runuser`, and the data dir belongs to `nobody`.
//!
//! `initdb` is the slow part (about 2 s), so it runs once per machine into a template under the
//! system temp dir; each server starts from a copy of it (a tenth of a second).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where the PostgreSQL server binaries are unless `FNBOX_PG_BIN` says otherwise.
const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The unprivileged user servers run as when the tests run as root.
const SERVER_USER: &str = "nobody";

/// A PostgreSQL server owned by a test. Dropping it stops the server (by its pid) and removes
/// its data.
pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
}

impl Postgres {
    /// Starts a fresh server, panicking with what went wrong if it cannot (a test harness:
    /// there is nothing better to do than fail the test clearly).
    pub fn start() -> Postgres {
        match Self::try_start() {
            Ok(pg) => pg,
            Err(e) => panic!("cannot start a test PostgreSQL: {e}"),
        }
    }

    /// [`Postgres::start`], with the failure as a value.
    pub fn try_start() -> Result<Postgres, String> {
        let template = template()?;
        let dir = tempfile::Builder::new().prefix("fnbox-pg-").tempdir().map_err(|e| format!("temp dir: {e}"))?;
        give_to_server_user(dir.path())?;
        let status = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(dir.path().join("data"))
            .status()
            .map_err(|e| format!("cp: {e}"))?;
        if !status.success() {
            return Err(format!("copying {} failed ({status})", template.display()));
        }
        let pg = Postgres { dir, port: free_port()? };
        pg.start_again()?;
        Ok(pg)
    }

    /// A connection URL for the `postgres` database as the `postgres` superuser.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the server again on the same data dir and port (after [`Postgres::stop`]).
    pub fn start_again(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let out = server_command("pg_ctl")?
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(options)
            .args(["-w", "-t", "30", "start"])
            .current_dir(self.dir.path())
            .output()
            .map_err(|e| format!("pg_ctl start: {e}"))?;
        if !out.status.success() {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "pg_ctl start failed ({}): {}{}\nserver log:\n{tail}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// Stops the server (fast shutdown: open connections are cut, as when a server goes down).
    pub fn stop(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "INT");
            self.wait_stopped(Duration::from_secs(20));
        }
    }

    /// Stops and starts the server on the same data dir and port.
    pub fn restart(&self) -> Result<(), String> {
        self.stop();
        self.start_again()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The postmaster's pid, from the first line of `postmaster.pid` (absent when stopped).
    fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    fn wait_stopped(&self, limit: Duration) {
        let t0 = Instant::now();
        while self.data().join("postmaster.pid").exists() && t0.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // By pid, never by name: other servers on this machine are not ours.
        if let Some(pid) = self.pid() {
            signal(pid, "QUIT");
            self.wait_stopped(Duration::from_secs(10));
        }
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).stderr(Stdio::null()).status();
}

fn bin_dir() -> PathBuf {
    std::env::var_os("FNBOX_PG_BIN").map_or_else(|| PathBuf::from(DEFAULT_BIN), PathBuf::from)
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command running one of the server binaries, as [`SERVER_USER`] when we are root.
fn server_command(program: &str) -> Result<Command, String> {
    let path = bin_dir().join(program);
    if !path.exists() {
        return Err(format!("{} not found (install postgresql-15, or set FNBOX_PG_BIN)", path.display()));
    }
    Ok(if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", SERVER_USER, "--"]).arg(path);
        c
    } else {
        Command::new(path)
    })
}

fn give_to_server_user(path: &Path) -> Result<(), String> {
    if !running_as_root() {
        return Ok(());
    }
    let status = Command::new("chown").arg(SERVER_USER).arg(path).status().map_err(|e| format!("chown: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("chown {SERVER_USER} {} failed ({status})", path.display()))
    }
}

/// A port nothing listens on now (the server binds it a moment later; a clash is unlikely).
fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// The initdb'd data dir every server is copied from, made once per machine (and user).
fn template() -> Result<PathBuf, String> {
    let root = std::env::temp_dir().join("fnbox-testkit");
    let user = if running_as_root() { SERVER_USER.to_owned() } else { std::env::var("USER").unwrap_or_else(|_| "user".into()) };
    let template = root.join(format!("pg15-template-{user}"));
    if template.join("PG_VERSION").exists() {
        return Ok(template);
    }
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    // initdb into a private dir, then rename into place: several test processes may race here.
    let work = tempfile::Builder::new().prefix("initdb-").tempdir_in(&root).map_err(|e| format!("temp dir: {e}"))?;
    give_to_server_user(work.path())?;
    let data = work.path().join("data");
    let out = server_command("initdb")?
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
        .current_dir(work.path())
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!("initdb failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    match std::fs::rename(&data, &template) {
        Ok(()) => Ok(template),
        Err(_) if template.join("PG_VERSION").exists() => Ok(template),
        Err(e) => Err(format!("{}: {e}", template.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    #[test]
    fn starts_stops_and_starts_again_on_the_same_port() {
        let t0 = Instant::now();
        let pg = Postgres::start();
        println!("started in {:?} at {}", t0.elapsed(), pg.url());
        assert!(TcpStream::connect(("127.0.0.1", pg.port())).is_ok());
        pg.stop();
        assert!(TcpStream::connect(("127.0.0.1", pg.port())).is_err());
        assert!(pg.pid().is_none());
        pg.start_again().expect("start again");
        assert!(TcpStream::connect(("127.0.0.1", pg.port())).is_ok());
        let port = pg.port();
        drop(pg);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "stopped on drop");
    }
}
