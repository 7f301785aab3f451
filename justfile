# Mirrors .ci/run.

default: lint test

build:
    cargo build --workspace --all-targets

test:
    cargo test --workspace

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

bench:
    cargo bench --workspace

demo:
    cargo run --release -p callrec -- demo
