//! Load for the benchmarks (placeholder until the storm generator lands).
