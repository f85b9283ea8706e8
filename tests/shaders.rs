//! Every WGSL file parses and validates with naga (the shader compiler inside wgpu), and the
//! activation codes the kernels switch on are the CPU reference's.

use pclab::pcn::Activation;
use std::path::Path;

fn shaders() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .expect("shaders/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).expect("readable")))
        .collect();
    v.sort();
    v
}

#[test]
fn every_shader_validates() {
    let all = shaders();
    assert!(!all.is_empty(), "no .wgsl files in shaders/");
    for (name, src) in all {
        let module =
            naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{name}:\n{}", e.emit_to_string(&src)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
}

#[test]
fn activation_codes_match_the_cpu_reference() {
    let common = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders/common.wgsl"))
        .expect("shaders/common.wgsl");
    for act in Activation::ALL {
        let line = format!("const ACT_{}: u32 = {}u;", act.name().to_uppercase(), act.code());
        assert!(common.contains(&line), "common.wgsl lacks `{line}`");
    }
}
