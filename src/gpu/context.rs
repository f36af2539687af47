//! `Gpu`: adapter choice, device creation, tensors, upload/readback and error capture.

use super::family::{Family, Kernels, TernaryKernels, Tile, TileLimits};
use super::shaders::{Reductions, ShaderFile};
use super::{GpuError, Kernel, Program, Result, Tensor, Uniform};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// Graphics API to run on (`--backend`). Unset: `WGPU_BACKEND`, else every backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

impl super::Choice for Backend {
    const ALL: &'static [Backend] = &[Backend::Vulkan, Backend::Metal, Backend::Dx12, Backend::Gl];

    fn name(self) -> &'static str {
        match self {
            Backend::Vulkan => "vulkan",
            Backend::Metal => "metal",
            Backend::Dx12 => "dx12",
            Backend::Gl => "gl",
        }
    }
}

impl Backend {
    fn backends(self) -> wgpu::Backends {
        match self {
            Backend::Vulkan => wgpu::Backends::VULKAN,
            Backend::Metal => wgpu::Backends::METAL,
            Backend::Dx12 => wgpu::Backends::DX12,
            Backend::Gl => wgpu::Backends::GL,
        }
    }
}

/// How to pick the adapter: `--backend`, `--adapter INDEX` (from `tern devices`), and wgpu's
/// environment conventions (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`, `WGPU_POWER_PREF`). Unset
/// fields choose as the environment says, else the best available.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    pub backend: Option<Backend>,
    /// Index into `adapter_summaries`.
    pub adapter: Option<usize>,
    /// Unset: `TERN_KERNELS`, else auto.
    pub kernels: Option<Kernels>,
    /// Unset: `TERN_TERNARY_KERNELS`, else auto.
    pub ternary_kernels: Option<TernaryKernels>,
}

impl GpuOptions {
    /// `--kernels`, else `TERN_KERNELS`, else auto.
    fn kernels(&self) -> Result<Kernels> {
        Ok(match self.kernels {
            Some(k) => k,
            None => Kernels::from_env()?.unwrap_or_default(),
        })
    }

    /// `--ternary-kernels`, else `TERN_TERNARY_KERNELS`, else auto.
    fn ternary_kernels(&self) -> Result<TernaryKernels> {
        Ok(match self.ternary_kernels {
            Some(k) => k,
            None => TernaryKernels::from_env()?.unwrap_or_default(),
        })
    }
}

/// Features used when the adapter has them; everything works without them.
const OPTIONAL_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
    .union(wgpu::Features::SUBGROUP)
    .union(wgpu::Features::SHADER_F16);

/// A compiled shader file with the naga IR used to reflect its bindings.
type Module = (wgpu::ShaderModule, naga::Module, naga::valid::ModuleInfo);
/// Compiled shader files by (file, reductions it was built with).
type Modules = HashMap<(&'static str, Reductions), Arc<Module>>;

/// One device and the kernel family its ops run. `with_family` gives a second handle on the same
/// device, queue and caches that runs another family (tensors are shared between them).
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: wgpu::AdapterInfo,
    pub(crate) features: wgpu::Features,
    pub(crate) limits: wgpu::Limits,
    family: Family,
    ternary: TernaryKernels,
    /// Forced by `with_reductions` (tests, `tern check`); else `reductions()` decides.
    reductions: Option<Reductions>,
    errors: Arc<Mutex<Vec<String>>>,
    modules: Arc<Mutex<Modules>>,
    kernels: Arc<Mutex<HashMap<String, Arc<Kernel>>>>,
}

fn instance(opts: &GpuOptions) -> Result<(wgpu::Instance, wgpu::Backends)> {
    let backends = match opts.backend {
        Some(b) => b.backends(),
        None => match std::env::var("WGPU_BACKEND") {
            // wgpu skips names it does not know, which would leave no backend and no adapter.
            Ok(v) if wgpu::Backends::from_comma_list(&v).is_empty() => {
                return Err(GpuError::NoAdapter(format!(
                    " for WGPU_BACKEND={v}, which names no backend (vulkan, metal, dx12 or gl; unset it to use any)"
                )));
            }
            _ => wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all()),
        },
    };
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
    desc.backends = backends;
    Ok((wgpu::Instance::new(desc), backends))
}

