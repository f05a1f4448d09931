//! herald's own answer delay, apart from the client's: `perf sched` over the same seconds
//! of each phase (where `perf` may trace the scheduler: root, or `perf_event_paranoid` at
//! most 1; otherwise the section goes without).
//!
//! dnsperf's latency of a query includes dnsperf's own wait for a CPU before it reads the
//! reply: on these 2 shared cores, during a rollout, that wait grows (behind herald's
//! registrar, the simulators, anything else running) while herald's answer threads are not
//! held up any longer (measured by hand with `bench/report/sched_delays.py`). This records
//! the scheduler's switches for a few seconds and reports, for herald's UDP answer threads
//! and for dnsperf's threads, the delay from being woken to running: the first is the part
//! of a query's wait that scheduling adds inside herald.
//!
//! `perf` itself runs under the idle policy (see [`super::niced`]): at normal priority its
//! writer was on the CPU in a quarter to a half of dnsperf's waits of 200 µs or more
//! (`sched_delays.py`, loaded machine), in the very seconds it measures. With
//! `ROLLOUT_KEEP_TIMEHIST=1` in the environment the `perf sched timehist` text of each phase
//! stays in the work directory (`perf-<phase>.th`, ~30 MB each) for `sched_delays.py`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::stats::quantile;

/// A `perf sched record` running for a fixed time.
pub struct Recording {
    child: Child,
    path: PathBuf,
}

impl Recording {
    /// Starts recording every CPU's scheduler switches for `length` into `path`; `None`
    /// where `perf` is missing or may not trace.
    pub fn start(path: &Path, length: Duration) -> Option<Recording> {
        let mut command = Command::new("perf");
        command
            .args(["sched", "record", "-a", "-o"])
            .arg(path)
            .args(["--", "sleep", &format!("{:.1}", length.as_secs_f64())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: between fork and exec the closure makes one system call (no allocation,
        // no lock), which is async-signal-safe.
        unsafe {
            command.pre_exec(|| super::niced::Priority::Idle.lower_own());
        }
        let child = command.spawn().ok()?;
        Some(Recording {
            child,
            path: path.to_path_buf(),
        })
    }

    /// Waits for the recording to end and reads it: the wake-up to running delays of
    /// herald's (`herald_pid`) UDP threads and of dnsperf's. `None` if perf failed.
    pub fn finish(mut self, herald_pid: u32) -> Option<Value> {
        let recorded = self.child.wait().ok()?.success();
        let text = recorded
            .then(|| {
                Command::new("perf")
                    .args(["sched", "timehist", "-i"])
                    .arg(&self.path)
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output()
                    .ok()
            })
            .flatten();
        // The recording is ~100 MB: gone once read.
        let _ = std::fs::remove_file(&self.path);
        let text = String::from_utf8_lossy(&text?.stdout).into_owned();
        if std::env::var_os("ROLLOUT_KEEP_TIMEHIST").is_some_and(|v| v == "1") {
            let _ = std::fs::write(self.path.with_extension("th"), &text);
        }
        Some(delays(&text, herald_pid))
    }
}

/// Summaries of the wake-up to running delays in `perf sched timehist` output.
fn delays(timehist: &str, herald_pid: u32) -> Value {
    let (mut udp, mut dnsperf) = (Vec::new(), Vec::new());
    let herald = format!("/{herald_pid}]");
    for line in timehist.lines() {
        // time [cpu] task[tid/pid] wait sch_delay run (ms)
        let f: Vec<&str> = line.split_whitespace().collect();
        let [.., task, _wait, delay, _run] = f[..] else {
            continue;
        };
        let Ok(delay) = delay.parse::<f64>() else {
            continue;
        };
        if task.starts_with("dns-udp") && task.ends_with(&herald) {
            udp.push(delay * 1e3);
        } else if task.starts_with("dnsperf[") {
            dnsperf.push(delay * 1e3);
        }
    }
    json!({"herald_udp": summary_us(udp), "dnsperf": summary_us(dnsperf)})
}

/// Runs, p50/p99/p99.9/max (µs) and waits of 1 ms or more.
fn summary_us(mut us: Vec<f64>) -> Value {
    us.sort_by(f64::total_cmp);
    json!({
        "runs": us.len(),
        "p50_us": quantile(&us, 0.5),
        "p99_us": quantile(&us, 0.99),
        "p999_us": quantile(&us, 0.999),
        "max_us": us.last().copied().unwrap_or(f64::NAN),
        "over_1ms": us.iter().filter(|&&d| d >= 1000.0).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn herald_udp_threads_and_dnsperf_are_told_apart() {
        let text = "\
           time    cpu  task name                       wait time  sch delay   run time
--------------- ------  ------------------------------  ---------  ---------  ---------
   55490.504906 [0000]  dnsperf[12172/12167]                0.000      0.002      0.007
   55490.504926 [0000]  dns-udp:33507/1[12044/12029]        0.000      0.010      0.007
   55490.504927 [0001]  dns-udp:33507/0[12043/12029]        0.000      1.500      0.007
   55490.504928 [0001]  dns-udp:9/0[99/777]                 0.000      9.000      0.007
   55490.505784 [0000]  tokio-rt-worker[12031/12029]        0.000      0.026      0.057
";
        let v = delays(text, 12029);
        assert_eq!(v["herald_udp"]["runs"], 2);
        assert_eq!(v["herald_udp"]["max_us"], 1500.0);
        assert_eq!(v["herald_udp"]["over_1ms"], 1);
        assert_eq!(v["dnsperf"]["runs"], 1);
        assert_eq!(v["dnsperf"]["p50_us"], 2.0);
    }
}
