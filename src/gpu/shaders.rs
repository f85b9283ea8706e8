//! The one table naming every `.wgsl` file. Each kernel module is `common.wgsl` followed by its
//! own file, so shared structs and φ are written once.

/// `common.wgsl`: φ, φ', φ'' and the `Params` struct.
pub const COMMON: &str = include_str!("../../shaders/common.wgsl");
/// `pc.wgsl`: forward, errors, back_project, update, weight_grad.
pub const PC: &str = include_str!("../../shaders/pc.wgsl");
/// `adam.wgsl`: Adam.
pub const ADAM: &str = include_str!("../../shaders/adam.wgsl");
/// `hvp.wgsl`: the inference Hessian's vector product (after `pc.wgsl`, whose helpers it shares).
pub const HVP: &str = include_str!("../../shaders/hvp.wgsl");
/// `lanczos.wgsl`: Lanczos's vector operations over `hvp.wgsl`'s products.
pub const LANCZOS: &str = include_str!("../../shaders/lanczos.wgsl");

/// Every kernel module by name, as compiled (common prefix included).
pub fn modules() -> Vec<(&'static str, String)> {
    vec![
        ("pc", format!("{COMMON}\n{PC}")),
        ("adam", format!("{COMMON}\n{ADAM}")),
        ("hvp", format!("{COMMON}\n{PC}\n{HVP}")),
        ("lanczos", format!("{COMMON}\n{LANCZOS}")),
    ]
}
