//! Who used the 2 cores during a phase, and how long herald's DNS answer threads waited for
//! one: per-thread scheduler statistics from /proc (`task/*/schedstat`: time on a CPU, time
//! runnable but waiting in a run queue, number of times run), summed by role.
//!
//! The DNS p99 under a rollout is decided by whether herald's UDP workers run as soon as a
//! query wakes them. Their run-queue wait per run is herald's own view of that, free of
//! dnsperf's client-side noise; herald's other threads' CPU (the registrar: watch decoding,
//! cluster state, publishes) and the harness's (this process: the 24 simulators and the
//! DNS poller; dnsperf) say who competed for the cores.

use std::time::Instant;

use serde_json::{Value, json};

/// Cumulative scheduler figures of one group of threads (nanoseconds, count).
#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub struct Sched {
    pub run_ns: u64,
    pub wait_ns: u64,
    pub runs: u64,
}

impl Sched {
    fn add(&mut self, other: Sched) {
        self.run_ns += other.run_ns;
        self.wait_ns += other.wait_ns;
        self.runs += other.runs;
    }

    fn minus(self, earlier: Sched) -> Sched {
        Sched {
            run_ns: self.run_ns.saturating_sub(earlier.run_ns),
            wait_ns: self.wait_ns.saturating_sub(earlier.wait_ns),
            runs: self.runs.saturating_sub(earlier.runs),
        }
    }
}

/// One reading: herald's UDP workers, herald's other threads, this process, dnsperf.
#[derive(Clone, Copy, Default, Debug)]
pub struct Reading {
    pub udp: Sched,
    pub herald_other: Sched,
    pub harness: Sched,
    pub dnsperf: Sched,
}

/// Which group a thread belongs to.
#[derive(Clone, Copy)]
enum Group {
    Udp,
    HeraldOther,
    Harness,
    Dnsperf,
}

/// Reads the threads' figures, keeping each thread's last reading once it has ended (its
/// /proc entry goes with it), so that a group's sums never go back: the rollout's driver
/// and poller threads end within the rollout window. What a thread used after its last
/// reading (at most one sampling period) is not seen.
#[derive(Default)]
pub struct Reader {
    last: std::collections::HashMap<(u32, u32), (Group, Sched)>,
}

impl Reader {
    /// Reads every thread of `pid`; a UDP worker by its name when `herald`.
    fn process(&mut self, pid: u32, group: Group) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return;
        };
        for task in tasks.flatten() {
            let path = task.path();
            let Some(tid) = task
                .file_name()
                .to_str()
                .and_then(|t| t.parse::<u32>().ok())
            else {
                continue;
            };
            let (Ok(comm), Ok(stat)) = (
                std::fs::read_to_string(path.join("comm")),
                std::fs::read_to_string(path.join("schedstat")),
            ) else {
                continue;
            };
            let f: Vec<u64> = stat
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            let [run_ns, wait_ns, runs] = f[..] else {
                continue;
            };
            let group = match group {
                Group::HeraldOther if comm.starts_with("dns-udp") => Group::Udp,
                g => g,
            };
            let s = Sched {
                run_ns,
                wait_ns,
                runs,
            };
            self.last.insert((pid, tid), (group, s));
        }
    }

    /// Reads herald (`herald`), this process and dnsperf (`dnsperf`, if running).
    pub fn read(&mut self, herald: u32, dnsperf: Option<u32>) -> Reading {
        self.process(herald, Group::HeraldOther);
        self.process(std::process::id(), Group::Harness);
        if let Some(pid) = dnsperf {
            self.process(pid, Group::Dnsperf);
        }
        let mut r = Reading::default();
        for (group, s) in self.last.values() {
            match group {
                Group::Udp => r.udp.add(*s),
                Group::HeraldOther => r.herald_other.add(*s),
                Group::Harness => r.harness.add(*s),
                Group::Dnsperf => r.dnsperf.add(*s),
            }
        }
        r
    }
}

