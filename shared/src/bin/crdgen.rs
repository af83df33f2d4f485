//! Prints a CRD as YAML: `cargo crdgen > crds/computeinstance.yaml`,
//! `cargo crdgen tenant > crds/tenant.yaml`.

fn main() {
    let yaml = match std::env::args().nth(1).as_deref() {
        None | Some("computeinstance") => cloudkit_shared::crd_yaml(),
        Some("tenant") => cloudkit_shared::tenant_crd_yaml(),
        Some(other) => {
            eprintln!("crdgen: unknown CRD {other:?}: use computeinstance or tenant");
            std::process::exit(2);
        }
    };
    match yaml {
        Ok(yaml) => print!("{yaml}"),
        Err(e) => {
            eprintln!("crdgen: {e}");
            std::process::exit(1);
        }
    }
}
