//! Run metadata for the reports: when the run started and ended (UTC), the
//! harness's version, commit and flags, the host (name, kernel, CPUs, load
//! average before and after), and the server: its `/healthz` answer, the
//! labels of `tijori_build_info` from `/metrics` (its version), and — the
//! target being on loopback, so on this host — its process id and command
//! line (found through `/proc/net/tcp*` and `/proc/*/fd`, Linux only, when
//! the harness may read them). Secrets in command lines (any flag whose
//! name holds `key`, `secret`, `token` or `password`) are redacted.

use crate::client::Api;
use hyper::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The host the run happened on (also the server's: loopback only).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Host {
    pub hostname: Option<String>,
    pub kernel: Option<String>,
    pub cpus: Option<usize>,
    /// 1, 5 and 15-minute load averages before set-up and after the audit.
    pub load_before: Option<[f64; 3]>,
    pub load_after: Option<[f64; 3]>,
}

/// What the harness could learn about the server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Server {
    pub target: String,
    /// `GET /healthz`: status and body, or why it failed.
    pub healthz: Option<String>,
    /// Labels of `tijori_build_info` in `GET /metrics` (e.g. `version`).
    pub build_info: BTreeMap<String, String>,
    pub pid: Option<u32>,
    /// The server's command line, secrets redacted.
    pub cmdline: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunMeta {
    /// RFC 3339 UTC, when `run` began (before set-up) and ended (after the audit).
    pub started_at: String,
    pub finished_at: String,
    pub harness_version: String,
    /// The commit HEAD pointed at when the harness was built.
    pub harness_commit: String,
    /// The harness's own command line, secrets redacted.
    pub harness_args: Vec<String>,
    pub host: Host,
    pub server: Server,
}

impl RunMeta {
    /// The parts known before the run: start time, harness, host.
    pub fn begin(target: &str) -> RunMeta {
        RunMeta {
            started_at: rfc3339_ms(crate::util::now_unix_ms()),
            finished_at: String::new(),
            harness_version: env!("CARGO_PKG_VERSION").to_owned(),
            harness_commit: env!("TIJORI_LOADTEST_GIT").to_owned(),
            harness_args: redact_args(&std::env::args().collect::<Vec<_>>()),
            host: Host {
                hostname: read_trimmed("/proc/sys/kernel/hostname"),
                kernel: read_trimmed("/proc/sys/kernel/osrelease"),
                cpus: std::thread::available_parallelism().ok().map(|n| n.get()),
                load_before: read_trimmed("/proc/loadavg").and_then(|t| parse_loadavg(&t)),
                load_after: None,
            },
            server: Server {
                target: target.to_owned(),
                ..Server::default()
            },
        }
    }

    /// Asks the server about itself (`/healthz`, `/metrics`) and finds its
    /// process by the listening port.
    pub async fn probe_server(&mut self, api: &Api, port: u16) {
        self.server.healthz = Some(
            match api.call(Method::GET, "/healthz", None, None, None).await {
                Ok(r) => format!("{} {}", r.status, String::from_utf8_lossy(&r.body).trim()),
                Err(f) => f.code(),
            },
        );
        if let Ok(r) = api.call(Method::GET, "/metrics", None, None, None).await {
            if r.status == 200 {
                self.server.build_info = build_info(&String::from_utf8_lossy(&r.body));
            }
        }
        if let Some(pid) = listening_pid(port) {
            self.server.pid = Some(pid);
            self.server.cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .ok()
                .map(|raw| {
                    let args: Vec<String> = raw
                        .split(|b| *b == 0)
                        .filter(|a| !a.is_empty())
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect();
                    redact_args(&args)
                });
        }
    }

    /// The end time and the load average after the run.
    pub fn finish(&mut self) {
        self.finished_at = rfc3339_ms(crate::util::now_unix_ms());
        self.host.load_after = read_trimmed("/proc/loadavg").and_then(|t| parse_loadavg(&t));
    }

    pub fn server_version(&self) -> Option<&str> {
        self.server.build_info.get("version").map(String::as_str)
    }

    pub fn json(&self) -> Value {
        json!({
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "harness": {
                "version": self.harness_version,
                "git_commit": self.harness_commit,
                "args": self.harness_args,
            },
            "host": {
                "hostname": self.host.hostname,
                "kernel": self.host.kernel,
                "cpus": self.host.cpus,
                "load_average_before": self.host.load_before,
                "load_average_after": self.host.load_after,
            },
            "server": {
                "target": self.server.target,
                "version": self.server_version(),
                "build_info": self.server.build_info,
                "healthz": self.server.healthz,
                "pid": self.server.pid,
                "cmdline": self.server.cmdline,
            },
        })
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// `/proc/loadavg` → the three load averages.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|p| p.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// Unix milliseconds → `2026-12-02T04:30:00.123Z`.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let days = unix_ms.div_euclid(86_400_000);
    let ms_of_day = unix_ms.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1_000 % 60,
        ms_of_day % 1_000
    )
}