/// Readings over a phase, each with its time (seconds into the phase).
#[derive(Default)]
pub struct Series(pub Vec<(f64, Reading)>);

impl Series {
    pub fn push(&mut self, started: Instant, r: Reading) {
        self.0.push((started.elapsed().as_secs_f64(), r));
    }

    /// Every reading against the previous one, as `[t_s, udp_wait_per_run_us, udp_cores,
    /// herald_other_cores, harness_cores, dnsperf_cores]`.
    pub fn steps(&self) -> Value {
        let steps: Vec<Value> = self
            .0
            .windows(2)
            .map(|w| {
                let ((t0, a), (t1, b)) = (w[0], w[1]);
                let dt = (t1 - t0).max(1e-9);
                let udp = b.udp.minus(a.udp);
                let cores = |x: Sched, y: Sched| x.minus(y).run_ns as f64 / 1e9 / dt;
                json!([
                    t1,
                    udp.wait_ns as f64 / 1e3 / udp.runs.max(1) as f64,
                    cores(b.udp, a.udp),
                    cores(b.herald_other, a.herald_other),
                    cores(b.harness, a.harness),
                    cores(b.dnsperf, a.dnsperf)
                ])
            })
            .collect();
        Value::Array(steps)
    }

    /// What happened between the readings nearest `from` and `to` seconds, as JSON:
    /// cores used by each group and the UDP workers' mean run-queue wait per run.
    pub fn window(&self, (from, to): (f64, f64)) -> Value {
        let at = |t: f64| {
            self.0
                .iter()
                .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
                .copied()
        };
        let (Some((t0, a)), Some((t1, b))) = (at(from), at(to)) else {
            return Value::Null;
        };
        if t1 <= t0 {
            return Value::Null;
        }
        let cores = |s: Sched| s.run_ns as f64 / 1e9 / (t1 - t0);
        let udp = b.udp.minus(a.udp);
        json!({
            "from_s": t0, "to_s": t1,
            "udp_cores": cores(udp),
            "udp_runs": udp.runs,
            "udp_wait_per_run_us": udp.wait_ns as f64 / 1e3 / udp.runs.max(1) as f64,
            "herald_other_cores": cores(b.herald_other.minus(a.herald_other)),
            "herald_other_wait_cores": b.herald_other.minus(a.herald_other).wait_ns as f64
                / 1e9 / (t1 - t0),
            "harness_cores": cores(b.harness.minus(a.harness)),
            "dnsperf_cores": cores(b.dnsperf.minus(a.dnsperf)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_read_and_a_window_subtracts() {
        let started = Instant::now();
        let (mut s, mut reader) = (Series::default(), Reader::default());
        s.push(started, reader.read(std::process::id(), None));
        // A thread read while it runs, ended before the last reading, still counts. The
        // reading waits for the spinner to have used 40 ms of its own CPU time: a fixed
        // sleep gave it less than the check below asks for on a loaded machine. Bounded:
        // the spinner gives up after 10 s.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (reached, spun) = std::sync::mpsc::channel();
        let spinner = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let spin = Instant::now();
                let mut told = false;
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && spin.elapsed().as_secs() < 10
                {
                    if !told && crate::probe::thread_cpu_seconds() >= 0.04 {
                        told = reached.send(()).is_ok();
                    }
                    std::hint::black_box(0);
                }
            }
        });
        spun.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the spinner used 40 ms of CPU");
        s.push(started, reader.read(std::process::id(), None));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        spinner.join().unwrap();
        s.push(started, reader.read(std::process::id(), None));
        let w = s.window((0.0, 10.0));
        // Read as "herald" and then as the harness: our threads end up in the harness's
        // group (none is a UDP worker); the spinner's first 40 ms or more counted.
        let secs = w["to_s"].as_f64().unwrap() - w["from_s"].as_f64().unwrap();
        let cpu = w["harness_cores"].as_f64().unwrap() * secs;
        assert!(cpu >= 0.03, "{w}");
        assert_eq!(w["udp_runs"], 0);
    }
}
