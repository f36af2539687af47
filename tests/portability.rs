//! Every shader is valid WGSL (on its own, or after the group reductions the host prepends,
//! both implementations) and translates to SPIR-V (Vulkan), MSL (Metal) and HLSL (DX12) with
//! naga, so Metal and DX12 portability is checked on Linux.

use tern::gpu::{Reductions, shaders};

#[test]
fn every_shader_translates_to_spirv_msl_and_hlsl() {
    assert!(!shaders::ALL.is_empty());
    for shader in shaders::ALL {
        let variants: &[Reductions] =
            if shader.group { &[Reductions::Tree, Reductions::Subgroup] } else { &[Reductions::Tree] };
        for &reductions in variants {
            let name = shader.label(reductions);
            let out = shader.translate(reductions).unwrap_or_else(|e| panic!("{e}"));
            assert!(out.spirv.len() > 100, "{name}: SPIR-V output too small");
            assert_eq!(&out.spirv[..4], &0x0723_0203u32.to_le_bytes(), "{name}: SPIR-V magic");
            assert!(out.msl.contains("kernel void"), "{name}: MSL has no kernel");
            assert!(out.hlsl.contains("[numthreads("), "{name}: HLSL has no compute entry");
        }
    }
}

#[test]
fn only_the_shaders_that_say_so_call_the_group_reductions() {
    for shader in shaders::ALL {
        let calls = shader.source.contains("group_sum(")
            || shader.source.contains("group_max(")
            || shader.source.contains("group_welford(")
            || shader.source.contains("split_range(");
        assert_eq!(calls, shader.group, "{}: calls the group reductions = {calls}", shader.name);
        if shader.group {
            assert!(shader.source.contains("override GROUP"), "{}: no GROUP override", shader.name);
        }
    }
}

#[test]
fn every_shader_file_is_listed_and_documented() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> =
        shaders::ALL.iter().chain(shaders::PARTS).map(|s| s.name.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "shaders/ and gpu::shaders::ALL + PARTS differ");
    for shader in shaders::ALL.iter().chain(shaders::PARTS) {
        let header = shader.source.lines().next().unwrap_or_default();
        assert!(
            header.starts_with(&format!("// {}.wgsl", shader.name)),
            "{}: missing header comment",
            shader.name
        );
        assert!(shader.source.contains("Bindings (group 0)"), "{}: header lists no bindings", shader.name);
    }
}
