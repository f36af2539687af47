//! `Kernel` (one compiled entry point, bindings reflected by name with naga), `Dispatch` (one
//! recorded launch: kernel + bind group + grid + cost) and `Program` (dispatches in order).
//!
//! Host code names bindings exactly as the WGSL does: `("x", &x), ("w", &w), ("y", &y)`. The
//! uniform `p` is created from the params struct unless the caller binds a buffer to it.

use super::{Gpu, GpuError, Result, Tensor, UniformRef};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Uniform,
    Read,
    ReadWrite,
}

#[derive(Clone, Debug)]
pub struct BindingInfo {
    pub name: String,
    pub index: u32,
    pub access: Access,
}

pub struct Kernel {
    /// "conv2d/forward": shader file / entry point.
    pub name: String,
    pub(crate) pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    pub bindings: Vec<BindingInfo>,
    pub workgroup_size: [u32; 3],
}

impl Kernel {
    pub(crate) fn new(
        gpu: &Gpu,
        name: &str,
        module: &wgpu::ShaderModule,
        ir: &naga::Module,
        info: &naga::valid::ModuleInfo,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<Kernel> {
        let shader_err = |reason: String| GpuError::Shader { shader: name.into(), reason };
        let (index, _) = ir
            .entry_points
            .iter()
            .enumerate()
            .find(|(_, ep)| ep.name == entry && ep.stage == naga::ShaderStage::Compute)
            .ok_or_else(|| shader_err("no such compute entry point".into()))?;
        // Resolve `override` constants (given values, else defaults) so the workgroup size is
        // concrete.
        let values: naga::back::PipelineConstants =
            constants.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        let (resolved, _) = naga::back::pipeline_constants::process_overrides(
            ir,
            info,
            Some((naga::ShaderStage::Compute, entry)),
            &values,
        )
        .map_err(|e| shader_err(e.to_string()))?;
        let workgroup_size = resolved
            .entry_points
            .iter()
            .find(|ep| ep.name == entry)
            .map(|ep| ep.workgroup_size)
            .ok_or_else(|| shader_err("entry point lost resolving overrides".into()))?;
        let uses = info.get_entry_point(index);
        let mut bindings = Vec::new();
        for (handle, var) in ir.global_variables.iter() {
            let (Some(binding), Some(var_name)) = (&var.binding, &var.name) else {
                continue;
            };
            if uses[handle].is_empty() || binding.group != 0 {
                continue;
            }
            let access = match var.space {
                naga::AddressSpace::Uniform => Access::Uniform,
                naga::AddressSpace::Storage { access } if access.contains(naga::StorageAccess::STORE) => {
                    Access::ReadWrite
                }
                naga::AddressSpace::Storage { .. } => Access::Read,
                other => {
                    return Err(shader_err(format!("unsupported binding space {other:?} for '{var_name}'")));
                }
            };
            bindings.push(BindingInfo { name: var_name.clone(), index: binding.binding, access });
        }
        let pipeline = gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: None,
            module,
            entry_point: Some(entry),
            // Specialised kernels (the tiled family) write every workgroup element they read
            // before reading it: skip the zero-fill wgpu would otherwise add to each workgroup.
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                zero_initialize_workgroup_memory: constants.is_empty(),
            },
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        Ok(Kernel { name: name.into(), pipeline, layout, bindings, workgroup_size })
    }

    pub fn invocations_per_group(&self) -> u32 {
        self.workgroup_size.iter().product()
    }

    /// Those of `tensors` this entry point binds: the stages of a multi-kernel op share one list
    /// (`Dispatch::new` refuses a tensor the kernel has no binding for).
    pub fn bound<'a>(&self, tensors: &[(&'a str, &'a Tensor)]) -> Vec<(&'a str, &'a Tensor)> {
        tensors.iter().copied().filter(|(name, _)| self.bindings.iter().any(|b| b.name == *name)).collect()
    }
}

/// Work and traffic of one dispatch, for GFLOP/s, GB/s and popcount rates in profiles.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    pub flops: u64,
    pub bytes: u64,
    /// AND + popcount steps on 32-bit words (bit-plane kernels), each 32 one-bit products.
    pub popcounts: u64,
}

impl Cost {
    /// Floating-point work and memory traffic, no popcounts.
    pub fn new(flops: u64, bytes: u64) -> Cost {
        Cost { flops, bytes, popcounts: 0 }
    }
}

/// How many invocations or workgroups a dispatch launches. Both fold into a 2-D grid that the
/// shader flattens back as `wg.y * nwg.x + wg.x`, so sizes past 65535 groups work.
#[derive(Clone, Copy, Debug)]
pub enum Grid {
    Threads(u64),
    Groups(u64),
}

pub struct Dispatch {
    /// "layer1.0.conv2/grad_weight": the layer, then the entry point.
    pub label: String,
    pub kernel: Arc<Kernel>,
    bind_group: wgpu::BindGroup,
    pub groups: [u32; 3],
    pub cost: Cost,
}

