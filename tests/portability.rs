//! Every shader is valid WGSL on its own and translates to SPIR-V (Vulkan), MSL (Metal) and
//! HLSL (DX12) with naga, so Metal and DX12 portability is checked on Linux.

use tern::gpu::shaders;

#[test]
fn every_shader_translates_to_spirv_msl_and_hlsl() {
    assert!(!shaders::ALL.is_empty());
    for shader in shaders::ALL {
        let out = shader.translate().unwrap_or_else(|e| panic!("{e}"));
        assert!(out.spirv.len() > 100, "{}: SPIR-V output too small", shader.name);
        assert_eq!(&out.spirv[..4], &0x0723_0203u32.to_le_bytes(), "{}: SPIR-V magic", shader.name);
        assert!(out.msl.contains("kernel void"), "{}: MSL has no kernel", shader.name);
        assert!(out.hlsl.contains("[numthreads("), "{}: HLSL has no compute entry", shader.name);
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
    let mut listed: Vec<String> = shaders::ALL.iter().map(|s| s.name.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "shaders/ and gpu::shaders::ALL differ");
    for shader in shaders::ALL {
        let header = shader.source.lines().next().unwrap_or_default();
        assert!(
            header.starts_with(&format!("// {}.wgsl", shader.name)),
            "{}: missing header comment",
            shader.name
        );
        assert!(shader.source.contains("Bindings (group 0)"), "{}: header lists no bindings", shader.name);
    }
}
