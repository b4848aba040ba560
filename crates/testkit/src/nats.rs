//! A throwaway NATS server with JetStream for tests: `nats-server` (Debian's package) on a free
//! loopback port, its store in a temp dir, stopped by its pid on drop.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nats {
    child: Option<Child>,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nats {
    /// Starts `nats-server -js` and waits until it accepts connections, panicking with the
    /// reason if it cannot (`make test` installs nats-server).
    pub fn start() -> Nats {
        let dir = tempfile::Builder::new().prefix("fnbox-nats-").tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let config = dir.path().join("nats.conf");
        // max_payload as fnbox needs it (outputs up to 6 MiB travel in replies).
        let text = format!(
            "listen: 127.0.0.1:{port}\nmax_payload: 8MB\njetstream {{ store_dir: \"{}\" }}\n",
            dir.path().join("js").display()
        );
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("nats config: {e}"));
        let log = std::fs::File::create(dir.path().join("nats.log")).unwrap_or_else(|e| panic!("nats log: {e}"));
        let err = log.try_clone().unwrap_or_else(|e| panic!("nats log: {e}"));
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run nats-server (apt-get install nats-server; `make test` does): {e}"));
        let nats = Nats { child: Some(child), port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on {port} within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
