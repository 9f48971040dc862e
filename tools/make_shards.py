#!/usr/bin/env python
"""Convert a registered dataset split into webdataset tar shards for streaming (DDP) training.

    python tools/make_shards.py --config configs/body_cpu.yaml --dataset synth_body --split train \
        --out data/shards/synth_body/train [--shard-size 1000] [key=value ...]

The dataset is read with the config's data section (``data.root``, ``data.sets``), exactly as training reads
it. Train on the result with ``data.shards=data/shards`` (then every set in ``data.train`` is read from
``data/shards/<name>/train``). A killed conversion continues where it stopped when started again.
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from tqdm import tqdm  # noqa: E402

from hmr.config import ConfigError, load_config  # noqa: E402
from hmr.data import build_dataset  # noqa: E402
from hmr.data.shards import write_shards  # noqa: E402
from hmr.utils.file_errors import describe_os_error  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML experiment file whose data section names the set")
    parser.add_argument("--dataset", required=True, help="registered dataset name (e.g. synth_body, freihand)")
    parser.add_argument("--split", default="train", choices=["train", "val", "test"])
    parser.add_argument("--out", required=True, help="output folder of the shards and index.json")
    parser.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    parser.add_argument("--no-shuffle", action="store_true", help="keep the source order (default: seeded shuffle)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample order")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. data.root=/data")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        dataset = build_dataset(args.dataset, args.split, cfg, augment=False)
        bar = tqdm(desc=f"shards {args.dataset}/{args.split}", unit="shard", dynamic_ncols=True)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        index = write_shards(dataset, Path(args.out), args.split, shard_size=args.shard_size,
                             shuffle_seed=None if args.no_shuffle else args.seed, on_shard=progress)
        bar.close()
    except (ConfigError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {describe_os_error(exc, Path(args.out))}", file=sys.stderr)
        return 4
    print(f"{index.num_samples} samples in {len(index.shards)} shards, {index.skipped_unreadable} unreadable "
          f"image(s) left out -> {args.out}/index.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
