"""Command-line tools and benchmarks."""
