//! Chrome trace-event JSON (opens in Perfetto and chrome://tracing): GPU kernels on one track,
//! host phases (data loading, upload, encoding, submit, readback) on another, and the per-kernel
//! timings the profile table is built from.

use crate::gpu::{Profiled, Timing};
use anyhow::{Context, Result};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

const PID: u32 = 1;
const HOST: u32 = 1;
const GPU: u32 = 2;

/// The adapter's ceilings (`tern bench --suite roofline`): what a kernel's GB/s and GFLOP/s are
/// fractions of in the profile table.
#[derive(Clone, Debug, PartialEq)]
pub struct Ceilings {
    /// Copy bandwidth, read + write bytes per second / 1e9.
    pub copy_gbs: f64,
    /// Fused multiply-add throughput, GFLOP/s.
    pub fma_gflops: f64,
    /// AND + popcount steps on 32-bit words per second / 1e9.
    pub popcount_gops: f64,
    /// The blocked convolution family's best pass and shape, GFLOP/s.
    pub gemm_gflops: f64,
    /// Which convolution pass reached `gemm_gflops`.
    pub gemm: String,
}

pub struct Trace {
    origin: Instant,
    events: Vec<serde_json::Value>,
    /// Every timed dispatch, in order.
    pub kernels: Vec<Timing>,
    /// Total host time per phase, microseconds.
    pub host: Vec<(String, f64)>,
    /// Profiled submissions (calls of `add`).
    pub steps: usize,
    /// When set, the table shows each kernel's fraction of these ceilings.
    pub ceilings: Option<Ceilings>,
    /// Wall-clock milliseconds per step of as many steps again without timestamps (training):
    /// timestamps between dispatches cost llvmpipe time that an unprofiled run does not spend.
    pub unprofiled_ms: Option<f64>,
}

impl Default for Trace {
    fn default() -> Self {
        Trace {
            origin: Instant::now(),
            events: Vec::new(),
            kernels: Vec::new(),
            host: Vec::new(),
            steps: 0,
            ceilings: None,
            unprofiled_ms: None,
        }
    }
}

