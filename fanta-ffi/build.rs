//! Gives the shared library the soname `libfanta.so.0`. Programs linked against it record that
//! name, which `install.sh` installs as a link to the versioned file.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" || os.ends_with("bsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libfanta.so.0");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
