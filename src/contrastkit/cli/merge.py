"""``contrastkit merge A B ... --method M [--base BASE] --out DIR``: merge fine-tuned checkpoints into one model.

A thin shell over :func:`contrastkit.training.merge.merge_folders`. Each input
is a saved model folder (a run's ``final/``, a ``best-<metric>/`` folder, or
any sentence-transformers folder with safetensors weights); the merged folder
keeps the first model's tokenizer, pooling and modules. ``--method``:
``uniform`` (mean of the weights), ``task-arithmetic`` (base + scale x sum of
task vectors), ``ties`` (trim, elect sign, disjoint mean) or ``delta-guided``
(CoDiEmb's per-parameter weights from each model's deviation from the base).
All but ``uniform`` need ``--base``, the pre-trained model the inputs were
fine-tuned from. Incompatible models (other tensors, shapes or architecture)
are refused with the two folders and the first differing tensor, exit
status 2, nothing written. See ``docs/multitask.md``.

Example::

    contrastkit merge runs/sts/final runs/ir/final --method delta-guided \\
        --base all-MiniLM-L6-v2 --out runs/merged
"""

from __future__ import annotations

import argparse

from contrastkit.training.merge import METHODS, merge_folders


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "merge",
        help="merge fine-tuned checkpoints (uniform, task-arithmetic, ties, delta-guided) into one model",
        description="Merge model folders fine-tuned from one base into one model folder. Example: contrastkit merge "
        "runs/sts/final runs/ir/final --method delta-guided --base all-MiniLM-L6-v2 --out runs/merged",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("models", nargs="+", metavar="MODEL", help="model folders to merge (the first gives tokenizer etc.)")
    p.add_argument("--method", choices=METHODS, default="uniform", help="how to combine the weights")
    p.add_argument("--base", default=None, help="the pre-trained model folder (or alias) the inputs started from")
    p.add_argument("--out", required=True, metavar="DIR", help="where to write the merged model (written atomically)")
    p.add_argument(
        "--scale", type=float, default=None, help="task-vector scale (task-arithmetic: default 1/K; ties: default 1)"
    )
    p.add_argument("--density", type=float, default=0.2, help="ties: fraction of each task vector kept")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Merge as asked and print where the model was written. Returns the exit status."""
    out = merge_folders(
        args.models, args.out, method=args.method, base=args.base, scale=args.scale, density=args.density
    )
    print(f"wrote {out} ({args.method} merge of {len(args.models)} model(s))")
    return 0
