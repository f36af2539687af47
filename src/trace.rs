//! Chrome trace-event JSON (opens in Perfetto and chrome://tracing): GPU kernels on one track,
//! host phases (data loading, upload, encoding, submit, readback) on another, and the per-kernel
//! timings the profile table is built from.

use crate::gpu::profiler::TimingSource;
use crate::gpu::{Gpu, Profiler, Program, Timing};
use anyhow::{Context, Result};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

const PID: u32 = 1;
const HOST: u32 = 1;
const GPU: u32 = 2;

pub struct Trace {
    origin: Instant,
    events: Vec<serde_json::Value>,
    /// Every timed dispatch, in order.
    pub kernels: Vec<Timing>,
    /// Total host time per phase, microseconds.
    pub host: Vec<(String, f64)>,
    /// Profiled steps (calls of `gpu`).
    pub steps: usize,
}

impl Default for Trace {
    fn default() -> Self {
        Trace { origin: Instant::now(), events: Vec::new(), kernels: Vec::new(), host: Vec::new(), steps: 0 }
    }
}

impl Trace {
    /// Microseconds since the trace began.
    pub fn now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64() * 1e6
    }

    /// Record a host phase that started at `start` (from `now`) and ends now.
    pub fn host_span(&mut self, name: &str, start: f64) {
        let dur = (self.now() - start).max(0.0);
        self.events.push(
            json!({"name": name, "cat": "host", "ph": "X", "ts": start, "dur": dur, "pid": PID, "tid": HOST}),
        );
        match self.host.iter_mut().find(|(n, _)| n == name) {
            Some((_, t)) => *t += dur,
            None => self.host.push((name.to_string(), dur)),
        }
    }

    /// Add one step's GPU timings, placed on the timeline from `at` (the step's submit time).
    pub fn gpu(&mut self, timings: Vec<Timing>, at: f64) {
        for t in &timings {
            self.events.push(json!({
                "name": t.kernel, "cat": "gpu", "ph": "X", "ts": at + t.start_us, "dur": t.duration_us,
                "pid": PID, "tid": GPU,
                "args": {"layer": t.label, "flops": t.flops, "bytes": t.bytes},
            }));
        }
        self.kernels.extend(timings);
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

    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string(&self.to_json())?;
        crate::checkpoint::write_atomic(path, text.as_bytes())
            .with_context(|| format!("{}: cannot write trace", path.display()))
    }
}

/// Record `programs` with every dispatch timed, submit, wait for the timings and add them and the
/// host phases (encode, submit, wait) to `trace`. Without timestamp queries each dispatch is
/// submitted alone and timed on the CPU.
pub fn profiled_submit(
    gpu: &Gpu,
    profiler: &Profiler,
    programs: &[&Program],
    label: &str,
    trace: &mut Trace,
) -> Result<()> {
    if profiler.source == TimingSource::CpuSync {
        let t = trace.now();
        let timings = profiler.run(gpu, programs)?;
        trace.host_span("submit + wait per dispatch (no timestamps)", t);
        trace.gpu(timings, t);
        return Ok(());
    }
    let t = trace.now();
    let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
    let timed = profiler.encode(&mut enc, programs, label);
    trace.host_span("encode", t);
    let t = trace.now();
    gpu.queue.submit([enc.finish()]);
    trace.host_span("submit", t);
    let submitted = trace.now();
    let timings = profiler.read(gpu, programs, timed)?;
    trace.host_span("wait for GPU + timestamp readback", submitted);
    trace.gpu(timings, submitted);
    Ok(())
}