/// The labels of the first `tijori_build_info{...}` sample in a Prometheus
/// text exposition (values unescaped).
pub fn build_info(metrics: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let Some(line) = metrics
        .lines()
        .find(|l| l.starts_with("tijori_build_info{"))
    else {
        return labels;
    };
    let mut rest = &line["tijori_build_info{".len()..];
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        let Some((name, after)) = rest.split_once("=\"") else {
            break;
        };
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => break,
                },
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                c => value.push(c),
            }
        }
        let Some(end) = end else { break };
        labels.insert(name.trim().to_owned(), value);
        rest = &after[end..];
        if rest.starts_with('}') {
            break;
        }
    }
    labels
}

fn is_secret_flag(name: &str) -> bool {
    let n = name.trim_start_matches('-').to_ascii_lowercase();
    ["key", "secret", "token", "password"]
        .iter()
        .any(|s| n.contains(s))
}

/// Replaces the values of secret-looking flags (`--admin-key X`,
/// `--admin-key=X`) with `<redacted>`.
pub fn redact_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for a in args {
        if hide_next && !a.starts_with("--") {
            out.push("<redacted>".to_owned());
            hide_next = false;
            continue;
        }
        hide_next = false;
        if let Some((name, _)) = a.split_once('=').filter(|(n, _)| n.starts_with('-')) {
            if is_secret_flag(name) {
                out.push(format!("{name}=<redacted>"));
                continue;
            }
        } else if a.starts_with('-') && is_secret_flag(a) {
            hide_next = true;
        }
        out.push(a.clone());
    }
    out
}

/// Inodes of the sockets listening on `port` in a `/proc/net/tcp` or
/// `/proc/net/tcp6` table.
pub fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = f.get(1)?;
            let (_, hex_port) = local.rsplit_once(':')?;
            let listening = *f.get(3)? == "0A";
            (listening && u16::from_str_radix(hex_port, 16).ok()? == port)
                .then(|| f.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
}

/// The process holding a socket that listens on `port` (Linux; None when
/// `/proc` does not tell, e.g. another user's process).
fn listening_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if wanted.iter().any(|w| link.as_os_str() == w.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_775_368_800_123), "2026-04-05T06:00:00.123Z");
        assert_eq!(rfc3339_ms(951_868_801_000), "2000-03-01T00:00:01.000Z");
        assert_eq!(rfc3339_ms(951_782_399_999), "2000-02-28T23:59:59.999Z");
        // Round trip with the parser the sink uses.
        for ms in [1, 86_399_999, 1_709_164_800_000, 4_102_444_800_007] {
            assert_eq!(crate::util::parse_rfc3339_ms(&rfc3339_ms(ms)), Some(ms));
        }
    }

    #[test]
    fn load_average() {
        assert_eq!(
            parse_loadavg("2.56 0.79 0.28 3/411 1234\n"),
            Some([2.56, 0.79, 0.28])
        );
        assert_eq!(parse_loadavg("2.56 x"), None);
    }

    #[test]
    fn build_info_labels() {
        let text = "# HELP tijori_build_info build information; always 1\n\
                    # TYPE tijori_build_info gauge\n\
                    tijori_build_info{version=\"0.1.0\",commit=\"ab\\\"c\"} 1\n\
                    tijori_http_requests_total{route=\"x\"} 3\n";
        let labels = build_info(text);
        assert_eq!(labels.get("version").map(String::as_str), Some("0.1.0"));
        assert_eq!(labels.get("commit").map(String::as_str), Some("ab\"c"));
        assert_eq!(labels.len(), 2);
        assert!(build_info("tijori_up 1\n").is_empty());
    }

    #[test]
    fn secrets_are_redacted() {
        let args: Vec<String> = [
            "tijori",
            "--admin-key",
            "tjk_secret",
            "--listen",
            "127.0.0.1:8080",
            "--webhook-secret=abc",
            "--api-key",
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            redact_args(&args),
            [
                "tijori",
                "--admin-key",
                "<redacted>",
                "--listen",
                "127.0.0.1:8080",
                "--webhook-secret=<redacted>",
                "--api-key",
                "--quiet"
            ]
        );
    }

    #[test]
    fn listening_socket_by_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n\
           1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 20 4 30 10 -1\n\
           2: 0100007F:4756 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 8080), vec![4242]);
        assert_eq!(listening_inodes(table, 18262), vec![4444]);
        assert!(listening_inodes(table, 9).is_empty());
    }
}
