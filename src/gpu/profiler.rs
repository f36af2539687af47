//! `Profiler`: GPU time of every dispatch from timestamp queries.
//!
//! Three ways, best first: timestamps written inside one compute pass around each dispatch
//! (TIMESTAMP_QUERY_INSIDE_PASSES); one compute pass per dispatch with pass timestamps
//! (TIMESTAMP_QUERY); without timestamps, each dispatch submitted alone and timed on the CPU after
//! waiting (the report says so). Results are resolved into a buffer in the same submission and
//! read back once per profiled step.

use super::{Gpu, Program, Result};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
pub enum TimingSource {
    /// Timestamps inside one pass.
    InsidePasses,
    /// One pass per dispatch, timestamps at pass boundaries.
    PerPass,
    /// No timestamp queries: wall clock around each synchronised dispatch.
    CpuSync,
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

    /// Record `programs` into `enc` with a timestamp before and after every dispatch, then the
    /// copy of the results to the readback buffer. Returns how many dispatches are timed (all, up
    /// to the capacity). Needs timestamp queries: without them use `run`.
    pub fn encode(&self, enc: &mut wgpu::CommandEncoder, programs: &[&Program], label: &str) -> usize {
        let dispatches: Vec<_> = programs.iter().flat_map(|p| p.dispatches.iter()).collect();
        let Some((set, resolve, read)) = &self.queries else {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(label),
                timestamp_writes: None,
            });
            dispatches.iter().for_each(|d| d.record(&mut pass));
            return 0;
        };
        let timed = dispatches.len().min(self.capacity as usize / 2);
        if self.source == TimingSource::InsidePasses {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(label),
                timestamp_writes: None,
            });
            for (i, d) in dispatches.iter().enumerate() {
                if i < timed {
                    pass.write_timestamp(set, 2 * i as u32);
                }
                d.record(&mut pass);
                if i < timed {
                    pass.write_timestamp(set, 2 * i as u32 + 1);
                }
            }
        } else {
            for (i, d) in dispatches.iter().enumerate() {
                let writes = (i < timed).then(|| wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                });
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&d.label),
                    timestamp_writes: writes,
                });
                d.record(&mut pass);
            }
        }
        let n = 2 * timed as u32;
        if n > 0 {
            enc.resolve_query_set(set, 0..n, resolve, 0);
            enc.copy_buffer_to_buffer(resolve, 0, read, 0, n as u64 * 8);
        }
        timed
    }

    /// The timings of a submission made with `encode` (waits for it).
    pub fn read(&self, gpu: &Gpu, programs: &[&Program], timed: usize) -> Result<Vec<Timing>> {
        let Some((_, _, read)) = &self.queries else { return Ok(Vec::new()) };
        if timed == 0 {
            return Ok(Vec::new());
        }
        let err = |e: String| super::GpuError::Wgpu(format!("reading timestamps: {e}"));
        let slice = read.slice(..timed as u64 * 16);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        gpu.wait()?;
        rx.recv().map_err(|e| err(e.to_string()))?.map_err(|e| err(e.to_string()))?;
        let ticks: Vec<u64> =
            bytemuck::pod_collect_to_vec(&slice.get_mapped_range().map_err(|e| err(e.to_string()))?);
        read.unmap();
        let t0 = ticks.first().copied().unwrap_or(0);
        let us = |t: u64| t.saturating_sub(t0) as f64 * self.period_ns / 1e3;
        let dispatches = programs.iter().flat_map(|p| p.dispatches.iter());
        Ok(dispatches
            .take(timed)
            .enumerate()
            .map(|(i, d)| timing(d, us(ticks[2 * i]), (us(ticks[2 * i + 1]) - us(ticks[2 * i])).max(0.0)))
            .collect())
    }

    /// Run `programs` once, timing every dispatch.
    pub fn run(&self, gpu: &Gpu, programs: &[&Program]) -> Result<Vec<Timing>> {
        if self.queries.is_none() {
            let mut out = Vec::new();
            let t0 = Instant::now();
            for d in programs.iter().flat_map(|p| p.dispatches.iter()) {
                let start = t0.elapsed().as_secs_f64() * 1e6;
                let mut enc = gpu
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(&d.label) });
                d.record(&mut enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&d.label),
                    timestamp_writes: None,
                }));
                gpu.queue.submit([enc.finish()]);
                gpu.wait()?;
                out.push(timing(d, start, t0.elapsed().as_secs_f64() * 1e6 - start));
            }
            return Ok(out);
        }
        let mut enc = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("profiled step") });
        let timed = self.encode(&mut enc, programs, "profiled step");
        gpu.queue.submit([enc.finish()]);
        self.read(gpu, programs, timed)
    }
}

fn timing(d: &super::Dispatch, start_us: f64, duration_us: f64) -> Timing {
    Timing {
        label: d.label.clone(),
        kernel: d.kernel.name.clone(),
        start_us,
        duration_us,
        flops: d.cost.flops,
        bytes: d.cost.bytes,
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
    }
    let mut v: Vec<KernelStat> = map.into_values().collect();
    v.sort_by(|a, b| b.total_us.total_cmp(&a.total_us).then(a.layer.cmp(&b.layer)));
    v
}
