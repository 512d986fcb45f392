"""``edgeface train``: DLDL-v2 (and any registered task) training from the command line.

Settings come from the paper-recipe YAML for the task (``train/configs/dldl_<task>.yaml``) or ``--config``,
then the flags given here.
"""

from __future__ import annotations

import argparse


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Data-set flags shared by ``edgeface train`` and ``edgeface eval``."""
    g = parser.add_argument_group("data")
    g.add_argument("--data", help="data set path (folder or list file); train: omit for the built-in SYNTHETIC set")
    g.add_argument("--format", help="utkface | csv | morph | fgnet | scut | celeba | attributes-csv (default utkface)")
    g.add_argument("--image-col", help="CSV column with image paths (relative to the CSV; default image)")
    g.add_argument("--label-col", help="CSV column with the label (default label)")
    g.add_argument("--std-col", help="CSV column with the label's std, e.g. the raters' (default label_std if present)")
    g.add_argument("--image-root", help="folder the MORPH / SCUT image names are relative to")
    g.add_argument("--aligned", action="store_true", default=None,
                   help="images are already aligned chips (UTKFace, CelebA aligned): skip detection")
    g.add_argument("--detector", help="YuNet face detector ONNX used to align unaligned images")
    g.add_argument("--strict", action="store_true", default=None, help="fail on the first bad item instead of skipping")
    g.add_argument("--max-images", type=int, help="use at most this many images (seeded random subset)")
    g.add_argument("--cache-dir", help="cache root, aligned crops go to its faces/ (default $EDGEFACE_CACHE, else "
                   "$XDG_CACHE_HOME/edgeface, else ~/.cache/edgeface)")
    g.add_argument("--val-fraction", type=float, help="validation share of a seeded random split (default 0.2)")
    g.add_argument("--folds", type=int, help="k-fold split instead (grouped by person where ids exist)")
    g.add_argument("--fold", type=int, help="which fold (or person, with --protocol lopo) is validation")
    g.add_argument("--protocol", choices=["auto", "lopo"], help="auto (own split, else seeded) or lopo (FG-NET)")
    g.add_argument("--seed", type=int, help="seed for split, sampling, augmentation and init (default 0)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML recipe: a path or a name in train/configs/ (default dldl_<task>)")
    parser.add_argument("--model", help="model zoo name (edgeface models), e.g. thinagenet, tinyagenet")
    parser.add_argument("--task", "--label-space", dest="task", choices=["age", "attractiveness", "attributes"],
                        help="what to learn (default age; attributes for an attribute model such as dmmcnn)")
    parser.add_argument("--label-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="label-space ends (attractiveness default 1 7; SCUT-FBP5500 uses 1 5)")
    parser.add_argument("--sigma", type=float, help="label-distribution std where the data gives none")
    parser.add_argument("--lambda", dest="lam", type=float, help="weight of the L1 expectation loss (default 1)")
    add_data_arguments(parser)
    g = parser.add_argument_group("attributes (dmmcnn): switch parts of the method off to measure them, "
                                  "name the threshold objective")
    for part in ("dynamic-weights", "adaptive-thresholds", "landmarks"):
        g.add_argument(f"--no-{part}", action="store_true", help=f"train without {part.replace('-', ' ')}")
    g.add_argument("--threshold-objective", choices=["accuracy", "balanced", "f1"],
                   help="what each attribute's fitted threshold maximises on the validation split "
                        "(default accuracy; balanced = balanced accuracy)")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--input-size", type=int, help="square input side in pixels (paper 224)")
    g.add_argument("--epochs", type=int, help="epochs (paper 60)")
    g.add_argument("--batch-size", type=int, help="batch size per process (paper 128)")
    g.add_argument("--lr", type=float, help="Adam learning rate (paper 1e-3)")
    g.add_argument("--lr-step", type=int, help="epochs between x lr-gamma decays (paper 30)")
    g.add_argument("--lr-gamma", type=float, help="decay factor (paper 0.1)")
    g.add_argument("--schedule", choices=["step", "cosine"], help="learning-rate schedule (paper: step)")
    g.add_argument("--warmup-epochs", type=int, help="linear warm-up epochs before the cosine schedule")
    g.add_argument("--init", help="warm start from an edgeface checkpoint: layers whose name and shape match are "
                                  "copied, the rest (e.g. a head for another label space) re-initialised and listed")
    g.add_argument("--channels-last", action="store_true", default=None, help="NHWC activations while training")
    g.add_argument("--synthetic-size", type=int, help="images in the built-in SYNTHETIC set")
    g = parser.add_argument_group("run")
    g.add_argument("--out", help="output folder (default runs/train)")
    g.add_argument("--resume", action="store_true", default=None, help="continue the run in --out from last.pt")
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    g.add_argument("--no-amp", dest="amp", action="store_false", default=None, help="no mixed precision on CUDA")
    g.add_argument("--workers", type=int, help="DataLoader worker processes (default 2)")
    g.add_argument("--threads", type=int, help="torch CPU threads (default 2)")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress output")


OVERRIDES = ("model", "task", "label_range", "sigma", "lam", "data", "format", "image_col", "label_col", "std_col",
             "image_root", "aligned", "detector", "strict", "max_images", "cache_dir", "val_fraction", "folds",
             "fold", "protocol", "seed", "input_size", "epochs", "batch_size", "lr", "lr_step", "lr_gamma", "schedule",
             "warmup_epochs", "init", "channels_last",
             "synthetic_size", "out", "resume", "device", "amp", "workers", "threads", "progress")


def main(args: argparse.Namespace) -> int:
    from edgeface.train.trainer import CONFIG_DIR, load_config, train_model

    if args.task is None and args.model:
        from edgeface.models import model_task

        args.task = "attributes" if model_task(args.model) == "attributes" else None
    config_name = args.config
    if config_name is None:
        default = "dmmcnn" if args.task == "attributes" else f"dldl_{args.task or 'age'}"
        config_name = default if (CONFIG_DIR / f"{default}.yaml").is_file() else None
    config = load_config(config_name, {k: getattr(args, k) for k in OVERRIDES})
    switched_off = [k for k in ("dynamic_weights", "adaptive_thresholds", "landmarks") if getattr(args, f"no_{k}")]
    config.task_options = {**config.task_options, **dict.fromkeys(switched_off, False)}
    if args.threshold_objective:
        config.task_options["threshold_objective"] = args.threshold_objective
    if config.data is None:
        print(f"edgeface train: no --data given: training on the built-in SYNTHETIC set "
              f"({config.synthetic_size} generated face-like pictures, not real faces)")
    best = train_model(config)
    print(f"best checkpoint: {best}")
    return 0
