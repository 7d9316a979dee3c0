"""`python -m bench_ir ...` (also under torchrun) runs the bench-ir command line."""

from bench_ir.cli import main

main()
