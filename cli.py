"""Run the bench-ir command line from a clone: `python cli.py ...` equals `bench-ir ...`."""

from bench_ir.cli import main

if __name__ == "__main__":
    main()
