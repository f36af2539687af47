//! Every WGSL file of the project, embedded at compile time. Each shader in `ALL` is valid WGSL
//! after the parts the host prepends to it: its fixed `parts` (lanes.wgsl for the lanes
//! convolutions) and, when it calls the group reductions, `group.wgsl` and one of their
//! implementations (`Reductions`). `<op>_tiled` files hold the tiled family's entry points of
//! `<op>` (same bindings and uniforms).

use super::{GpuError, Result};
use std::borrow::Cow;

pub struct ShaderFile {
    /// File stem: `shaders/<name>.wgsl`.
    pub name: &'static str,
    pub source: &'static str,
    /// Parts (from `PARTS`) prepended to it, in order, whatever the reductions.
    pub parts: &'static [&'static ShaderFile],
    /// Calls the group_* reductions of group.wgsl.
    pub group: bool,
}

/// Which implementation of group.wgsl's reductions a shader is built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reductions {
    /// group_tree.wgsl: a halving tree in workgroup memory
    Tree,
    /// group_subgroup.wgsl: subgroup operations (needs the adapter's SUBGROUP feature)
    Subgroup,
}

impl Reductions {
    /// What a family runs: subgroup operations in the tiled family on adapters with subgroups,
    /// trees otherwise (CPU drivers, which the blocked family is for, gain nothing from them).
    pub(crate) fn of(family: super::Family, subgroups: bool) -> Reductions {
        match family == super::Family::Tiled && subgroups {
            true => Reductions::Subgroup,
            false => Reductions::Tree,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Reductions::Tree => "workgroup-memory trees",
            Reductions::Subgroup => "subgroup operations",
        }
    }

    /// One word for case names and test names: "tree" or "subgroup".
    pub fn path(self) -> &'static str {
        match self {
            Reductions::Tree => "tree",
            Reductions::Subgroup => "subgroup",
        }
    }

    fn file(self) -> &'static ShaderFile {
        match self {
            Reductions::Tree => &GROUP_TREE,
            Reductions::Subgroup => &GROUP_SUBGROUP,
        }
    }
}

macro_rules! shader {
    ($konst:ident, $name:literal) => {
        shader!($konst, $name, false, []);
    };
    ($konst:ident, $name:literal, $group:literal) => {
        shader!($konst, $name, $group, []);
    };
    ($konst:ident, $name:literal, $group:literal, [$($part:ident),*]) => {
        pub const $konst: ShaderFile = ShaderFile {
            name: $name,
            source: include_str!(concat!("../../shaders/", $name, ".wgsl")),
            parts: &[$(&$part),*],
            group: $group,
        };
    };
}

shader!(ACTIVATION, "activation");
shader!(BATCHNORM, "batchnorm", true);
shader!(CONV2D, "conv2d");
shader!(CONV2D_TILED, "conv2d_tiled");
shader!(CONV2D_LANES, "conv2d_lanes", false, [LANES]);
shader!(LINEAR, "linear");
shader!(LINEAR_TILED, "linear_tiled");
shader!(LOSS, "loss", true);
shader!(OPTIM, "optim");
shader!(PACKED_CONV, "packed_conv");
shader!(PACKED_CONV_LANES, "packed_conv_lanes", false, [LANES]);
shader!(PACKED_CONV_TILED, "packed_conv_tiled");
shader!(PACKED_LINEAR, "packed_linear");
shader!(PACKED_LINEAR_TILED, "packed_linear_tiled");
shader!(POOL, "pool");
shader!(REDUCE, "reduce", true);
shader!(ROOFLINE, "roofline");
shader!(SHORTCUT, "shortcut");
shader!(STTN, "sttn", true);
shader!(TTN, "ttn", true);
shader!(TERNARY_MASKS, "ternary_masks");
shader!(TTQ, "ttq", true);
shader!(TWN, "twn", true);
shader!(GROUP, "group");
shader!(GROUP_TREE, "group_tree");
shader!(GROUP_SUBGROUP, "group_subgroup");
shader!(LANES, "lanes");

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

/// The parts the host prepends to shaders (not shaders on their own): the group reductions and
/// their implementations, and the lanes convolutions' register block.
pub const PARTS: &[&ShaderFile] = &[&GROUP, &GROUP_TREE, &GROUP_SUBGROUP, &LANES];

impl ShaderFile {
    /// What is prepended to the file: its parts, then group.wgsl and the `reductions`
    /// implementation if it calls them.
    fn prefix(&self, reductions: Reductions) -> Vec<&'static ShaderFile> {
        let mut parts = self.parts.to_vec();
        if self.group {
            parts.extend([&GROUP, reductions.file()]);
        }
        parts
    }

    /// The WGSL the device compiles: the file itself, after its prefix.
    pub fn wgsl(&self, reductions: Reductions) -> Cow<'static, str> {
        let prefix = self.prefix(reductions);
        if prefix.is_empty() {
            return Cow::Borrowed(self.source);
        }
        let mut sources: Vec<&str> = prefix.iter().map(|p| p.source).collect();
        sources.push(self.source);
        Cow::Owned(sources.join("\n"))
    }

    /// "shaders/ttq.wgsl (after group.wgsl, group_subgroup.wgsl)": where an error in
    /// `wgsl(reductions)` lies.
    pub fn label(&self, reductions: Reductions) -> String {
        let prefix = self.prefix(reductions);
        if prefix.is_empty() {
            return format!("shaders/{}.wgsl", self.name);
        }
        let after: Vec<String> = prefix.iter().map(|p| format!("{}.wgsl", p.name)).collect();
        format!("shaders/{}.wgsl (after {})", self.name, after.join(", "))
    }

    /// Parse and validate `wgsl(reductions)` with naga, naming the file and line of any error.
    pub fn parse(&self, reductions: Reductions) -> Result<(naga::Module, naga::valid::ModuleInfo)> {
        let err = |reason: String| GpuError::Shader { shader: self.label(reductions), reason };
        let source = self.wgsl(reductions);
        let module = naga::front::wgsl::parse_str(&source).map_err(|e| err(e.emit_to_string(&source)))?;
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .map_err(|e| err(e.emit_to_string(&source)))?;
        Ok((module, info))
    }

    /// Translate `wgsl(reductions)` to SPIR-V (bytes), MSL and HLSL source, as the Vulkan, Metal
    /// and DX12 backends would, with `override` constants at their defaults.
    pub fn translate(&self, reductions: Reductions) -> Result<Translated> {
        let err = |target: &str, reason: String| GpuError::Shader {
            shader: self.label(reductions),
            reason: format!("{target}: {reason}"),
        };
        let (module, info) = self.parse(reductions)?;
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
