//! Checks that the committed `include/fanta.h` is what cbindgen generates from this crate, and
//! that its version macros match the crate version.
//!
//! After changing the C API, regenerate the header with
//! `FANTA_BLESS=1 cargo test -p fanta-ffi --test header` and commit it.

use std::path::{Path, PathBuf};

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn header_path() -> PathBuf {
    crate_dir().join("../include/fanta.h")
}

/// The version macros, placed after the includes of the generated header.
fn version_macros() -> String {
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let minor = env!("CARGO_PKG_VERSION_MINOR");
    let patch = env!("CARGO_PKG_VERSION_PATCH");
    let version = env!("CARGO_PKG_VERSION");
    format!(
        "\n/** The version of libfanta this header belongs to; `fanta_version()` returns the\n \
         * version of the library linked at run time. */\n\
         #define FANTA_VERSION_MAJOR {major}\n\
         #define FANTA_VERSION_MINOR {minor}\n\
         #define FANTA_VERSION_PATCH {patch}\n\
         #define FANTA_VERSION_STRING \"{version}\"\n\
         /** The version as one number for `#if` comparisons: major * 1000000 + minor * 1000 +\n \
         * patch, so 1.2.3 is 1002003. `fanta_version_number()` returns the same formula. */\n\
         #define FANTA_VERSION \\\n  \
         (FANTA_VERSION_MAJOR * 1000000 + FANTA_VERSION_MINOR * 1000 + FANTA_VERSION_PATCH)\n"
    )
}

fn generate() -> String {
    let mut config = cbindgen::Config::from_file(crate_dir().join("cbindgen.toml"))
        .expect("cbindgen.toml is readable and valid");
    config.after_includes = Some(version_macros());

    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir())
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut output = Vec::new();
    bindings.write(&mut output);
    String::from_utf8(output).expect("the generated header is UTF-8")
}

#[test]
fn committed_header_matches_generated() {
    let generated = generate();
    let path = header_path();

    if std::env::var_os("FANTA_BLESS").is_some_and(|value| value == "1") {
        std::fs::write(&path, &generated).expect("include/fanta.h is writable");
        return;
    }

    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/fanta.h differs from what cbindgen generates from fanta-ffi; regenerate it \
         with `FANTA_BLESS=1 cargo test -p fanta-ffi --test header` and commit the result"
    );
}

/// Returns the value of `#define NAME value` in `header`.
fn define<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("#define {name} ");
    header
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map(str::trim)
}

#[test]
fn version_macros_match_crate_version() {
    let header = std::fs::read_to_string(header_path()).expect("include/fanta.h is readable");

    let major = define(&header, "FANTA_VERSION_MAJOR");
    let minor = define(&header, "FANTA_VERSION_MINOR");
    let patch = define(&header, "FANTA_VERSION_PATCH");
    let string = define(&header, "FANTA_VERSION_STRING");

    assert_eq!(major, Some(env!("CARGO_PKG_VERSION_MAJOR")));
    assert_eq!(minor, Some(env!("CARGO_PKG_VERSION_MINOR")));
    assert_eq!(patch, Some(env!("CARGO_PKG_VERSION_PATCH")));
    assert_eq!(string, Some(concat!("\"", env!("CARGO_PKG_VERSION"), "\"")));
}

#[test]
fn version_number_formula() {
    assert_eq!(fanta::version_number("1", "2", "3"), 1_002_003);
    assert_eq!(fanta::version_number("0", "1", "0"), 1_000);
    assert_eq!(fanta::version_number("12", "999", "999"), 12_999_999);
    assert_eq!(
        fanta::fanta_version_number(),
        fanta::version_number(
            env!("CARGO_PKG_VERSION_MAJOR"),
            env!("CARGO_PKG_VERSION_MINOR"),
            env!("CARGO_PKG_VERSION_PATCH"),
        )
    );
}