/// What limited the search for an adapter, for the error when none is found: `--backend` or
/// `WGPU_BACKEND` (which users set and forget), and how to lift it.
fn backend_choice(opts: &GpuOptions) -> String {
    match (opts.backend, std::env::var("WGPU_BACKEND")) {
        (Some(b), _) => format!(
            " for --backend {} (leave it out to use any backend; `tern devices` lists the adapters)",
            format!("{b:?}").to_lowercase()
        ),
        (None, Ok(v)) => format!(
            " for WGPU_BACKEND={v}, set in the environment (unset it to use any backend; `tern devices` lists the adapters)"
        ),
        (None, Err(_)) => String::new(),
    }
}

/// One line per adapter, in the order `--adapter` indexes them, with the kernel family that
/// `--kernels` (or `TERN_KERNELS`) selects on it and how that family reduces there.
pub fn adapter_summaries(opts: &GpuOptions) -> Result<Vec<String>> {
    let (instance, backends) = instance(opts)?;
    let kernels = opts.kernels()?;
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    if adapters.is_empty() {
        return Err(GpuError::NoAdapter(backend_choice(opts)));
    }
    Ok(adapters
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let info = a.get_info();
            let f = a.features();
            let has = |x: wgpu::Features, name: &str| {
                if f.contains(x) { name.to_string() } else { format!("no-{name}") }
            };
            let family = kernels.resolve(info.device_type);
            let reductions = Reductions::of(family, f.contains(wgpu::Features::SUBGROUP));
            format!(
                "{i}: {} ({:?}, {:?}, driver {} {}) [{} {} {}] kernels: {}, reductions by {}",
                info.name,
                info.backend,
                info.device_type,
                info.driver,
                info.driver_info,
                has(wgpu::Features::TIMESTAMP_QUERY, "timestamps"),
                has(wgpu::Features::SUBGROUP, "subgroups"),
                has(wgpu::Features::SHADER_F16, "f16"),
                family.name(),
                reductions.name(),
            )
        })
        .collect())
}

impl Gpu {
    /// The adapter `opts` chooses, opened; a failure is an `Error::Adapter` naming why.
    pub fn new(opts: &GpuOptions) -> std::result::Result<Gpu, crate::Error> {
        Gpu::open(opts).map_err(|e| crate::Error::Adapter(format!("{e:#}")))
    }

