//! `Profiler`: GPU time of every dispatch from timestamp queries.
//!
//! Three ways, best first: timestamps written inside one compute pass around each dispatch
//! (TIMESTAMP_QUERY_INSIDE_PASSES); one compute pass per dispatch with pass timestamps
//! (TIMESTAMP_QUERY); without timestamps, each dispatch submitted alone and timed on the CPU after
//! waiting (the report says so). Results are resolved into a buffer in the same submission and
//! read back once per profiled step.

use super::{Gpu, Program, Result};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
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
    /// A profiler for steps of up to `max_dispatches` dispatches.
    pub fn new(gpu: &Gpu, max_dispatches: usize) -> Profiler {
        let source = if gpu.has(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES) {
            TimingSource::InsidePasses
        } else if gpu.has(wgpu::Features::TIMESTAMP_QUERY) {
            TimingSource::PerPass
        } else {
            TimingSource::CpuSync
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

    /// Run `programs` once, timing every dispatch (the first `capacity / 2` when more).
    pub fn run(&self, gpu: &Gpu, programs: &[&Program]) -> Result<Vec<Timing>> {
        let dispatches: Vec<_> = programs.iter().flat_map(|p| p.dispatches.iter()).collect();
        let timed = dispatches.len().min(self.capacity as usize / 2);
        let timing = |i: usize, start_us: f64, duration_us: f64| {
            let d = dispatches[i];
            Timing {
                label: d.label.clone(),
                kernel: d.kernel.name.clone(),
                start_us,
                duration_us,
                flops: d.cost.flops,
                bytes: d.cost.bytes,
            }
        };
        let Some((set, resolve, read)) = &self.queries else {
            let mut out = Vec::new();
            let t0 = Instant::now();
            for (i, d) in dispatches.iter().enumerate() {
                let start = t0.elapsed().as_secs_f64() * 1e6;
                let mut enc = gpu.device.create_command_encoder(&Default::default());
                d.record(&mut enc.begin_compute_pass(&Default::default()));
                gpu.queue.submit([enc.finish()]);
                gpu.wait()?;
                out.push(timing(i, start, t0.elapsed().as_secs_f64() * 1e6 - start));
            }
            return Ok(out);
        };
        let mut enc = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("profiled step") });
        if self.source == TimingSource::InsidePasses {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("profiled step"),
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
        enc.resolve_query_set(set, 0..n, resolve, 0);
        enc.copy_buffer_to_buffer(resolve, 0, read, 0, n as u64 * 8);
        gpu.queue.submit([enc.finish()]);
        let slice = read.slice(..n as u64 * 8);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        gpu.wait()?;
        rx.recv()
            .map_err(|e| super::GpuError::Wgpu(e.to_string()))?
            .map_err(|e| super::GpuError::Wgpu(e.to_string()))?;
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(
            &slice.get_mapped_range().map_err(|e| super::GpuError::Wgpu(e.to_string()))?,
        );
        read.unmap();
        let t0 = ticks.first().copied().unwrap_or(0);
        let us = |t: u64| t.saturating_sub(t0) as f64 * self.period_ns / 1e3;
        Ok((0..timed).map(|i| timing(i, us(ticks[2 * i]), us(ticks[2 * i + 1]) - us(ticks[2 * i]))).collect())
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
