//! Every shader resolves from its import line alone and is valid WGSL, and every variant the host
//! compiles (each implementation of the group reductions, each value of the pipeline constants
//! that pick code paths, each tile of the tiled family) translates to SPIR-V (Vulkan), MSL
//! (Metal) and HLSL (DX12) with naga, so Metal and DX12 portability is checked on Linux.
//!
//! `TERN_WGSL_OUT=DIR` writes each shader as the device compiles it (`<name>.<reductions>.wgsl`),
//! for the naga CLI or an editor.

use tern::internals::gpu::{Reductions, shaders};

fn shader_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders")
}

/// The implementations a shader is built with: both if it imports the group reductions.
fn reductions_of(shader: &shaders::ShaderFile) -> &'static [Reductions] {
    if shader.reduces() { &[Reductions::Tree, Reductions::Subgroup] } else { &[Reductions::Tree] }
}

#[test]
fn every_variant_translates_to_spirv_msl_and_hlsl() {
    assert!(!shaders::ALL.is_empty());
    // Two threads: the larger files take a few hundred variants each.
    let counts: Vec<Vec<(String, usize)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|w| {
                scope.spawn(move || {
                    let mut counts = Vec::new();
                    for shader in shaders::ALL.iter().skip(w).step_by(2) {
                        for &reductions in reductions_of(shader) {
                            let (module, info) = shader.parse(reductions).unwrap_or_else(|e| panic!("{e}"));
                            let variants = shader.variants(&module);
                            for constants in &variants {
                                let name = format!("{} {constants:?}", shader.label(reductions));
                                let out = shader
                                    .translate(&module, &info, reductions, constants)
                                    .unwrap_or_else(|e| panic!("{e}"));
                                assert!(out.spirv.len() > 100, "{name}: SPIR-V output too small");
                                assert_eq!(&out.spirv[..4], &0x0723_0203u32.to_le_bytes(), "{name}: magic");
                                assert!(out.msl.contains("kernel void"), "{name}: MSL has no kernel");
                                assert!(
                                    out.hlsl.contains("[numthreads("),
                                    "{name}: HLSL has no compute entry"
                                );
                            }
                            counts.push((format!("{}/{reductions:?}", shader.name), variants.len()));
                        }
                    }
                    counts
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let counts: std::collections::HashMap<String, usize> = counts.into_iter().flatten().collect();
    // The constants each family of kernels is specialised by (see shaders::MODES, Tile::all).
    let tiles = tern::internals::gpu::Tile::all().len();
    assert_eq!(tiles, 45);
    for (shader, want) in [
        // STRIDE, BLOCK_CH, ACCUMULATE, WEIGHT_BLOCK, VEC_ROWS, SOURCE_BN, ROWS
        ("conv2d_lanes/Tree", 2 * 2 * 2 * 2 * 3 * 2 * 3),
        // STRIDE, BLOCK_CH, ACCUMULATE, RELU, RESIDUAL, ROWS, WG_LANES, INTERLEAVED, VEC_ROWS
        ("packed_conv_lanes/Tree", 2 * 2 * 2 * 2 * 3 * 3 * 2 * 2 * 3),
        ("batchnorm/Tree", 2 * 3 * 3 * 2), // RELU, POOL, RESIDUAL, ACCUMULATE
        // SYMMETRIC, RESIDUAL, RELU, BLOCK_CH, NEXT, PIXELS, PAIRS, BYTES
        ("bitplane_lanes/Tree", 2 * 3 * 2 * 2 * 3 * 3 * 3 * 2),
        ("batchnorm/Subgroup", 2 * 3 * 3 * 2),
        ("conv2d_tiled/Tree", tiles),
        ("linear_tiled/Tree", tiles),
        ("packed_conv_tiled/Tree", tiles),
        ("packed_linear_tiled/Tree", tiles),
        ("conv2d/Tree", 1),
        ("ttq/Subgroup", 1),
    ] {
        assert_eq!(counts.get(shader), Some(&want), "variants of {shader}");
    }
}

/// The pipeline constants the host passes are among those translated: what `Gpu::kernel_with`
/// checks before it compiles.
#[test]
fn the_host_compiles_only_translated_constants() {
    use tern::internals::ops::conv2d::lanes_constants;
    for stride in [1, 2] {
        for channels in [3, 8, 9, 64] {
            assert!(shaders::known_constants(&lanes_constants(stride, channels)));
        }
    }
    assert!(shaders::known_constants(&[
        ("RELU", 1.0),
        ("POOL", 2.0),
        ("RESIDUAL", 1.0),
        ("ACCUMULATE", 0.0)
    ]));
    assert!(!shaders::known_constants(&[("STRIDE", 3.0)]));
    assert!(!shaders::known_constants(&[("UNROLL", 1.0)]));
    assert!(!shaders::known_constants(&[
        ("TILE_M", 64.0),
        ("TILE_N", 64.0),
        ("TILE_K", 12.0),
        ("WG", 256.0)
    ]));
    let gpu = tern::internals::gpu::Gpu::new(&Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let err = gpu.kernel_with(&shaders::CONV2D_LANES, "forward", &[("STRIDE", 3.0)]).err().unwrap();
    assert!(err.to_string().contains("conv2d_lanes/forward[STRIDE=3]"), "{err}");
}

/// What any tool does with a file: read its import line, put the named files (after their own
/// imports, each once; a choice `a|b` resolved to `pick`) before it. `read` gives a file's text.
fn resolve(file: &str, pick: &str, read: &dyn Fn(&str) -> String, done: &mut Vec<String>) -> String {
    let source = read(file);
    let mut out = String::new();
    if let Some(list) = source.lines().next().unwrap_or_default().strip_prefix(shaders::IMPORT) {
        for item in list.split_whitespace() {
            let chosen = item.split('|').find(|f| item == *f || *f == pick).unwrap().to_string();
            if !done.contains(&chosen) {
                done.push(chosen.clone());
                out += &resolve(&chosen, pick, read, done);
                out += "\n";
            }
        }
    }
    out + &source
}

fn pick(reductions: Reductions) -> &'static str {
    match reductions {
        Reductions::Tree => "group_tree.wgsl",
        Reductions::Subgroup => "group_subgroup.wgsl",
    }
}

fn validates(source: &str) -> bool {
    naga::front::wgsl::parse_str(source).ok().is_some_and(|m| {
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .validate(&m)
            .is_ok()
    })
}

/// Each shader, resolved from the files on disk by its import line alone, is what the host
/// compiles and validates with naga; a shader without imports validates on its own.
#[test]
fn every_shader_resolves_from_its_import_line() {
    let out_dir = std::env::var_os("TERN_WGSL_OUT").map(std::path::PathBuf::from);
    let from_disk = |f: &str| std::fs::read_to_string(shader_dir().join(f)).unwrap();
    for shader in shaders::ALL {
        for &reductions in reductions_of(shader) {
            let file = format!("{}.wgsl", shader.name);
            let resolved = resolve(&file, pick(reductions), &from_disk, &mut Vec::new());
            let host = shader.wgsl(reductions).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(resolved, host, "{file}: the host compiles other than its import line says");
            assert!(validates(&resolved), "{}", shader.parse(reductions).err().unwrap());
            if let Some(dir) = &out_dir {
                std::fs::create_dir_all(dir).unwrap();
                std::fs::write(dir.join(format!("{}.{}.wgsl", shader.name, reductions.path())), &host)
                    .unwrap();
            }
        }
        if shader.imports().is_empty() {
            assert!(validates(shader.source), "{}.wgsl does not validate on its own", shader.name);
        }
    }
}

/// The names a file declares at module scope (functions, variables, overrides, constants and
/// structs), each with whether it is a function.
fn declared(source: &str) -> Vec<(String, bool)> {
    let mut names = Vec::new();
    for line in source.lines() {
        let rest = ["fn ", "override ", "const ", "struct ", "var "]
            .iter()
            .find_map(|k| line.strip_prefix(k))
            .or_else(|| line.strip_prefix("var<").and_then(|r| r.split_once("> ")).map(|(_, r)| r));
        if let Some(rest) = rest {
            let name = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            names.push((name, line.starts_with("fn ")));
        }
    }
    names
}

/// Whether `source`, comments left out, uses `name`: as a word, or called if it is a
/// `function`.
fn uses(source: &str, name: &str, function: bool) -> bool {
    let code: Vec<&str> = source.lines().map(|l| l.split("//").next().unwrap_or_default()).collect();
    let code = code.join("\n");
    let word = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(name).any(|(i, _)| {
        let before = code[..i].chars().next_back().is_none_or(|c| !word(c));
        let after = code[i + name.len()..].trim_start().chars().next();
        before && after.is_none_or(|c| !word(c)) && (!function || after == Some('('))
    })
}

/// Each file's import line names exactly the parts whose declarations it uses (not those that
/// only reach it through another part), and every part is imported.
#[test]
fn each_import_line_names_the_parts_the_file_uses() {
    let mut imported = std::collections::HashSet::new();
    for file in shaders::ALL.iter().chain(shaders::PARTS) {
        let own = declared(file.source);
        let imports: Vec<&str> = file.imports().into_iter().flatten().collect();
        for part in shaders::PARTS.iter().filter(|p| p.name != file.name) {
            let used: Vec<String> = declared(part.source)
                .into_iter()
                .filter(|(n, f)| !own.iter().any(|(o, _)| o == n) && uses(file.source, n, *f))
                .map(|(n, _)| n)
                .collect();
            let named = imports.contains(&format!("{}.wgsl", part.name).as_str());
            assert_eq!(
                !used.is_empty(),
                named,
                "{}.wgsl: uses {used:?} of {}.wgsl, import line {:?}",
                file.name,
                part.name,
                file.imports()
            );
            if named {
                imported.insert(part.name);
            }
        }
    }
    for part in shaders::PARTS {
        assert!(imported.contains(part.name), "{}.wgsl is imported by no file", part.name);
    }
}

#[test]
fn the_shaders_that_call_the_group_reductions_import_them() {
    for shader in shaders::ALL {
        let calls = ["group_sum(", "group_max(", "group_welford(", "split_range("]
            .iter()
            .any(|f| shader.source.contains(f));
        assert_eq!(calls, shader.reduces(), "{}: calls the group reductions = {calls}", shader.name);
        if calls {
            assert!(shader.source.contains("override GROUP"), "{}: no GROUP override", shader.name);
        }
    }
}

#[test]
fn every_shader_file_is_listed_and_documented() {
    let mut on_disk: Vec<String> = std::fs::read_dir(shader_dir())
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
        let title = shader.source.lines().find(|l| !l.starts_with(shaders::IMPORT)).unwrap_or_default();
        assert!(
            title.starts_with(&format!("// {}.wgsl", shader.name)),
            "{}: missing header comment",
            shader.name
        );
        assert!(shader.source.contains("Bindings (group 0)"), "{}: header lists no bindings", shader.name);
    }
}

/// The generated parts (shaders/*_unrolled.wgsl) are what src/gpu/unrolled.rs writes;
/// `TERN_BLESS=1` rewrites them.
#[test]
fn unrolled_parts_are_generated() {
    for (file, generate) in tern::internals::gpu::unrolled::FILES {
        let path = shader_dir().join(file);
        let want = generate();
        if std::env::var_os("TERN_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let got = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(got == want, "shaders/{file} is stale: rerun with TERN_BLESS=1");
        assert!(shaders::PARTS.iter().any(|p| format!("{}.wgsl", p.name) == *file), "{file} is no part");
    }
}
