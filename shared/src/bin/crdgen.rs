//! Prints the ComputeInstance CRD as YAML: `cargo crdgen > crds/computeinstance.yaml`.

fn main() {
    match cloudkit_shared::crd_yaml() {
        Ok(yaml) => print!("{yaml}"),
        Err(e) => {
            eprintln!("crdgen: {e}");
            std::process::exit(1);
        }
    }
}
