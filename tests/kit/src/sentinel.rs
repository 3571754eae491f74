//! A Redis Sentinel group on loopback: one primary, one replica and three
//! `redis-sentinel`s, each on a free port in a temp dir, all killed on drop.
//! Sentinels decide fast here (`down-after-milliseconds` 1000) so a failover
//! test takes seconds.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{RedisServer, free_port, temp_dir};

/// The name the sentinels monitor the primary under.
pub const MASTER_NAME: &str = "gate";

pub struct SentinelGroup {
    pub primary: RedisServer,
    pub replica: RedisServer,
    sentinels: Vec<(Child, u16)>,
    _dir: tempfile::TempDir,
}

impl SentinelGroup {
    /// Start the group and wait until every sentinel knows the replica and the
    /// two other sentinels (without that, no failover can be agreed).
    pub fn start() -> SentinelGroup {
        // Both nodes persist as the docs advise: AOF, fsync every second.
        let primary = RedisServer::start_with(Some("everysec"), &[]);
        let port = primary.port().to_string();
        let replica =
            RedisServer::start_with(Some("everysec"), &["--replicaof", "127.0.0.1", &port]);
        let dir = temp_dir();
        let sentinels = (0..3)
            .map(|i| {
                let p = free_port();
                let conf = dir.path().join(format!("sentinel-{i}.conf"));
                let text = format!(
                    "port {p}\nbind 127.0.0.1\ndir {d}\nsentinel monitor {MASTER_NAME} 127.0.0.1 {port} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                     sentinel failover-timeout {MASTER_NAME} 3000\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n",
                    d = dir.path().display()
                );
                if let Err(e) = std::fs::write(&conf, text) {
                    panic!("write {}: {e}", conf.display());
                }
                (spawn_sentinel(&conf), p)
            })
            .collect();
        let group = SentinelGroup {
            primary,
            replica,
            sentinels,
            _dir: dir,
        };
        for (_, p) in &group.sentinels {
            wait_listening(*p);
        }
        group.wait_until_settled();
        group
    }

    /// `[127.0.0.1:P1, 127.0.0.1:P2, 127.0.0.1:P3]` for `store.redis.sentinels`.
    pub fn yaml_list(&self) -> String {
        let all: Vec<String> = self
            .sentinels
            .iter()
            .map(|(_, p)| format!("\"127.0.0.1:{p}\""))
            .collect();
        format!("[{}]", all.join(", "))
    }

    /// The port of the primary the first answering sentinel names now.
    pub fn named_primary_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|(_, p)| {
            let reply: Option<(String, String)> = query(*p, |c| {
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(MASTER_NAME)
                    .query(c)
            })?;
            reply.and_then(|(_, port)| port.parse().ok())
        })
    }

    /// Wait until the sentinels name the replica as primary; how long it took from `since`.
    pub fn wait_for_promotion(&self, since: Instant, limit: Duration) -> Duration {
        let want = self.replica.port();
        while since.elapsed() < limit {
            if self.named_primary_port() == Some(want) {
                return since.elapsed();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the sentinels did not promote the replica within {limit:?}");
    }

    /// Wait (≤ 20 s) until each sentinel sees the replica and two other sentinels,
    /// and the replica has synced.
    fn wait_until_settled(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let settled = |p: u16| {
            let count = |sub: &str| {
                query(p, |c| {
                    redis::cmd("SENTINEL")
                        .arg(sub)
                        .arg(MASTER_NAME)
                        .query::<Vec<redis::Value>>(c)
                })
                .map_or(0, |v| v.len())
            };
            count("replicas") >= 1 && count("sentinels") >= 2
        };
        while Instant::now() < deadline {
            if self.sentinels.iter().all(|(_, p)| settled(*p)) && self.replica_synced() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the sentinel group did not settle within 20 s");
    }

    fn replica_synced(&self) -> bool {
        query(self.replica.port(), |c| {
            redis::cmd("INFO").arg("replication").query::<String>(c)
        })
        .is_some_and(|info| info.contains("master_link_status:up"))
    }

    /// Block until the replica has every write the primary acknowledged so far.
    pub fn wait_replicated(&self) {
        let acked: Option<i64> = query(self.primary.port(), |c| {
            redis::cmd("WAIT").arg(1).arg(2000).query(c)
        });
        assert_eq!(acked, Some(1), "the replica did not acknowledge the writes");
    }
}

impl Drop for SentinelGroup {
    fn drop(&mut self) {
        for (c, _) in &mut self.sentinels {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_sentinel(conf: &std::path::Path) -> Child {
    match Command::new("redis-sentinel")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("redis-sentinel not found: apt-get install redis-sentinel")
        }
        Err(e) => panic!("cannot start redis-sentinel: {e}"),
    }
}

fn wait_listening(port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-sentinel did not listen on {addr} within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One command on 127.0.0.1:`port` over a fresh connection; `None` on any error.
fn query<T>(
    port: u16,
    f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
) -> Option<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let mut c = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    let _ = c.set_read_timeout(Some(Duration::from_secs(3)));
    f(&mut c).ok()
}
