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

/// How a slab entry `idx` maps to (kk, rr) across a workgroup's lanes (pc.wgsl's `slab_k` and
/// `slab_r`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Map {
    /// k fastest: `(idx % TK, idx / TK)`.
    K,
    /// rows/columns fastest: `(idx / TM, idx % TM)`.
    R,
}

/// Where an operand's entry (k, r) lives in memory: along k (`r·ld + k`) or along r (`k·ld + r`).
#[derive(Clone, Copy, Debug)]
enum Runs {
    AlongK,
    AlongR,
}

fn slab(map: Map, idx: u32, tm: u32, tk: u32) -> (u32, u32) {
    match map {
        Map::K => (idx % tk, idx / tk),
        Map::R => (idx / tm, idx % tm),
    }
}

const WARP: u32 = 32;
const BANKS: u32 = 32;

/// The worst bank conflict of the staging stores `s[kk·(TM + pad) + rr]` over every warp and load
/// of a TM×TK slab: the most distinct addresses one bank takes in one warp-wide store.
fn store_ways(map: Map, tm: u32, tk: u32, pad: u32) -> usize {
    let threads = (tm / 4) * (tm / 4);
    let mut worst = 0;
    for q in 0..(tm * tk) / threads {
        for warp in (0..threads).step_by(WARP as usize) {
            let mut per_bank = vec![std::collections::BTreeSet::new(); BANKS as usize];
            for lane in warp..(warp + WARP).min(threads) {
                let (kk, rr) = slab(map, lane + q * threads, tm, tk);
                let addr = kk * (tm + pad) + rr;
                per_bank[(addr % BANKS) as usize].insert(addr);
            }
            worst = worst.max(per_bank.iter().map(|s| s.len()).max().unwrap_or(0));
        }
    }
    worst
}

/// The most 32-byte memory sectors one warp's staging loads touch (32 lanes × 4 bytes need 4 when
/// contiguous and aligned), for an operand laid out as `runs` with leading dimension `ld`.
fn sectors(map: Map, runs: Runs, tm: u32, tk: u32, ld: u32) -> usize {
    let threads = (tm / 4) * (tm / 4);
    let mut worst = 0;
    for q in 0..(tm * tk) / threads {
        for warp in (0..threads).step_by(WARP as usize) {
            let touched: std::collections::BTreeSet<u32> = (warp..(warp + WARP).min(threads))
                .map(|lane| {
                    let (kk, rr) = slab(map, lane + q * threads, tm, tk);
                    let word = match runs {
                        Runs::AlongK => rr * ld + kk,
                        Runs::AlongR => kk * ld + rr,
                    };
                    word * 4 / 32
                })
                .collect();
            worst = worst.max(touched.len());
        }
    }
    worst
}

/// The worst conflict of `fma_tile`'s reads `s[kk·SP + lid.{y,x} + i·TM/4]`: lanes sharing an
/// address are one broadcast.
fn read_ways(tm: u32, pad: u32, by_y: bool) -> usize {
    let side = tm / 4;
    let threads = side * side;
    let mut worst = 0;
    for warp in (0..threads).step_by(WARP as usize) {
        for i in 0..4 {
            let mut per_bank = vec![std::collections::BTreeSet::new(); BANKS as usize];
            for lane in warp..(warp + WARP).min(threads) {
                let (x, y) = (lane % side, lane / side);
                let addr = 3 * (tm + pad) + if by_y { y } else { x } + i * side;
                per_bank[(addr % BANKS) as usize].insert(addr);
            }
            worst = worst.max(per_bank.iter().map(|s| s.len()).max().unwrap_or(0));
        }
    }
    worst
}

/// The staging map of operand `a` and `b` of a tile function, read from the WGSL: the variable a
/// store `sa[v.x * sp() + v.y]` uses, and the `slab_k`/`slab_r` that variable comes from.
fn staging_maps(src: &str, function: &str) -> (Map, Map) {
    let start = src.find(&format!("fn {function}(")).unwrap_or_else(|| panic!("fn {function} not in the shaders"));
    let body = &src[start..start + src[start..].find("\n}\n").expect("end of function")];
    let map_of = |slab_var: &str| {
        let line = body
            .lines()
            .find(|l| l.contains(&format!("{slab_var}[")) && l.contains("* sp() +"))
            .unwrap_or_else(|| panic!("{function}: no staging store into {slab_var}"));
        let var =
            line.trim().trim_start_matches(&format!("{slab_var}[")).split('.').next().expect("variable").to_string();
        let def = body
            .lines()
            .find(|l| l.trim().starts_with(&format!("let {var} = slab_")))
            .unwrap_or_else(|| panic!("{function}: `{var}` of {slab_var}'s store does not come from slab_k/slab_r"));
        if def.contains("slab_k(") {
            Map::K
        } else {
            assert!(def.contains("slab_r("), "{function}: {def}");
            Map::R
        }
    };
    (map_of("sa"), map_of("sb"))
}

