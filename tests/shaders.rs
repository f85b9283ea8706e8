//! Every WGSL module parses and validates with naga (the shader compiler inside wgpu), the
//! `Params` struct has the layout of its Rust mirror, and the activation codes the kernels switch
//! on are the CPU reference's.

use pclab::gpu::layout::Params;
use pclab::gpu::shaders;
use pclab::pcn::Activation;
use std::mem::offset_of;

fn validate(name: &str, src: &str) -> naga::Module {
    let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{name}:\n{}", e.emit_to_string(src)));
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    module
}

#[test]
fn every_shader_module_validates() {
    validate("common.wgsl", shaders::COMMON);
    let modules = shaders::modules();
    assert!(modules.len() >= 2);
    for (name, src) in &modules {
        validate(name, src);
    }
    // Every .wgsl file in shaders/ is compiled as part of some module.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for entry in std::fs::read_dir(dir).expect("shaders/").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("readable");
        assert!(modules.iter().any(|(_, src)| src.contains(&text)), "{} is not in any module", entry.path().display());
    }
}

#[test]
fn params_layout_matches_its_rust_mirror() {
    let module = validate("common.wgsl", shaders::COMMON);
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).expect("layout");
    let (handle, ty) = module.types.iter().find(|(_, t)| t.name.as_deref() == Some("Params")).expect("struct Params");
    let naga::TypeInner::Struct { members, span } = &ty.inner else { panic!("Params is not a struct") };
    assert_eq!(*span as usize, std::mem::size_of::<Params>(), "size");
    assert_eq!(layouter[handle].size as usize, std::mem::size_of::<Params>());
    let rust = [
        ("batch", offset_of!(Params, batch)),
        ("d", offset_of!(Params, d)),
        ("n", offset_of!(Params, n)),
        ("o", offset_of!(Params, o)),
        ("h", offset_of!(Params, h)),
        ("act", offset_of!(Params, act)),
        ("skips", offset_of!(Params, skips)),
        ("layer", offset_of!(Params, layer)),
        ("from_layer", offset_of!(Params, from_layer)),
        ("step", offset_of!(Params, step)),
        ("update", offset_of!(Params, update)),
        ("count", offset_of!(Params, count)),
        ("a_in", offset_of!(Params, a_in)),
        ("a_h", offset_of!(Params, a_h)),
        ("a_out", offset_of!(Params, a_out)),
        ("eta_z", offset_of!(Params, eta_z)),
        ("lr", offset_of!(Params, lr)),
        ("beta1", offset_of!(Params, beta1)),
        ("beta2", offset_of!(Params, beta2)),
        ("eps", offset_of!(Params, eps)),
        ("bc1", offset_of!(Params, bc1)),
        ("bc2", offset_of!(Params, bc2)),
        ("grad_scale", offset_of!(Params, grad_scale)),
        ("pad1", offset_of!(Params, pad1)),
    ];
    assert_eq!(members.len(), rust.len(), "field count");
    for (m, (name, offset)) in members.iter().zip(rust) {
        assert_eq!((m.name.as_deref(), m.offset as usize), (Some(name), offset), "field {name}");
    }
}

#[test]
fn activation_codes_match_the_cpu_reference() {
    for act in Activation::ALL {
        let line = format!("const ACT_{}: u32 = {}u;", act.name().to_uppercase(), act.code());
        assert!(shaders::COMMON.contains(&line), "common.wgsl lacks `{line}`");
    }
    // φ, φ' and φ'' switch on those names: every activation but linear (the default) has a case
    // in each, and no case is a literal.
    for f in ["fn phi(", "fn dphi(", "fn ddphi("] {
        let at = shaders::COMMON.find(f).unwrap_or_else(|| panic!("common.wgsl lacks {f}"));
        let body = &shaders::COMMON[at..];
        let body = &body[..body.find("\n}").expect("function end")];
        for line in body.lines().filter(|l| l.trim_start().starts_with("case ")) {
            let label = line.trim_start()["case ".len()..].split(':').next().expect("case label").trim();
            assert!(label.starts_with("ACT_"), "{f}…): `case {label}` is a literal; use the ACT_* constants");
        }
        let cases = |name: &str| body.contains(&format!("case ACT_{}:", name.to_uppercase()));
        let needed: Vec<_> = Activation::ALL
            .iter()
            .filter(|a| **a != Activation::Linear)
            .filter(|a| f != "fn ddphi(" || !matches!(a, Activation::Relu | Activation::LeakyRelu))
            .filter(|a| !cases(a.name()))
            .collect();
        assert!(needed.is_empty(), "{f}…) has no case for {needed:?}");
    }
}
