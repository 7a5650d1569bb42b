//! A private PostgreSQL cluster, for tests that crash or restart the server or refuse
//! connections: the shared server serves the other tests in parallel and is never restarted.
//! It is created with `initdb` in a temporary directory, listens on 127.0.0.1 on a free port,
//! and is stopped and deleted when dropped, even when the test panics.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chronik::Config;

use super::{quick, unique_schema};

/// A private PostgreSQL cluster, for tests that crash the server or refuse connections (the
/// shared server serves the other tests in parallel). Stopped and deleted on drop, even when the
/// test panics.
pub struct PrivateCluster {
    paths: ClusterPaths,
}

#[derive(Clone)]
struct ClusterPaths {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl PrivateCluster {
    /// Creates (initdb) and starts a cluster on a free port, trusting local connections.
    pub async fn start() -> PrivateCluster {
        tokio::task::spawn_blocking(|| {
            let bin = server_binaries();
            let dir = std::env::temp_dir().join(format!("chronik-pg-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir(&dir).expect("create the cluster directory");
            // From here on, drop removes the directory whatever fails.
            let cluster = PrivateCluster { paths: ClusterPaths { bin, dir, port: free_port() } };
            if running_as_root() {
                // initdb refuses to run as root: the server runs as `postgres`, in a directory
                // it owns.
                let out = Command::new("chown").arg("postgres:postgres").arg(&cluster.paths.dir).output();
                let out = out.expect("run chown");
                assert!(out.status.success(), "chown postgres: failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let data = cluster.paths.data();
            cluster.paths.run("initdb", &["-D", &data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "-N"]);
            cluster.paths.pg_ctl_start();
            cluster
        })
        .await
        .expect("private cluster starts")
    }

    /// Kills the server without a shutdown (`pg_ctl stop -m immediate`: every session dies,
    /// crash recovery at the next start), then starts it again on the same data and port.
    pub async fn crash_and_restart(&self) {
        let paths = self.paths.clone();
        tokio::task::spawn_blocking(move || {
            paths.pg_ctl_stop_immediately().expect("the server stops");
            paths.pg_ctl_start();
        })
        .await
        .expect("private cluster restarts");
    }

    /// Kills the server without a shutdown (every session dies); it stays down until
    /// [`start_again`](Self::start_again).
    pub async fn stop_immediately(&self) {
        let paths = self.paths.clone();
        tokio::task::spawn_blocking(move || paths.pg_ctl_stop_immediately().expect("the server stops"))
            .await
            .expect("private cluster stops");
    }

    /// Starts the server again on the same data and port (crash recovery first).
    pub async fn start_again(&self) {
        let paths = self.paths.clone();
        tokio::task::spawn_blocking(move || paths.pg_ctl_start()).await.expect("private cluster starts again");
    }

    /// Makes every commit of sessions opened from now on wait for a synchronous standby that
    /// does not exist: such a transaction is committed in the server's own WAL (it survives a
    /// restart) but its client never hears so. (Sessions already open may run one more
    /// statement under the old setting, so open the store's connections afterwards.) The
    /// setting lasts until [`forget_settings`](Self::forget_settings).
    pub async fn hold_commit_replies(&self) {
        let mut admin = self.admin().await;
        for statement in ["ALTER SYSTEM SET synchronous_standby_names = 'nobody'", "SELECT pg_reload_conf()"] {
            sqlx::query(statement).execute(&mut admin).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        // The postmaster reloads on its own time: wait until new sessions have the setting.
        for _ in 0..100 {
            let setting: String =
                sqlx::query_scalar("SHOW synchronous_standby_names").fetch_one(&mut self.admin().await).await.unwrap();
            if setting == "nobody" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the server did not take synchronous_standby_names");
    }

    /// Removes every `ALTER SYSTEM` setting, while the server is down (it reads them at start).
    pub fn forget_settings(&self) {
        let auto = self.paths.data_path().join("postgresql.auto.conf");
        std::fs::write(&auto, "# settings removed by the test\n").expect("rewrite postgresql.auto.conf");
    }

    /// The store's database is `postgres`.
    pub fn config(&self, prefix: &str) -> Config {
        quick(
            Config::default()
                .database_url(format!("postgres://postgres@127.0.0.1:{}/postgres", self.paths.port))
                .schema(unique_schema(prefix))
                .pool_size(4)
                .connect_timeout(Duration::from_secs(2)),
        )
    }

    /// A connection to `template1`, outside the store's database.
    pub async fn admin(&self) -> sqlx::PgConnection {
        use sqlx::Connection;
        let url = format!("postgres://postgres@127.0.0.1:{}/template1", self.paths.port);
        sqlx::PgConnection::connect(&url).await.expect("connect to the private cluster")
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if self.paths.data_path().join("postmaster.pid").exists()
            && let Err(e) = self.paths.pg_ctl_stop_immediately()
        {
            eprintln!("could not stop the private cluster in {}: {e}", self.paths.dir.display());
        }
        if let Err(e) = std::fs::remove_dir_all(&self.paths.dir) {
            eprintln!("could not remove {}: {e}", self.paths.dir.display());
        }
    }
}

impl ClusterPaths {
    fn data_path(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn data(&self) -> String {
        self.data_path().display().to_string()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        // The server's user may not be allowed into the test's working directory.
        command.current_dir(&self.dir);
        command
    }

    fn output(&self, program: &str, args: &[&str]) -> std::io::Result<std::process::Output> {
        self.command(program).args(args).output()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self.output(program, args).unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed ({}):\n{}{}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default(),
        );
    }

    fn pg_ctl_start(&self) {
        let options = format!("-k {} -c listen_addresses=127.0.0.1 -p {} -c fsync=off", self.dir.display(), self.port);
        let log = self.dir.join("log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-l", &log, "-w", "-t", "30", "-o", &options, "start"]);
    }

    fn pg_ctl_stop_immediately(&self) -> Result<(), String> {
        let out = self.output("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
        match out {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb` and `pg_ctl`.
fn server_binaries() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server binaries (initdb, pg_ctl) under {}/*/bin: this test runs a private \
             cluster and cannot run without them (install the postgresql server package)",
            root.display()
        ),
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}
