"""``edgeface train``: DLDL-v2 (and any registered training task) from the command line.

Settings come from the paper-recipe YAML for the task (``train/configs/dldl_<task>.yaml``) or ``--config``,
then the flags given here; the flags are derived from :class:`edgeface.train.config.TrainConfig`.
"""

from __future__ import annotations

import argparse
import logging

from edgeface.train.config import CONFIG_DIR, GROUPS, add_config_arguments, config_overrides

log = logging.getLogger(__name__)
SWITCHES = ("dynamic_weights", "adaptive_thresholds", "landmarks")  # attribute task_options with a --no-* flag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML recipe: a path or a name in train/configs/ (default dldl_<task>)")
    attributes = add_config_arguments(parser, GROUPS)["attributes"]
    for part in SWITCHES:
        words = part.replace("_", " ")
        attributes.add_argument(f"--no-{part.replace('_', '-')}", action="store_true",
                                help=f"train without {words} (dmmcnn: measure that part of the method)")
    attributes.add_argument("--threshold-objective", choices=["accuracy", "balanced", "f1"],
                            help="what each attribute's fitted threshold maximises on the validation split "
                                 "(default accuracy; balanced = balanced accuracy)")


def main(args: argparse.Namespace) -> int:
    from edgeface.train.config import load_config
    from edgeface.train.trainer import train_model

    if args.task is None and args.model:
        from edgeface.models import default_cfg

        tasks = default_cfg(args.model).tasks
        args.task = tasks[0] if len(tasks) == 1 else None  # a model that serves one task implies it
    config_name = args.config
    if config_name is None:
        default = "dmmcnn" if args.task == "attributes" else f"dldl_{args.task or 'age'}"
        config_name = default if (CONFIG_DIR / f"{default}.yaml").is_file() else None
    overrides = config_overrides(args)
    task_options = dict.fromkeys((k for k in SWITCHES if getattr(args, f"no_{k}")), False)
    if args.threshold_objective:
        task_options["threshold_objective"] = args.threshold_objective
    overrides["task_options"] = {**(overrides["task_options"] or {}), **task_options} or None
    config = load_config(config_name, overrides)
    if config.data is None:
        print(f"edgeface train: no --data given: training on the built-in SYNTHETIC set "
              f"({config.synthetic_size} generated face-like pictures, not real faces)")
    best = train_model(config)
    print(f"best checkpoint: {best}")
    return 0