    fn open(opts: &GpuOptions) -> Result<Gpu> {
        let kernels = opts.kernels()?;
        let ternary = opts.ternary_kernels()?;
        let (instance, backends) = instance(opts)?;
        let adapters = pollster::block_on(instance.enumerate_adapters(backends));
        let which = backend_choice(opts);
        let adapter = if let Some(index) = opts.adapter {
            let count = adapters.len();
            adapters.into_iter().nth(index).ok_or(GpuError::AdapterIndex { index, count })?
        } else if let Ok(name) = std::env::var("WGPU_ADAPTER_NAME") {
            let name = name.to_lowercase();
            adapters
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&name))
                .ok_or_else(|| GpuError::NoAdapter(format!(" matching WGPU_ADAPTER_NAME={name}")))?
        } else {
            let options = wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::from_env()
                    .unwrap_or(wgpu::PowerPreference::HighPerformance),
                ..Default::default()
            };
            pollster::block_on(instance.request_adapter(&options)).map_err(|_| GpuError::NoAdapter(which))?
        };
        let info = adapter.get_info();
        let features = adapter.features() & OPTIONAL_FEATURES;
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("tern"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device { adapter: info.name.clone(), reason: e.to_string() })?;
        // wgpu panics on uncaptured errors by default; collect them and report at the next sync.
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap().push(e.to_string());
        }));
        let family = kernels.resolve(info.device_type);
        Ok(Gpu {
            device,
            queue,
            info,
            features,
            limits,
            family,
            ternary,
            reductions: None,
            errors,
            modules: Arc::default(),
            kernels: Arc::default(),
        })
    }

    /// "llvmpipe (LLVM 15.0.6, 256 bits) on Vulkan"
    pub fn describe(&self) -> String {
        format!("{} on {:?}", self.info.name, self.info.backend)
    }

    /// The kernel family this handle's ops run.
    pub fn family(&self) -> Family {
        self.family
    }

    /// "blocked (4×4 register blocks, no workgroup memory)" or "tiled (workgroup-memory tiles of
    /// 256 invocations, 64×64×16 for a 64-channel layer; reductions by subgroup operations)",
    /// with this adapter's tile and reductions.
    pub fn describe_family(&self) -> String {
        match self.family {
            Family::Blocked => "blocked (4×4 register blocks, no workgroup memory)".into(),
            Family::Tiled => {
                let t = self.tile(64, 1 << 20, 1 << 20);
                format!(
                    "tiled (workgroup-memory tiles of {} invocations, {}×{}×{} for a 64-channel layer; \
                     reductions by {})",
                    t.invocations(),
                    t.m,
                    t.n,
                    t.k,
                    self.reductions().name()
                )
            }
        }
    }

    /// A handle on the same device, queue, error sink and kernel caches running `family`: what
    /// one handle creates, the other can bind (tests and benchmarks compare the two families).
    pub fn with_family(&self, family: Family) -> Gpu {
        Gpu {
            device: self.device.clone(),
            queue: self.queue.clone(),
            info: self.info.clone(),
            features: self.features,
            limits: self.limits.clone(),
            family,
            ternary: self.ternary,
            reductions: self.reductions,
            errors: self.errors.clone(),
            modules: self.modules.clone(),
            kernels: self.kernels.clone(),
        }
    }

    /// A handle like this one whose ternary layers train on `ternary` kernels (tests and
    /// benchmarks compare the two).
    pub fn with_ternary(&self, ternary: TernaryKernels) -> Gpu {
        Gpu { ternary, ..self.with_family(self.family) }
    }

    /// How the shaders' workgroup reductions (group.wgsl) run (`Reductions::of`).
    pub fn reductions(&self) -> Reductions {
        let auto = Reductions::of(self.family, self.has(wgpu::Features::SUBGROUP));
        self.reductions.unwrap_or(auto)
    }

    /// A handle like this one whose reductions run `reductions` (tests and `tern check` run the
    /// workgroup-memory fallback on adapters that have subgroups).
    pub fn with_reductions(&self, reductions: Reductions) -> Gpu {
        Gpu { reductions: Some(reductions), ..self.with_family(self.family) }
    }

    /// `--ternary-kernels` as given (`trains_on_masks` resolves auto).
    pub fn ternary_kernels(&self) -> TernaryKernels {
        self.ternary
    }

    /// Whether ternary layers train on bit masks (`--ternary-kernels`, auto resolved for this
    /// adapter and family).
    pub fn trains_on_masks(&self) -> bool {
        self.ternary.on_masks(self.family, self.lanes_kernels())
    }

    /// Whether the blocked family runs its 3×3 convolutions through the lanes kernels here
    /// (conv2d_lanes.wgsl, packed_conv_lanes.wgsl: weights shared across 8-lane subgroups).
    pub fn lanes_kernels(&self) -> bool {
        self.family == Family::Blocked && self.subgroups_of(8)
    }

    /// The tiled family's tile for a GEMM of `rows` × `cols` outputs whose reduction comes in
    /// runs of `depth`, within this adapter's workgroup limits (see `Tile::choose`).
    pub fn tile(&self, rows: usize, cols: usize, depth: usize) -> Tile {
        let l = &self.limits;
        let limits = TileLimits {
            invocations: l.max_compute_invocations_per_workgroup.min(l.max_compute_workgroup_size_x),
            storage: l.max_compute_workgroup_storage_size,
        };
        Tile::choose(limits, rows, cols, depth)
    }

    /// Elements (of 4 bytes) a tensor view's offset must be a multiple of.
    pub fn offset_alignment(&self) -> usize {
        (self.limits.min_storage_buffer_offset_alignment as usize / 4).max(1)
    }

    /// The largest tensor, in bytes, a kernel can bind.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    pub(crate) fn has(&self, feature: wgpu::Features) -> bool {
        self.features.contains(feature)
    }

    /// Errors wgpu reported since the last check, as one error naming the first.
    pub fn check(&self) -> Result<()> {
        let mut errors = self.errors.lock().unwrap();
        match errors.first() {
            None => Ok(()),
            Some(first) => {
                let more = errors.len() - 1;
                let msg = if more > 0 { format!("{first} (and {more} more)") } else { first.clone() };
                errors.clear();
                let one_line: Vec<&str> = msg.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
                Err(GpuError::Wgpu(one_line.join(" / ")))
            }
        }
    }

    fn check_size(&self, name: &str, bytes: u64) -> Result<()> {
        let l = &self.limits;
        for (limit, max) in [
            ("max_storage_buffer_binding_size", l.max_storage_buffer_binding_size),
            ("max_buffer_size", l.max_buffer_size),
        ] {
            if bytes > max {
                return Err(GpuError::TooLarge { name: name.into(), bytes, limit, max });
            }
        }
        Ok(())
    }

    /// A zero-filled f32 tensor.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.tensor_of(name, shape, super::DType::F32)
    }

    pub fn tensor_of(&self, name: &str, shape: &[usize], dtype: super::DType) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        let bytes = (numel.max(1) * 4) as u64;
        self.check_size(name, bytes)?;
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            // Whole vec4s, so that kernels may read any tensor as vec4s (`Tensor::vec4_cover`).
            size: bytes.next_multiple_of(16),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Tensor::new(Arc::new(buffer), 0, shape, name, dtype))
    }

    pub fn tensor_from(&self, name: &str, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        let t = self.tensor(name, shape)?;
        self.write(&t, data)?;
        Ok(t)
    }

    pub fn tensor_u32(&self, name: &str, shape: &[usize], data: &[u32]) -> Result<Tensor> {
        let t = self.tensor_of(name, shape, super::DType::U32)?;
        self.write_u32(&t, data)?;
        Ok(t)
    }

    /// A uniform buffer holding `value`, padded to 16 bytes as uniform layouts require.
    pub fn uniform<T: bytemuck::Pod>(&self, name: &str, value: &T) -> Uniform<T> {
        let mut bytes = bytemuck::bytes_of(value).to_vec();
        bytes.resize(bytes.len().next_multiple_of(16).max(16), 0);
        Uniform::new(self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(name),
            contents: &bytes,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        }))
    }

    /// Rewrite a uniform; the next submission sees the new value.
    pub fn write_uniform<T: bytemuck::Pod>(&self, u: &Uniform<T>, value: &T) {
        self.queue.write_buffer(&u.buffer, 0, bytemuck::bytes_of(value));
    }

    fn check_len(t: &Tensor, got: usize) -> Result<()> {
        if got != t.numel() {
            return Err(GpuError::Length { name: t.name().into(), expected: t.numel(), got });
        }
        Ok(())
    }

    pub fn write(&self, t: &Tensor, data: &[f32]) -> Result<()> {
        self.write_pod(t, data)
    }

    pub fn write_u32(&self, t: &Tensor, data: &[u32]) -> Result<()> {
        self.write_pod(t, data)
    }

    fn write_pod<T: bytemuck::Pod>(&self, t: &Tensor, data: &[T]) -> Result<()> {
        Self::check_len(t, data.len())?;
        if !data.is_empty() {
            self.queue.write_buffer(t.buffer(), t.offset(), bytemuck::cast_slice(data));
        }
        Ok(())
    }

    fn read_bytes(&self, t: &Tensor) -> Result<Vec<u8>> {
        let bytes = t.bytes().max(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.submit_with("readback", |enc| {
            enc.copy_buffer_to_buffer(t.buffer(), t.offset(), &staging, 0, bytes)
        });
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|e| GpuError::Wgpu(e.to_string()))?
            .map_err(|e| GpuError::Wgpu(format!("reading '{}': {e}", t.name())))?;
        let data = slice.get_mapped_range().map_err(|e| GpuError::Wgpu(e.to_string()))?.to_vec();
        staging.unmap();
        Ok(data[..t.bytes() as usize].to_vec())
    }

    /// Copy a tensor back to the host (waits for all submitted work).
    pub fn read(&self, t: &Tensor) -> Result<Vec<f32>> {
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes(t)?))
    }

    pub fn read_u32(&self, t: &Tensor) -> Result<Vec<u32>> {
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes(t)?))
    }

    /// Block until every submission has finished, then report any captured wgpu error.
    pub fn wait(&self) -> Result<()> {
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| GpuError::Wgpu(e.to_string()))?;
        self.check()
    }

    /// The one submit path: `record` fills a command encoder, which is submitted (no wait).
    /// Plain, training, profiled and readback submissions all come through here.
    pub(crate) fn submit_with(&self, label: &str, record: impl FnOnce(&mut wgpu::CommandEncoder)) {
        let mut enc =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        record(&mut enc);
        self.queue.submit([enc.finish()]);
    }

    /// Record programs into one compute pass and submit, without waiting.
    pub fn submit(&self, programs: &[&Program], label: &str) {
        self.submit_with(label, |enc| {
            let mut pass = compute_pass(enc, label, None);
            programs.iter().for_each(|p| p.record(&mut pass));
        });
    }

    /// Submit programs and wait for them.
    pub fn run(&self, programs: &[&Program]) -> Result<()> {
        self.submit(programs, "tern.run");
        self.wait()
    }

    /// The compiled entry point `entry` of a shader file, compiled once and cached.
    pub fn kernel(&self, shader: &ShaderFile, entry: &str) -> Result<Arc<Kernel>> {
        self.kernel_with(shader, entry, &[])
    }

    /// `entry` specialised with `override` constants (name, value), compiled once per set of
    /// values: the cache key names them.
    pub fn kernel_with(
        &self,
        shader: &ShaderFile,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<Arc<Kernel>> {
        let name = format!("{}/{}", shader.name, entry);
        let reductions = self.reductions();
        let mut values: Vec<String> = constants.iter().map(|(n, v)| format!("{n}={v}")).collect();
        if shader.reduces() {
            values.push(format!("{reductions:?}"));
        }
        let key = format!("{name}[{}]", values.join(","));
        if let Some(k) = self.kernels.lock().unwrap().get(&key) {
            return Ok(k.clone());
        }
        if !super::shaders::known_constants(constants) {
            return Err(GpuError::Shader {
                shader: key,
                reason: "pipeline constants outside shaders::MODES and Tile::all, which \
                         tests/portability.rs translates"
                    .into(),
            });
        }
        let module = self.module(shader, reductions)?;
        let kernel = Arc::new(Kernel::new(self, &name, &module.0, &module.1, &module.2, entry, constants)?);
        self.check().map_err(|e| GpuError::Shader { shader: key.clone(), reason: e.to_string() })?;
        self.kernels.lock().unwrap().insert(key, kernel.clone());
        Ok(kernel)
    }

    fn module(&self, shader: &ShaderFile, reductions: Reductions) -> Result<Arc<Module>> {
        let key = (shader.name, if shader.reduces() { reductions } else { Reductions::Tree });
        if let Some(m) = self.modules.lock().unwrap().get(&key) {
            return Ok(m.clone());
        }
        let (naga_module, info) = shader.parse(reductions)?;
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(shader.name),
            source: wgpu::ShaderSource::Wgsl(shader.wgsl(reductions)?.into()),
        });
        let entry = Arc::new((module, naga_module, info));
        self.modules.lock().unwrap().insert(key, entry.clone());
        Ok(entry)
    }
}

impl Gpu {
    /// Invocations worth launching to fill the device: split-K reductions aim for this many.
    pub fn parallelism(&self) -> u64 {
        match self.info.device_type {
            wgpu::DeviceType::Cpu => 1024,
            _ => 65536,
        }
    }

    /// Whether subgroup operations are available with at least `lanes` invocations in every
    /// subgroup (llvmpipe: 8, the lanes of one 256-bit vector); kernels that share loads across
    /// a subgroup's lanes need it.
    pub fn subgroups_of(&self, lanes: u32) -> bool {
        self.has(wgpu::Features::SUBGROUP) && self.info.subgroup_min_size >= lanes
    }
}

/// A compute pass on `enc`, with timestamps at its ends when profiling one dispatch per pass.
pub(crate) fn compute_pass<'e>(
    enc: &'e mut wgpu::CommandEncoder,
    label: &str,
    timestamp_writes: Option<wgpu::ComputePassTimestampWrites<'e>>,
) -> wgpu::ComputePass<'e> {
    enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(label), timestamp_writes })
}
