//! Every WGSL file of the project, embedded at compile time. Each is valid WGSL on its own.
//! `<op>_tiled` files hold the tiled family's entry points of `<op>` (same bindings and uniforms).

use super::{GpuError, Result};

pub struct ShaderFile {
    /// File stem: `shaders/<name>.wgsl`.
    pub name: &'static str,
    pub source: &'static str,
}

macro_rules! shader {
    ($konst:ident, $name:literal) => {
        pub const $konst: ShaderFile =
            ShaderFile { name: $name, source: include_str!(concat!("../../shaders/", $name, ".wgsl")) };
    };
}

shader!(ACTIVATION, "activation");
shader!(BATCHNORM, "batchnorm");
shader!(CONV2D, "conv2d");
shader!(CONV2D_TILED, "conv2d_tiled");
shader!(CONV2D_LANES, "conv2d_lanes");
shader!(LINEAR, "linear");
shader!(LINEAR_TILED, "linear_tiled");
shader!(LOSS, "loss");
shader!(OPTIM, "optim");
shader!(PACKED_CONV, "packed_conv");
shader!(PACKED_CONV_LANES, "packed_conv_lanes");
shader!(PACKED_CONV_TILED, "packed_conv_tiled");
shader!(PACKED_LINEAR, "packed_linear");
shader!(PACKED_LINEAR_TILED, "packed_linear_tiled");
shader!(POOL, "pool");
shader!(REDUCE, "reduce");
shader!(ROOFLINE, "roofline");
shader!(SHORTCUT, "shortcut");
shader!(STTN, "sttn");
shader!(TTN, "ttn");
shader!(TERNARY_MASKS, "ternary_masks");
shader!(TTQ, "ttq");
shader!(TWN, "twn");

pub const ALL: &[&ShaderFile] = &[
    &ACTIVATION,
    &BATCHNORM,
    &CONV2D,
    &CONV2D_TILED,
    &CONV2D_LANES,
    &LINEAR,
    &LINEAR_TILED,
    &LOSS,
    &OPTIM,
    &PACKED_CONV,
    &PACKED_CONV_LANES,
    &PACKED_CONV_TILED,
    &PACKED_LINEAR,
    &PACKED_LINEAR_TILED,
    &POOL,
    &REDUCE,
    &ROOFLINE,
    &SHORTCUT,
    &STTN,
    &TTN,
    &TERNARY_MASKS,
    &TTQ,
    &TWN,
];

impl ShaderFile {
    /// Parse and validate with naga, naming the file and line of any error.
    pub fn parse(&self) -> Result<(naga::Module, naga::valid::ModuleInfo)> {
        let err = |reason: String| GpuError::Shader { shader: format!("shaders/{}.wgsl", self.name), reason };
        let module =
            naga::front::wgsl::parse_str(self.source).map_err(|e| err(e.emit_to_string(self.source)))?;
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .map_err(|e| err(e.emit_to_string(self.source)))?;
        Ok((module, info))
    }

    /// Translate to SPIR-V (bytes), MSL and HLSL source, as the Vulkan, Metal and DX12 backends
    /// would, with `override` constants at their defaults.
    pub fn translate(&self) -> Result<Translated> {
        let err = |target: &str, reason: String| GpuError::Shader {
            shader: format!("shaders/{}.wgsl", self.name),
            reason: format!("{target}: {reason}"),
        };
        let (module, info) = self.parse()?;
        let (module, info) =
            naga::back::pipeline_constants::process_overrides(&module, &info, None, &Default::default())
                .map_err(|e| err("overrides", e.to_string()))?;
        let spirv = naga::back::spv::write_vec(&module, &info, &Default::default(), None)
            .map_err(|e| err("SPIR-V", e.to_string()))?;
        let msl_options = naga::back::msl::Options { lang_version: (2, 1), ..Default::default() };
        let (msl, _) = naga::back::msl::write_string(
            &module,
            &info,
            &msl_options,
            &naga::back::msl::PipelineOptions::default(),
        )
        .map_err(|e| err("MSL", e.to_string()))?;
        let mut hlsl = String::new();
        let hlsl_options = naga::back::hlsl::Options::default();
        naga::back::hlsl::Writer::new(&mut hlsl, &hlsl_options, &Default::default())
            .write(&module, &info, None)
            .map_err(|e| err("HLSL", e.to_string()))?;
        Ok(Translated { spirv: bytemuck::cast_slice(&spirv).to_vec(), msl, hlsl })
    }
}

pub struct Translated {
    pub spirv: Vec<u8>,
    pub msl: String,
    pub hlsl: String,
}