/// The matrix kernels' staging, lane by lane on a 32-lane warp with 32 four-byte banks: every
/// store into workgroup memory conflict-free, every global load of an operand coalesced for that
/// operand's layout, for the default tiles and the ones `PCLAB_GPU_TILE` can ask for. The maps are
/// read from the shaders, the slab functions pinned to the formulas modelled here. Negative control:
/// the layout these kernels had before (k fastest for every operand, no padding) is caught.
#[test]
fn matrix_kernel_staging_is_conflict_free_and_coalesced() {
    let src: String = shaders::modules().into_iter().map(|(_, s)| s).collect::<Vec<_>>().join("\n");
    for pinned in [
        "fn slab_k(idx: u32) -> vec2<u32> { return vec2<u32>(idx % TK, idx / TK); }",
        "fn slab_r(idx: u32) -> vec2<u32> { return vec2<u32>(idx / TM, idx % TM); }",
        "fn sp() -> u32 { return TM + PAD; }",
        "let ab = kk * stride + lid.y;",
        "let bb = kk * stride + lid.x;",
        "let bv = vec4<f32>(sb[bb], sb[bb + side], sb[bb + 2u * side], sb[bb + 3u * side]);",
    ] {
        assert!(src.contains(pinned), "the shaders no longer say `{pinned}`; update this model");
    }
    // Each product's operands and how they lie in memory (pc.wgsl's buffer list), with a leading
    // dimension that is a multiple of 8 words (N = 128, D = 784).
    let products = [
        ("pred_tile", Runs::AlongK, Runs::AlongK), // in_l (B, in), W_l (out, in) along k = in
        ("back_tile", Runs::AlongK, Runs::AlongR), // e_l (B, out) along k = out; W_l (k = out, in)
        ("wgrad_tile", Runs::AlongR, Runs::AlongR), // e_l (k = B, out), in_l (k = B, in)
        ("jvp_tile", Runs::AlongK, Runs::AlongK),  // as pred_tile
    ];
    let maps: Vec<(Map, Map)> = products.iter().map(|(f, _, _)| staging_maps(&src, f)).collect();
    let mut tiles = vec![(pclab::gpu::TILE, pclab::gpu::TILE_K)];
    // TK ≥ 8: a slab row of fewer than 8 words cannot fill a 32-byte sector whatever the map.
    for tm in [32, 64] {
        for tk in [8, 16, 32, 64] {
            if (tm * tk) % ((tm / 4) * (tm / 4)) == 0 {
                tiles.push((tm, tk));
            }
        }
    }
    for &(tm, tk) in &tiles {
        let pad = pclab::gpu::slab_pad(tk);
        for ((f, runs_a, runs_b), (map_a, map_b)) in products.iter().zip(&maps) {
            for (operand, map, runs) in [("A", *map_a, *runs_a), ("B", *map_b, *runs_b)] {
                let ways = store_ways(map, tm, tk, pad);
                assert_eq!(ways, 1, "{f} operand {operand} (TM={tm}, TK={tk}, PAD={pad}): stores conflict {ways} ways");
                let s = sectors(map, runs, tm, tk, 128);
                assert!(
                    s <= 4,
                    "{f} operand {operand} (TM={tm}, TK={tk}): a warp's loads touch {s} sectors, 4 would do"
                );
            }
        }
        for by_y in [true, false] {
            assert_eq!(read_ways(tm, pad, by_y), 1, "fma_tile's reads conflict (TM={tm}, TK={tk})");
        }
    }
    // Negative control: k fastest everywhere, rows TM apart.
    let (tm, tk) = (32, 16);
    assert_eq!(store_ways(Map::K, tm, tk, 0), 16, "the old stores conflicted 16 ways");
    assert_eq!(sectors(Map::K, Runs::AlongR, tm, tk, 128), 16, "the old back-projection read W in 16 sectors per warp");
    let old_reads = |tm: u32| {
        let side = tm / 4;
        let mut banks = std::collections::BTreeMap::<u32, std::collections::BTreeSet<u32>>::new();
        for lane in 0..WARP.min(side * side) {
            let addr = (lane % side) * 4;
            banks.entry(addr % BANKS).or_default().insert(addr);
        }
        banks.values().map(|s| s.len()).max().unwrap_or(0)
    };
    assert_eq!(old_reads(64), 2, "the old 4-consecutive register tile read sb 2 ways at TM = 64");
    println!("staging: conflict-free and coalesced for {tiles:?}; the old layout: 16-way stores, 16-sector loads");
}