impl Dispatch {
    /// Bind `tensors` by their WGSL names, create the uniform `p` from `params` (if the kernel
    /// uses one and the caller did not bind it), and size the grid.
    pub fn new<P: bytemuck::Pod>(
        gpu: &Gpu,
        kernel: &Arc<Kernel>,
        label: impl Into<String>,
        params: &P,
        tensors: &[(&str, &Tensor)],
        grid: Grid,
        cost: Cost,
    ) -> Result<Dispatch> {
        Self::with_uniforms(gpu, kernel, label, params, tensors, &[], grid, cost)
    }

    /// As `new`, with uniform buffers the host rewrites between steps bound by name.
    pub fn with_uniforms<P: bytemuck::Pod>(
        gpu: &Gpu,
        kernel: &Arc<Kernel>,
        label: impl Into<String>,
        params: &P,
        tensors: &[(&str, &Tensor)],
        uniforms: &[(&str, UniformRef)],
        grid: Grid,
        cost: Cost,
    ) -> Result<Dispatch> {
        let label = label.into();
        let err = |what: String| GpuError::Binding { label: format!("{label} ({})", kernel.name), what };
        for (name, _) in tensors {
            if !kernel.bindings.iter().any(|b| b.name == *name && b.access != Access::Uniform) {
                return Err(err(format!("kernel has no storage binding '{name}'")));
            }
        }
        // wgpu rejects a buffer bound both read-only and writable in one dispatch, and aliased
        // written ranges are a race: name the tensors here instead.
        let writes = |n: &str| kernel.bindings.iter().any(|x| x.name == n && x.access == Access::ReadWrite);
        for (i, (na, a)) in tensors.iter().enumerate() {
            for (nb, b) in &tensors[i + 1..] {
                if a.overlaps(b) && (writes(na) || writes(nb)) {
                    return Err(err(format!("'{na}' ({}) and '{nb}' ({}) overlap", a.name(), b.name())));
                }
                if std::ptr::eq(a.buffer(), b.buffer()) && writes(na) != writes(nb) {
                    let (an, bn) = (a.name(), b.name());
                    return Err(err(format!(
                        "'{na}' ({an}) and '{nb}' ({bn}) share a buffer, read-only and written"
                    )));
                }
            }
        }
        let needs_own = kernel.bindings.iter().any(|b| b.name == "p" && b.access == Access::Uniform)
            && !uniforms.iter().any(|(n, _)| *n == "p");
        let own_uniform = needs_own.then(|| gpu.uniform(&label, params));
        let mut entries = Vec::new();
        for b in &kernel.bindings {
            let resource = if b.access == Access::Uniform {
                match uniforms.iter().find(|(n, _)| *n == b.name) {
                    Some((_, u)) => u.0.as_entire_binding(),
                    None => match (&own_uniform, b.name.as_str()) {
                        (Some(u), "p") => u.buffer.as_entire_binding(),
                        _ => return Err(err(format!("uniform '{}' is not bound", b.name))),
                    },
                }
            } else {
                match tensors.iter().find(|(n, _)| *n == b.name) {
                    Some((_, t)) => t.binding(),
                    None => return Err(err(format!("binding '{}' is missing", b.name))),
                }
            };
            entries.push(wgpu::BindGroupEntry { binding: b.index, resource });
        }
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&label),
            layout: &kernel.layout,
            entries: &entries,
        });
        let per_group = kernel.invocations_per_group() as u64;
        let total = match grid {
            Grid::Threads(n) => n.div_ceil(per_group),
            Grid::Groups(n) => n,
        };
        let max = gpu.limits.max_compute_workgroups_per_dimension;
        let x = total.clamp(1, max as u64);
        let y = total.div_ceil(x).max(1);
        if y > max as u64 {
            return Err(GpuError::Workgroups { label, threads: total * per_group, max });
        }
        Ok(Dispatch { label, kernel: kernel.clone(), bind_group, groups: [x as u32, y as u32, 1], cost })
    }

    pub(crate) fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.push_debug_group(&self.label);
        pass.set_pipeline(&self.kernel.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.groups[0], self.groups[1], self.groups[2]);
        pass.pop_debug_group();
    }
}

/// Dispatches recorded once and replayed in order (forward, backward, update...).
#[derive(Default)]
pub struct Program {
    pub dispatches: Vec<Dispatch>,
}

impl Program {
    pub fn push(&mut self, d: Dispatch) {
        self.dispatches.push(d);
    }

    pub fn extend(&mut self, other: Program) {
        self.dispatches.extend(other.dispatches);
    }

    pub fn extend_from(&mut self, dispatches: impl IntoIterator<Item = Dispatch>) {
        self.dispatches.extend(dispatches);
    }

    pub(crate) fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            d.record(pass);
        }
    }

    pub fn cost(&self) -> Cost {
        self.dispatches.iter().fold(Cost::default(), |a, d| Cost {
            flops: a.flops + d.cost.flops,
            bytes: a.bytes + d.cost.bytes,
            popcounts: a.popcounts + d.cost.popcounts,
        })
    }
}