impl Trace {
    /// Microseconds since the trace began.
    pub fn now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64() * 1e6
    }

    /// Record a host phase that started at `start` (from `now`) and ends now.
    pub fn host_span(&mut self, name: &str, start: f64) {
        self.span(name, start, self.now());
    }

    fn span(&mut self, name: &str, start: f64, end: f64) {
        let dur = (end - start).max(0.0);
        self.events.push(
            json!({"name": name, "cat": "host", "ph": "X", "ts": start, "dur": dur, "pid": PID, "tid": HOST}),
        );
        match self.host.iter_mut().find(|(n, _)| n == name) {
            Some((_, t)) => *t += dur,
            None => self.host.push((name.to_string(), dur)),
        }
    }

    /// Microseconds from the trace's start to `t`.
    fn at(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.origin).as_secs_f64() * 1e6
    }

    /// Add one profiled submission: its host phases, and its kernels placed on the timeline
    /// from the submission.
    pub fn add(&mut self, step: Profiled) {
        for (name, start, end) in &step.phases {
            self.span(name, self.at(*start), self.at(*end));
        }
        let at = self.at(step.started);
        for t in &step.timings {
            self.events.push(json!({
                "name": t.kernel, "cat": "gpu", "ph": "X", "ts": at + t.start_us, "dur": t.duration_us,
                "pid": PID, "tid": GPU,
                "args": {"layer": t.label, "flops": t.flops, "bytes": t.bytes, "popcounts": t.popcounts},
            }));
        }
        self.kernels.extend(step.timings);
        self.steps += 1;
    }

    pub fn gpu_busy_us(&self) -> f64 {
        self.kernels.iter().map(|t| t.duration_us).sum()
    }

    pub fn to_json(&self) -> serde_json::Value {
        let names = [(HOST, "host (data, upload, encode, submit, readback)"), (GPU, "GPU kernels")];
        let mut events: Vec<serde_json::Value> = names
            .iter()
            .map(|(tid, n)| json!({"name": "thread_name", "ph": "M", "pid": PID, "tid": tid, "args": {"name": n}}))
            .collect();
        events.push(json!({"name": "process_name", "ph": "M", "pid": PID, "args": {"name": "tern"}}));
        events.extend(self.events.iter().cloned());
        json!({"traceEvents": events, "displayTimeUnit": "ms"})
    }

    /// The per-kernel table, sorted by total time, and the per-step split of GPU and host time.
    /// With ceilings, four more columns give each kernel's GB/s as a percentage of the copy
    /// bandwidth, its GFLOP/s as percentages of the multiply-add and best-convolution rates, and
    /// (bit-plane kernels) its AND + popcount steps as a percentage of that ceiling.
    pub fn table(&self, source: &str) -> String {
        let steps = self.steps.max(1) as f64;
        let stats = crate::gpu::profiler::aggregate(&self.kernels);
        let busy = self.gpu_busy_us();
        let mut s = format!("{} profiled step(s), {source}\n", self.steps);
        if let Some(c) = &self.ceilings {
            s += &format!(
                "ceilings: copy {:.2} GB/s, multiply-add {:.2} GFLOP/s, AND + popcount {:.2} G/s, \
                 convolution {:.2} GFLOP/s ({})\n",
                c.copy_gbs, c.fma_gflops, c.popcount_gops, c.gemm_gflops, c.gemm
            );
        }
        s += &format!(
            "{:<28} {:<24} {:>6} {:>10} {:>9} {:>6} {:>8} {:>8}",
            "kernel", "layer", "calls", "total ms", "mean us", "%", "GFLOP/s", "GB/s"
        );
        if self.ceilings.is_some() {
            s += &format!(" {:>6} {:>6} {:>6} {:>6}", "%copy", "%fma", "%conv", "%popc");
        }
        s.push('\n');
        for k in &stats {
            let secs = k.total_us / 1e6;
            let gflops = k.flops as f64 / secs.max(1e-12) / 1e9;
            let gbs = k.bytes as f64 / secs.max(1e-12) / 1e9;
            s += &format!(
                "{:<28} {:<24} {:>6} {:>10.3} {:>9.1} {:>6.1} {:>8.2} {:>8.2}",
                k.kernel,
                k.layer,
                k.calls,
                k.total_us / 1e3,
                k.total_us / k.calls as f64,
                100.0 * k.total_us / busy.max(1e-9),
                gflops,
                gbs
            );
            if let Some(c) = &self.ceilings {
                let pct = |v: f64, ceiling: f64| 100.0 * v / ceiling.max(1e-12);
                let popc = match k.popcounts {
                    0 => "-".to_string(),
                    n => format!("{:.1}", pct(n as f64 / secs.max(1e-12) / 1e9, c.popcount_gops)),
                };
                s += &format!(
                    " {:>6.1} {:>6.1} {:>6.1} {popc:>6}",
                    pct(gbs, c.copy_gbs),
                    pct(gflops, c.fma_gflops),
                    pct(gflops, c.gemm_gflops)
                );
            }
            s.push('\n');
        }
        s += &format!("per step: GPU busy {:.3} ms", busy / steps / 1e3);
        for (name, us) in &self.host {
            s += &format!(" | {name} {:.3} ms", us / steps / 1e3);
        }
        s.push('\n');
        // The whole step against the ceiling: what a training step's efficiency is judged by.
        let flops: u64 = stats.iter().map(|k| k.flops).sum();
        if flops > 0 && busy > 0.0 {
            let gflops = flops as f64 / (busy / 1e6) / 1e9;
            s += &format!(
                "whole step: {:.3} GFLOP in the kernels, {gflops:.2} GFLOP/s over GPU busy",
                flops as f64 / steps / 1e9
            );
            let of_ceiling = |gflops: f64| match &self.ceilings {
                Some(c) => {
                    format!(", {:.1} % of the multiply-add ceiling", 100.0 * gflops / c.fma_gflops.max(1e-12))
                }
                None => String::new(),
            };
            s += &of_ceiling(gflops);
            s.push('\n');
            if let Some(ms) = self.unprofiled_ms {
                let gflops = flops as f64 / steps / (ms / 1e3) / 1e9;
                s += &format!(
                    "unprofiled: {ms:.3} ms per step (wall clock, no timestamps), {gflops:.2} GFLOP/s"
                );
                s += &of_ceiling(gflops);
                s.push('\n');
            }
        }
        s
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string(&self.to_json())?;
        crate::checkpoint::write_atomic(path, text.as_bytes())
            .with_context(|| format!("{}: cannot write trace", path.display()))
    }
}
