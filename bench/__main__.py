"""Run benchmarks: ``python -m bench`` runs all; ``python -m bench engine --customers 100000``
runs one with its own options."""

import sys

BENCHES = {
    "bgnbd": "bench.bench_bgnbd_fit",
    "engine": "bench.bench_engine",
    "ingest": "bench.bench_ingest",
    "plan_results": "bench.bench_plan_results",
    "plans": "bench.bench_plans",
    "screens": "bench.bench_screens",
}


def main() -> None:
    import importlib

    args = sys.argv[1:]
    if args and args[0] in BENCHES:
        names, rest = [args[0]], args[1:]
    else:
        names, rest = list(BENCHES), args
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        module = importlib.import_module(BENCHES[name])
        if name == "bgnbd":
            module.main(rest) if hasattr(module, "main") else module.run(1_000_000)
        else:
            module.main(rest)


if __name__ == "__main__":
    main()
