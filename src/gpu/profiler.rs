//! `Profiler`: GPU time of every dispatch from timestamp queries.
//!
//! Three ways, best first: timestamps written inside one compute pass around each dispatch
//! (TIMESTAMP_QUERY_INSIDE_PASSES); one compute pass per dispatch with pass timestamps
//! (TIMESTAMP_QUERY); without timestamps, each dispatch submitted alone and timed on the CPU after
//! waiting (the report says so). Results are resolved into a buffer in the same submission and
//! read back once per profiled step.

use super::context::compute_pass;
use super::{Dispatch, Gpu, Program, Result};
use std::time::Instant;

/// How a profile times each dispatch (`--timing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum TimingSource {
    InsidePasses,
    PerPass,
    CpuSync,
}

impl super::Choice for TimingSource {
    const ALL: &'static [TimingSource] =
        &[TimingSource::InsidePasses, TimingSource::PerPass, TimingSource::CpuSync];

    fn name(self) -> &'static str {
        match self {
            TimingSource::InsidePasses => "inside-passes",
            TimingSource::PerPass => "per-pass",
            TimingSource::CpuSync => "cpu-sync",
        }
    }

    fn help(self) -> &'static str {
        match self {
            TimingSource::InsidePasses => "Timestamps inside one pass",
            TimingSource::PerPass => "One pass per dispatch, timestamps at pass boundaries",
            TimingSource::CpuSync => "No timestamp queries: wall clock around each synchronised dispatch",
        }
    }
}

/// One dispatch of one profiled step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Timing {
    /// "layer2.0.conv1/grad_weight"
    pub label: String,
    /// "conv2d/grad_weight"
    pub kernel: String,
    /// Start relative to the first dispatch of the step, and duration, in microseconds.
    pub start_us: f64,
    pub duration_us: f64,
    pub flops: u64,
    pub bytes: u64,
    pub popcounts: u64,
}

/// Aggregate of one (kernel, layer) pair over profiled steps.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct KernelStat {
    pub kernel: String,
    pub layer: String,
    pub calls: u64,
    pub total_us: f64,
    pub flops: u64,
    pub bytes: u64,
    pub popcounts: u64,
}

pub struct Profiler {
    pub source: TimingSource,
    queries: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
    capacity: u32,
    period_ns: f64,
}

impl Profiler {
    /// A profiler for steps of up to `max_dispatches` dispatches, with the best timing source
    /// the adapter has.
    pub fn new(gpu: &Gpu, max_dispatches: usize) -> Profiler {
        Self::with_source(gpu, max_dispatches, None)
    }

