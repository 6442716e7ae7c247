//! The standard process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
//! `process_open_fds`, `process_max_fds`, `process_start_time_seconds`),
//! read from `/proc/self` at scrape time, as the Go and Python clients do.
//! Linux only: on other systems the collector writes nothing.
//!
//! Parsed here rather than with the `procfs` crate: three small files and one
//! directory count, with pure parsers unit-tested below, against a dependency
//! tree several times larger than this module.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// The fields of `/proc/self/stat` the metrics need, in kernel units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// User and system time, in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// Start time after boot, in clock ticks.
    pub starttime: u64,
    /// Virtual memory size, bytes.
    pub vsize: u64,
    /// Resident set size, pages.
    pub rss: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses
/// and may hold spaces or `)`, so fields are counted after the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // `rest` starts at field 3 (state): field n is index n - 3.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: n(14)?,
        stime: n(15)?,
        starttime: n(22)?,
        vsize: n(23)?,
        rss: n(24)?,
    })
}

/// The boot time (`btime`, Unix seconds) from `/proc/stat`.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit on open files from `/proc/<pid>/limits`; `None` when
/// unlimited or absent.
pub fn parse_max_fds(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Encodes the process metrics at each scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    #[cfg(not(target_os = "linux"))]
    fn encode(&self, _enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        // SAFETY: sysconf has no preconditions.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let gauge = |enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64| {
            ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
        };
        if let Some(stat) = read("/proc/self/stat").as_deref().and_then(parse_stat) {
            if ticks > 0 {
                let ticks = ticks as f64;
                let cpu = (stat.utime + stat.stime) as f64 / ticks;
                ConstCounter::new(cpu).encode(enc.encode_descriptor(
                    "process_cpu_seconds",
                    "Total user and system CPU time spent in seconds.",
                    None,
                    MetricType::Counter,
                )?)?;
                if let Some(boot) = read("/proc/stat").as_deref().and_then(parse_boot_time) {
                    gauge(
                        &mut enc,
                        "process_start_time_seconds",
                        "Start time of the process since unix epoch in seconds.",
                        boot as f64 + stat.starttime as f64 / ticks,
                    )?;
                }
            }
            gauge(
                &mut enc,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                stat.vsize as f64,
            )?;
            if page > 0 {
                gauge(
                    &mut enc,
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes.",
                    (stat.rss * page as u64) as f64,
                )?;
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            gauge(
                &mut enc,
                "process_open_fds",
                "Number of open file descriptors.",
                dir.count() as f64,
            )?;
        }
        if let Some(max) = read("/proc/self/limits").as_deref().and_then(parse_max_fds) {
            gauge(
                &mut enc,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max as f64,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (odd ) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 125 0 0 20 0 9 0 123456 987654321 2048 18446744073709551615 \
                    1 1 0 0 0 0 0 4096 17610 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                utime: 250,
                stime: 125,
                starttime: 123456,
                vsize: 987654321,
                rss: 2048,
            })
        );
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn boot_time_and_file_limit_are_read() {
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nintr 5\nbtime 1764000000\nprocesses 9\n"),
            Some(1_764_000_000)
        );
        assert_eq!(parse_boot_time("cpu 1\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_fds(unlimited), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads_sanely() {
        let stat = parse_stat(&std::fs::read_to_string("/proc/self/stat").unwrap()).unwrap();
        assert!(stat.rss > 0 && stat.vsize > 0);
        let boot = parse_boot_time(&std::fs::read_to_string("/proc/stat").unwrap()).unwrap();
        assert!(boot > 1_000_000_000);
    }
}