    /// As `new`, with a weaker source forced (to compare them, or to test the fallbacks).
    pub fn with_source(gpu: &Gpu, max_dispatches: usize, wanted: Option<TimingSource>) -> Profiler {
        let best = if gpu.has(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES) {
            TimingSource::InsidePasses
        } else if gpu.has(wgpu::Features::TIMESTAMP_QUERY) {
            TimingSource::PerPass
        } else {
            TimingSource::CpuSync
        };
        let rank = |s: TimingSource| s as u8;
        let source = match wanted {
            Some(w) if rank(w) > rank(best) => w,
            _ => best,
        };
        let capacity = (2 * max_dispatches.max(1)).min(4096) as u32;
        let queries = (source != TimingSource::CpuSync).then(|| {
            let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profiler"),
                ty: wgpu::QueryType::Timestamp,
                count: capacity,
            });
            let size = capacity as u64 * 8;
            let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profiler resolve"),
                size,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let read = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profiler readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            (set, resolve, read)
        });
        Profiler { source, queries, capacity, period_ns: gpu.queue.get_timestamp_period() as f64 }
    }

    pub fn describe(&self) -> &'static str {
        match self.source {
            TimingSource::InsidePasses => "GPU timestamps inside the compute pass",
            TimingSource::PerPass => "GPU timestamps, one compute pass per dispatch",
            TimingSource::CpuSync => {
                "no timestamp queries on this adapter: CPU wall clock around each synchronised dispatch"
            }
        }
    }

    /// Submit `programs` with every dispatch timed (up to the capacity) and wait for the
    /// timings. Without timestamp queries each dispatch is submitted alone and timed on the CPU.
    pub fn submit(&self, gpu: &Gpu, programs: &[&Program], label: &str) -> Result<Profiled> {
        let dispatches: Vec<&Dispatch> = programs.iter().flat_map(|p| p.dispatches.iter()).collect();
        let start = Instant::now();
        let Some((set, resolve, read)) = &self.queries else {
            let mut timings = Vec::new();
            for d in dispatches {
                let t = micros(start);
                gpu.submit_with(&d.label, |enc| d.record(&mut compute_pass(enc, &d.label, None)));
                gpu.wait()?;
                timings.push(timing(d, t, micros(start) - t));
            }
            let phases = vec![("submit + wait per dispatch (no timestamps)", start, Instant::now())];
            return Ok(Profiled { timings, started: start, phases });
        };
        let timed = dispatches.len().min(self.capacity as usize / 2);
        let mut encoded = start;
        gpu.submit_with(label, |enc| {
            self.encode(enc, &dispatches[..timed], &dispatches[timed..], set, label);
            let n = 2 * timed as u32;
            if n > 0 {
                enc.resolve_query_set(set, 0..n, resolve, 0);
                enc.copy_buffer_to_buffer(resolve, 0, read, 0, n as u64 * 8);
            }
            encoded = Instant::now();
        });
        let submitted = Instant::now();
        let timings = self.read(gpu, &dispatches[..timed], read)?;
        let phases = vec![
            ("encode", start, encoded),
            ("submit", encoded, submitted),
            ("wait for GPU + timestamp readback", submitted, Instant::now()),
        ];
        Ok(Profiled { timings, started: submitted, phases })
    }

    /// Record the timed dispatches with a timestamp before and after each, then the rest.
    fn encode(
        &self,
        enc: &mut wgpu::CommandEncoder,
        timed: &[&Dispatch],
        untimed: &[&Dispatch],
        set: &wgpu::QuerySet,
        label: &str,
    ) {
        if self.source == TimingSource::InsidePasses {
            let mut pass = compute_pass(enc, label, None);
            for (i, d) in timed.iter().enumerate() {
                pass.write_timestamp(set, 2 * i as u32);
                d.record(&mut pass);
                pass.write_timestamp(set, 2 * i as u32 + 1);
            }
            untimed.iter().for_each(|d| d.record(&mut pass));
            return;
        }
        for (i, d) in timed.iter().enumerate() {
            let writes = wgpu::ComputePassTimestampWrites {
                query_set: set,
                beginning_of_pass_write_index: Some(2 * i as u32),
                end_of_pass_write_index: Some(2 * i as u32 + 1),
            };
            d.record(&mut compute_pass(enc, &d.label, Some(writes)));
        }
        let mut pass = compute_pass(enc, label, None);
        untimed.iter().for_each(|d| d.record(&mut pass));
    }

    /// The timings of the submitted, timed dispatches (waits for them).
    fn read(&self, gpu: &Gpu, timed: &[&Dispatch], read: &wgpu::Buffer) -> Result<Vec<Timing>> {
        if timed.is_empty() {
            return Ok(Vec::new());
        }
        let err = |e: String| super::GpuError::Wgpu(format!("reading timestamps: {e}"));
        let slice = read.slice(..timed.len() as u64 * 16);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        gpu.wait()?;
        rx.recv().map_err(|e| err(e.to_string()))?.map_err(|e| err(e.to_string()))?;
        let ticks: Vec<u64> =
            bytemuck::pod_collect_to_vec(&slice.get_mapped_range().map_err(|e| err(e.to_string()))?);
        read.unmap();
        let t0 = ticks[0];
        let us = |t: u64| t.saturating_sub(t0) as f64 * self.period_ns / 1e3;
        Ok(timed
            .iter()
            .enumerate()
            .map(|(i, d)| timing(d, us(ticks[2 * i]), (us(ticks[2 * i + 1]) - us(ticks[2 * i])).max(0.0)))
            .collect())
    }
}

/// One profiled submission: every timed dispatch, when the GPU work started on the host's clock
/// (its submission), and the host phases around it.
pub struct Profiled {
    pub timings: Vec<Timing>,
    pub started: Instant,
    pub phases: Vec<(&'static str, Instant, Instant)>,
}

fn micros(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e6
}

fn timing(d: &Dispatch, start_us: f64, duration_us: f64) -> Timing {
    Timing {
        label: d.label.clone(),
        kernel: d.kernel.name.clone(),
        start_us,
        duration_us,
        flops: d.cost.flops,
        bytes: d.cost.bytes,
        popcounts: d.cost.popcounts,
    }
}

/// Sum timings per (kernel, layer), sorted by total time, largest first.
pub fn aggregate(timings: &[Timing]) -> Vec<KernelStat> {
    let mut map: std::collections::HashMap<(String, String), KernelStat> = Default::default();
    for t in timings {
        let layer = t.label.rsplit_once('/').map_or(t.label.as_str(), |(l, _)| l).to_string();
        let e = map.entry((t.kernel.clone(), layer.clone())).or_insert_with(|| KernelStat {
            kernel: t.kernel.clone(),
            layer,
            ..Default::default()
        });
        e.calls += 1;
        e.total_us += t.duration_us;
        e.flops += t.flops;
        e.bytes += t.bytes;
        e.popcounts += t.popcounts;
    }
    let mut v: Vec<KernelStat> = map.into_values().collect();
    v.sort_by(|a, b| b.total_us.total_cmp(&a.total_us).then(a.layer.cmp(&b.layer)));
    v
}
